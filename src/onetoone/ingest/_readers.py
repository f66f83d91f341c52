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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from onetoone.config import SourceConfig
from onetoone.errors import IngestError

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
    explode = source.explode
    result = SourceFile(path, fmt, encoding, [], iter(()))
    seen: dict[str, None] = {}

    def records() -> Iterator[tuple[int, dict[str, Any] | None, str, str]]:
        if fmt == "jsonl":
            for number, line in enumerate(_text_lines(path, encoding), start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, None, f"line is not valid JSON ({exc.msg})", line.rstrip("\n")
                    continue
                yield number, obj, "", line
        else:
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

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        for number, obj, reason, raw in records():
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
                    number, f"'{explode}' is missing or not a non-empty list",
                    raw or json.dumps(obj, ensure_ascii=False)))
                continue
            for child in children:
                row = dict(flat)
                if isinstance(child, dict):
                    row.update(_flatten(child, f"{explode}."))
                else:
                    row[explode] = child
                yield number, row

    def batches() -> Iterator[pa.RecordBatch]:
        buffer: list[tuple[int, dict[str, Any]]] = []
        for item in rows():
            buffer.append(item)
            if len(buffer) >= BATCH_ROWS // 4:
                yield _json_batch(buffer, seen)
                buffer = []
        if buffer:
            yield _json_batch(buffer, seen)
        result.columns = list(seen)

    result._batches = batches()
    return result


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
