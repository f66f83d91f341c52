"""Readers: turn a CSV, TSV, JSON, JSONL or Parquet file into a stream of string batches.

Every reader yields Arrow record batches whose columns are the file's columns as strings, plus
``_row`` (the record number, 1 = first data row), and collects the records it could not parse as
:class:`Reject`. Batches are bounded in size, so a file of any size streams in bounded memory.
CSV parsing is pyarrow's multithreaded reader; what it rejects (wrong column count, unbalanced
quotes) is re-read line by line so that one stray quote does not take the rest of the file
with it.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from onetoone.errors import IngestError
from onetoone.ingest.settings import SourceConfig

BATCH_ROWS = 200_000
_BLOCK_BYTES = 32 << 20


@dataclass
class Reject:
    row_number: int
    reason: str
    raw: str


@dataclass
class SourceFile:
    """One file being read: its columns, its batches and the records it could not parse."""

    path: Path
    format: str
    encoding: str
    columns: list[str]
    _batches: Iterator[pa.RecordBatch]
    rejects: list[Reject] = field(default_factory=list)
    #: Header names that appear more than once (renamed name_2, name_3... in ``columns``).
    duplicated_columns: list[str] = field(default_factory=list)

    def batches(self) -> Iterator[pa.RecordBatch]:
        yield from self._batches


def file_format(path: Path, source: SourceConfig) -> str:
    if source.format:
        return source.format
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in (".gz", ".zst")]
    ext = suffixes[-1].lstrip(".") if suffixes else ""
    if ext in ("csv", "txt"):
        return "csv"
    if ext in ("tsv", "tab"):
        return "tsv"
    if ext in ("parquet", "pq"):
        return "parquet"
    if ext in ("jsonl", "ndjson"):
        return "jsonl"
    if ext == "json":
        return "json"
    raise IngestError(
        f"Cannot tell the format of {path.name} from its extension.",
        hint='Set format = "csv" (or tsv, parquet, json, jsonl) in the source.',
    )


def open_source_file(path: Path, source: SourceConfig) -> SourceFile:
    fmt = file_format(path, source)
    if fmt in ("csv", "tsv"):
        return _open_csv(path, source, fmt)
    if fmt == "parquet":
        return _open_parquet(path, source)
    return _open_json(path, source, fmt)


# -- encodings ----------------------------------------------------------------------------
def _open_binary(path: Path) -> Any:
    """The file's bytes, decompressed when it ends in ``.gz`` (pyarrow's CSV reader
    decompresses such paths itself)."""
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else path.open("rb")


def detect_encoding(path: Path, declared: str) -> str:
    """The encoding to read ``path`` with.

    ``auto`` takes UTF-8 (with or without BOM) when every byte decodes, else cp1252 (Windows
    exports), else latin-1. A declared UTF-8 that does not decode is a clear error.
    """
    with _open_binary(path) as handle:
        head = handle.read(4)
    if head.startswith(codecs.BOM_UTF16_LE) or head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16"
    declared = declared.lower().replace("_", "-")
    if declared not in ("auto", "utf-8", "utf8", "utf-8-sig"):
        try:
            codecs.lookup(declared)
        except LookupError:
            raise IngestError(f"Unknown encoding '{declared}'.") from None
        return declared
    bad = _first_invalid_utf8(path)
    if bad is None:
        return "utf-8"
    if declared != "auto":
        raise IngestError(
            f"{path.name} is not valid UTF-8 (byte {bad[1]!r} at offset {bad[0]}).",
            hint='Set encoding = "cp1252" (Windows) or "latin-1" in the source.',
        )
    return "cp1252" if _decodes(path, "cp1252") else "latin-1"


def _first_invalid_utf8(path: Path) -> tuple[int, bytes] | None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with _open_binary(path) as handle:
        while chunk := handle.read(8 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return offset + exc.start, chunk[exc.start : exc.start + 1]
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return offset, b""
    return None


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    with _open_binary(path) as handle:
        try:
            while chunk := handle.read(8 << 20):
                decoder.decode(chunk)
        except UnicodeDecodeError:
            return False
    return True


def _text_lines(path: Path, encoding: str) -> Iterator[str]:
    with io.TextIOWrapper(_open_binary(path),
                          encoding="utf-8-sig" if encoding == "utf-8" else encoding,
                          newline="") as handle:
        yield from handle


# -- CSV ----------------------------------------------------------------------------------
def _sniff_delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in (";", ",", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for raw in names:
        name = raw.strip() or "column"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 1
        out.append(name)
    return out


def _open_csv(path: Path, source: SourceConfig, fmt: str) -> SourceFile:
    encoding = detect_encoding(path, source.encoding)
    lines = _text_lines(path, encoding)
    for _ in range(source.skip_rows):
        next(lines, None)
    first = next(lines, None)
    lines_close = getattr(lines, "close", None)
    if lines_close:
        lines_close()
    if first is None or not first.strip():
        return SourceFile(path, fmt, encoding, [], iter(()))
    whitespace = source.delimiter == "whitespace"
    if whitespace:  # runs of blanks separate fields: read a tab-separated UTF-8 view instead
        first, delimiter = _squeeze(first), "\t"
    else:
        delimiter = source.delimiter or ("\t" if fmt == "tsv" else _sniff_delimiter(first))
    header_fields = next(csv.reader([first], delimiter=delimiter, quotechar=source.quote))
    if source.header:
        raw_names = header_fields
        skip = source.skip_rows + 1
    else:
        raw_names = [f"column{i + 1}" for i in range(len(header_fields))]
        skip = source.skip_rows
    names = _unique_names(raw_names)
    duplicated = sorted({n for n in raw_names if raw_names.count(n) > 1})
    result = SourceFile(path, fmt, encoding, names, iter(()), duplicated_columns=duplicated)
    header_lines = skip

    rejected: list[Any] = []

    def on_invalid(row: Any) -> str:
        rejected.append((row.number, row.text, row.actual_columns))
        return "skip"

    reader = pacsv.open_csv(
        io.BufferedReader(_SqueezedLines(path, encoding), _BLOCK_BYTES) if whitespace else path,
        read_options=pacsv.ReadOptions(
            use_threads=True,
            block_size=_BLOCK_BYTES,
            skip_rows=skip,
            column_names=names,
            encoding="utf8" if encoding == "utf-8" or whitespace else encoding,
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=delimiter,
            quote_char=source.quote or False,
            double_quote=True,
            newlines_in_values=True,
            invalid_row_handler=on_invalid,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names},
            null_values=source.null_values,
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )

    def batches() -> Iterator[pa.RecordBatch]:
        done = 0
        try:
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                rows = pa.array(np.arange(done + 1, done + 1 + batch.num_rows, dtype=np.int64))
                done += batch.num_rows
                yield batch.append_column("_row", rows)
        except pa.ArrowInvalid as exc:
            raise IngestError(f"{path.name} cannot be read as CSV: {exc}.") from None
        # Records the parser rejected: re-read their lines one by one, keep what parses.
        recovered: list[list[str]] = []
        for number, text, _actual in rejected:
            line0 = (number - 1) if number else None
            for offset, (values, reason, raw) in enumerate(
                _reparse(text, delimiter, source.quote, len(names))
            ):
                if values is not None:
                    recovered.append(values)
                else:
                    where = (line0 + offset + header_lines) if line0 is not None else 0
                    result.rejects.append(Reject(where, reason, raw))
        _locate_lines(path, encoding, result.rejects)
        if recovered:
            columns = list(zip(*recovered, strict=True))
            arrays = [pa.array(col, type=pa.string()) for col in columns]
            rows = pa.array(np.arange(done + 1, done + 1 + len(recovered), dtype=np.int64))
            yield pa.RecordBatch.from_arrays([*arrays, rows], names=[*names, "_row"])

    result._batches = batches()
    return result


def _squeeze(line: str) -> str:
    """A whitespace-delimited line as tab-separated fields (leading and trailing blanks dropped)."""
    return "\t".join(line.split())


class _SqueezedLines(io.RawIOBase):
    """A whitespace-delimited text file (``delimiter = "whitespace"``) read as UTF-8 TSV bytes.

    Fixed-width-looking exports (CDNOW's ``  00004 0001 19970101  2   29.33``) separate fields by
    runs of blanks; each line is squeezed as it is read, so the file streams in bounded memory.
    Values cannot contain blanks, quoted or not.
    """

    def __init__(self, path: Path, encoding: str) -> None:
        self._lines = _text_lines(path, encoding)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while len(self._pending) < len(view):
            chunk = [_squeeze(line) + "\n"
                     for _, line in zip(range(65536), self._lines, strict=False)]
            if not chunk:
                break
            self._pending += "".join(chunk).encode("utf-8")
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _locate_lines(path: Path, encoding: str, rejects: list[Reject]) -> None:
    """Give line numbers to rejected lines the parallel parser could not number."""
    pending = [r for r in rejects if not r.row_number]
    if not pending:
        return
    index = 0
    for number, line in enumerate(_text_lines(path, encoding), start=1):
        if line.rstrip("\r\n") == pending[index].raw:
            pending[index].row_number = number
            index += 1
            if index == len(pending):
                return


def _reparse(
    text: str, delimiter: str, quote: str, width: int
) -> Iterator[tuple[list[str] | None, str, str]]:
    """Split a rejected record back into lines and parse each on its own.

    Yields (values, "", raw) for a line that now parses to ``width`` fields, else
    (None, reason, raw).
    """
    lines = text.split("\n")
    if len(lines) == 1:
        yield None, _width_reason(text, delimiter, quote, width), text
        return
    for line in lines:
        line = line.rstrip("\r")
        if not line:
            continue
        try:
            fields = next(csv.reader([line], delimiter=delimiter, quotechar=quote, strict=True))
        except csv.Error:
            yield None, "unbalanced quote: a quoted value is never closed", line
            continue
        if len(fields) == width:
            yield fields, "", line
        else:
            yield None, _width_reason(line, delimiter, quote, width), line


def _width_reason(line: str, delimiter: str, quote: str, width: int) -> str:
    if line.count(quote) % 2 == 1:
        return "unbalanced quote: a quoted value is never closed"
    try:
        found = len(next(csv.reader([line], delimiter=delimiter, quotechar=quote)))
    except (csv.Error, StopIteration):
        found = 0
    if found < width:
        return f"row has {found} columns, the header has {width} (truncated or shifted row)"
    return f"row has {found} columns, the header has {width} (extra delimiter in a value?)"


# -- Parquet ------------------------------------------------------------------------------
def _open_parquet(path: Path, source: SourceConfig) -> SourceFile:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise IngestError(f"{path.name} is not a readable Parquet file: {exc}.") from None
    schema = parquet.schema_arrow
    names = _flat_names(schema)

    def batches() -> Iterator[pa.RecordBatch]:
        done = 0
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            flat = batch.flatten() if any(pa.types.is_struct(t) for t in batch.schema.types) \
                else batch
            while any(pa.types.is_struct(t) for t in flat.schema.types):
                flat = flat.flatten()
            arrays = [_to_string(col) for col in flat.columns]
            rows = pa.array(np.arange(done + 1, done + 1 + batch.num_rows, dtype=np.int64))
            done += batch.num_rows
            yield pa.RecordBatch.from_arrays([*arrays, rows], names=[*names, "_row"])

    return SourceFile(path, "parquet", "binary", names, batches())


def _flat_names(schema: pa.Schema, prefix: str = "") -> list[str]:
    names: list[str] = []
    for fld in schema:
        if pa.types.is_struct(fld.type):
            names += _flat_names(pa.schema(list(fld.type)), f"{prefix}{fld.name}.")
        else:
            names.append(f"{prefix}{fld.name}")
    return names


def _to_string(array: pa.Array) -> pa.Array:
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return array.cast(pa.string())
    if pa.types.is_timestamp(array.type) or pa.types.is_date(array.type):
        return pa.array([None if v is None else v.isoformat() for v in array.to_pylist()],
                        type=pa.string())
    if pa.types.is_list(array.type) or pa.types.is_map(array.type):
        return pa.array([None if v is None else json.dumps(v, default=str)
                         for v in array.to_pylist()], type=pa.string())
    try:
        return array.cast(pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return pa.array([None if v is None else str(v) for v in array.to_pylist()],
                        type=pa.string())


# -- JSON / JSONL -------------------------------------------------------------------------
def _flatten(obj: dict[str, Any], prefix: str = "",
             out: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {} if out is None else out
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten(value, f"{name}.", out)
        else:
            out[name] = value
    return out


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _open_json(path: Path, source: SourceConfig, fmt: str) -> SourceFile:
    encoding = detect_encoding(path, source.encoding)
    result = SourceFile(path, fmt, encoding, [], iter(()))
    seen: dict[str, None] = {}
    if fmt == "jsonl" and encoding == "utf-8":
        result._batches = _jsonl_batches(path, source.explode, seen, result)
    else:
        records = (_jsonl_records(_text_lines(path, encoding)) if fmt == "jsonl"
                   else _json_records(path, encoding))
        result._batches = _python_batches(records, source.explode, seen, result)
    return result


def _jsonl_records(lines: Iterable[str], first: int = 1
                   ) -> Iterator[tuple[int, dict[str, Any] | None, str, str]]:
    """(line number, object or None, reason, raw line) of each non-blank line."""
    for number, line in enumerate(lines, start=first):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, None, f"line is not valid JSON ({exc.msg})", line.rstrip("\n")
            continue
        yield number, obj, "", line


def _json_records(path: Path, encoding: str
                  ) -> Iterator[tuple[int, dict[str, Any] | None, str, str]]:
    with path.open("r", encoding="utf-8-sig" if encoding == "utf-8" else encoding) as fh:
        try:
            data = json.load(fh)
        except json.JSONDecodeError as exc:
            raise IngestError(
                f"{path.name} is not valid JSON ({exc.msg} at line {exc.lineno}).",
                hint='For one object per line, name the file .jsonl or set '
                'format = "jsonl".',
            ) from None
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if len(lists) == 1 else [data]
    for number, obj in enumerate(data, start=1):
        yield number, obj, "", ""


def _python_batches(records: Iterator[tuple[int, dict[str, Any] | None, str, str]],
                    explode: str | None, seen: dict[str, None],
                    result: SourceFile) -> Iterator[pa.RecordBatch]:
    """Batches of parsed records, flattened (and exploded), every value as text."""

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        for number, obj, reason, raw in records:
            if obj is None:
                result.rejects.append(Reject(number, reason, raw))
                continue
            if not isinstance(obj, dict):
                result.rejects.append(
                    Reject(number, "record is not a JSON object", raw or json.dumps(obj)))
                continue
            flat = _flatten(obj)
            if explode is None:
                yield number, flat
                continue
            children = flat.pop(explode, None)
            if not isinstance(children, list) or not children:
                result.rejects.append(Reject(
                    number, _explode_reason(explode),
                    raw or json.dumps(obj, ensure_ascii=False)))
                continue
            for child in children:
                row = dict(flat)
                if isinstance(child, dict):
                    row.update(_flatten(child, f"{explode}."))
                else:
                    row[explode] = child
                yield number, row

    buffer: list[tuple[int, dict[str, Any]]] = []
    for item in rows():
        buffer.append(item)
        if len(buffer) >= BATCH_ROWS // 4:
            yield _json_batch(buffer, seen)
            buffer = []
    if buffer:
        yield _json_batch(buffer, seen)
    result.columns = list(seen)


def _explode_reason(explode: str) -> str:
    return f"'{explode}' is missing or not a non-empty list"


# JSON Lines in UTF-8 are parsed by pyarrow's multithreaded JSON reader, a block of lines at a
# time (the pure Python path above took three quarters of the demo company's ingestion time).
# A block that pyarrow cannot read exactly as the Python path would (a malformed line, a value
# whose type changes, two objects on one line, lists of objects outside ``explode``) is halved
# until the lines at fault are read by the Python path, which quarantines them with a reason.
_JSONL_MIN_LINES = 2048


def _line_blocks(path: Path) -> Iterator[bytes]:
    """The file's bytes in blocks of whole lines (the last may lack its newline)."""
    pending = b""
    with _open_binary(path) as handle:
        first = True
        while chunk := handle.read(_BLOCK_BYTES):
            if first:
                chunk = chunk.removeprefix(codecs.BOM_UTF8)
                first = False
            data = pending + chunk
            cut = data.rfind(b"\n") + 1
            if cut:
                yield data[:cut]
            pending = data[cut:]
    if pending:
        yield pending


def _lines_in(block: bytes) -> int:
    """Lines as the text reader counts them (``\\n``, ``\\r\\n`` or ``\\r`` end one)."""
    ends = block.count(b"\n") + block.count(b"\r") - block.count(b"\r\n")
    return ends + (0 if block.endswith((b"\n", b"\r")) else 1)


def _lone_cr(piece: bytes) -> bool:
    return piece.count(b"\r") != piece.count(b"\r\n")


def _jsonl_batches(path: Path, explode: str | None, seen: dict[str, None],
                   result: SourceFile) -> Iterator[pa.RecordBatch]:
    number = 1
    hint: list[pa.Schema | None] = [None]  # fields read as text, not as inferred dates
    for block in _line_blocks(path):
        pieces = [(block, number)]
        number += _lines_in(block)
        while pieces:
            piece, first = pieces.pop(0)
            batch = _arrow_jsonl(piece, first, explode, hint, result)
            if isinstance(batch, pa.RecordBatch):
                seen.update(dict.fromkeys(n for n in batch.schema.names if n != "_row"))
                yield batch
                continue
            middle = piece.find(b"\n", len(piece) // 2) + 1
            if (batch == "split" and piece.count(b"\n") >= _JSONL_MIN_LINES
                    and 0 < middle < len(piece)):
                head, tail = piece[:middle], piece[middle:]
                pieces[:0] = [(head, first), (tail, first + head.count(b"\n"))]
                continue
            text = io.StringIO(piece.decode("utf-8"), newline="")
            yield from _python_batches(_jsonl_records(text, first), explode, seen, result)
    result.columns = list(seen)


def _arrow_jsonl(piece: bytes, first: int, explode: str | None, hint: list[pa.Schema | None],
                 result: SourceFile) -> pa.RecordBatch | str:
    """One block of lines read by pyarrow, as the Python path reads it; else ``"split"`` (some
    lines are at fault: halve the block) or ``"python"`` (its shape is: read it in Python)."""
    if _lone_cr(piece):
        return "python"  # a lone carriage return ends a line for the text reader
    try:
        table = _read_jsonl(piece, hint[0])
        if _has_dates(table.schema):  # pyarrow reads ISO dates as timestamps: keep the text
            hint[0] = _text_dates(table.schema)
            if hint[0] is None:
                return "python"
            table = _read_jsonl(piece, hint[0])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return "split"
    lines = piece.split(b"\n")
    numbers = [first + i for i, line in enumerate(lines) if line.strip()]
    if len(numbers) != table.num_rows:  # e.g. two objects on one line: the Python path rejects
        return "split"
    columns: list[tuple[str, pa.Array]] = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        _flatten_arrow(name, column.combine_chunks(), columns)
    rows = pa.array(numbers, type=pa.int64())
    if explode is not None:
        found = [i for i, (name, _) in enumerate(columns) if name == explode]
        if not found or not pa.types.is_list(columns[found[0]][1].type):
            return "split"
        lists = columns.pop(found[0])[1]
        sizes = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(sizes == 0):
            raw = lines[numbers[i] - first] + (b"\n" if numbers[i] - first < len(lines) - 1
                                               else b"")
            result.rejects.append(
                Reject(numbers[i], _explode_reason(explode), raw.decode("utf-8")))
        parents = pc.list_parent_indices(lists)
        columns = [(name, values.take(parents)) for name, values in columns]
        children: list[tuple[str, pa.Array]] = []
        values = pc.list_flatten(lists)
        if pa.types.is_struct(values.type):
            for field_, child in zip(values.type, values.flatten(), strict=True):
                _flatten_arrow(f"{explode}.{field_.name}", child, children)
        else:
            children.append((explode, values))
        columns += children
        rows = rows.take(parents)
    texts = [_arrow_text(values) for _, values in columns]
    if any(t is None for t in texts):
        return "python"
    return pa.RecordBatch.from_arrays([*texts, rows], names=[n for n, _ in columns] + ["_row"])


def _read_jsonl(piece: bytes, schema: pa.Schema | None) -> pa.Table:
    return pajson.read_json(
        io.BytesIO(piece),
        read_options=pajson.ReadOptions(use_threads=True, block_size=4 << 20),
        parse_options=pajson.ParseOptions(explicit_schema=schema,
                                          unexpected_field_behavior="infer"),
    )


def _has_dates(schema: pa.Schema) -> bool:
    def dated(t: pa.DataType) -> bool:
        if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t):
            return True
        if pa.types.is_struct(t):
            return any(dated(f.type) for f in t)
        return pa.types.is_list(t) and dated(t.value_type)

    return any(dated(f.type) for f in schema)


def _text_dates(schema: pa.Schema) -> pa.Schema | None:
    """``schema`` with every date or time field read as text (None inside lists: give up)."""

    def fix(t: pa.DataType) -> pa.DataType | None:
        if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t):
            return pa.string()
        if pa.types.is_struct(t):
            fields = [(f.name, fix(f.type)) for f in t]
            if any(ft is None for _, ft in fields):
                return None
            return pa.struct([pa.field(n, ft) for n, ft in fields])
        if pa.types.is_list(t) and _has_dates(pa.schema([pa.field("v", t.value_type)])):
            return None
        return t

    fields = [(f.name, fix(f.type)) for f in schema]
    if any(t is None for _, t in fields):
        return None
    return pa.schema([pa.field(n, t) for n, t in fields])


def _flatten_arrow(name: str, values: pa.Array, out: list[tuple[str, pa.Array]]) -> None:
    """Nested objects as ``parent.child`` columns (a null parent makes its children null)."""
    if pa.types.is_struct(values.type):
        for field_, child in zip(values.type, values.flatten(), strict=True):
            _flatten_arrow(f"{name}.{field_.name}", child, out)
    else:
        out.append((name, values))


def _arrow_text(values: pa.Array) -> pa.Array | None:
    """Values as the text the Python path gives them (``_as_text``), or None if it cannot."""
    t = values.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t) \
            or pa.types.is_boolean(t) or pa.types.is_integer(t):
        return values.cast(pa.string())
    if pa.types.is_floating(t):  # Python's shortest repr (Arrow would write 3.0 as "3")
        return pa.array([None if v is None else repr(v) for v in values.to_pylist()],
                        type=pa.string())
    if pa.types.is_list(t) and not _missing_keys(pc.list_flatten(values)):
        return pa.array([None if v is None else _ENCODE(v) for v in values.to_pylist()],
                        type=pa.string())
    return None


_ENCODE = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(v, ensure_ascii=False)


def _missing_keys(values: pa.Array) -> bool:
    """Whether objects inside a list may lack keys: pyarrow gives a missing key as null, where
    the Python path leaves it out (lists of objects that all have every key are exact)."""
    if pa.types.is_struct(values.type):
        return any(child.null_count or _missing_keys(child) for child in values.flatten())
    if pa.types.is_list(values.type):
        return _missing_keys(pc.list_flatten(values))
    return False


def _json_batch(buffer: list[tuple[int, dict[str, Any]]], seen: dict[str, None]) -> pa.RecordBatch:
    names: dict[str, None] = {}
    for _, row in buffer:
        for key in row:
            names[key] = None
    seen.update(names)
    arrays = [
        pa.array([_as_text(row.get(name)) for _, row in buffer], type=pa.string())
        for name in names
    ]
    numbers = pa.array([n for n, _ in buffer], type=pa.int64())
    return pa.RecordBatch.from_arrays([*arrays, numbers], names=[*names, "_row"])
