"""Readers: turn a CSV, TSV, JSON, JSONL or Parquet file into a stream of string batches.

Every reader yields Arrow record batches whose columns are the file's columns as strings, plus
``_row`` (the record number, 1 = first data row), and collects the records it could not parse as
:class:`Reject`. Batches are bounded in size, so a file of any size streams in bounded memory.
CSV parsing is pyarrow's multithreaded reader; what it rejects (wrong column count, unbalanced
quotes) is re-read line by line so that one stray quote does not take the rest of the file
with it.

No record, however malformed, stops a file: a line longer than ``max_line_bytes`` (kept only by
its start, so a file without any newline streams too), a JSON record nested too deeply, a JSON
line that is not valid UTF-8 or not an object are rejects like any other.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
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
#: Characters of an unreadable record kept in the quarantine.
RAW_CHARS = 1000
#: Deepest nesting of arrays and objects read in a JSON record (pyarrow's reader slows down
#: quadratically with depth and overflows its stack near 10,000).
MAX_DEPTH = 128


def _clip(text: str) -> str:
    return text if len(text) <= RAW_CHARS else text[:RAW_CHARS] + "…"


@dataclass
class Reject:
    """A record the reader could not parse (its raw text clipped to :data:`RAW_CHARS`)."""

    row_number: int
    reason: str
    raw: str

    def __post_init__(self) -> None:
        self.raw = _clip(self.raw)


@dataclass
class _LongLine:
    """A line longer than the limit, of which only the start was kept."""

    head: bytes | str
    size: int  # bytes (characters when read as text), line end excluded
    limit: int
    unit: str = "bytes"

    def reject(self, number: int, encoding: str = "utf-8") -> Reject:
        head = self.head[: self.size]  # (a head read ahead may run past the line)
        text = head if isinstance(head, str) else head.decode(encoding, "replace")
        return Reject(number, f"line is {self.size:,} {self.unit} long, over the limit of "
                      f"{self.limit:,} (max_line_bytes)", text)


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


def _text_lines(path: Path, encoding: str, cap: int) -> Iterator[str | _LongLine]:
    """The file's lines as text, a line of more than ``cap`` characters as a :class:`_LongLine`
    (read in pieces, never whole)."""
    with io.TextIOWrapper(_open_binary(path),
                          encoding="utf-8-sig" if encoding == "utf-8" else encoding,
                          newline="") as handle:
        carry = ""  # a character read after a long line's "\r", to see whether "\n" follows
        while True:
            if carry == "\r":  # an empty line, ended by "\r" or "\r\n"
                after = handle.readline(1)
                line, carry = ("\r\n", "") if after == "\n" else ("\r", after)
            else:
                line, carry = carry + handle.readline(cap + 2 - len(carry)), ""
            if not line:
                return
            if len(line.rstrip("\r\n")) <= cap:  # a whole line (at most cap + "\r\n")
                yield line
                continue
            size, head = len(line), line[: RAW_CHARS + 1]
            while not line.endswith(("\n", "\r")) and (line := handle.readline(1 << 20)):
                size += len(line)
            if line.endswith("\r"):  # a "\r\n" read in two ends one line, not two
                carry = handle.readline(1)
                carry = "" if carry == "\n" else carry
            yield _LongLine(head, size - len(line) + len(line.rstrip("\r\n")), cap,
                            "characters")


def _ascii_lines(encoding: str) -> bool:
    """Whether lines of this encoding end with the bytes ``\\n`` / ``\\r`` (not UTF-16)."""
    return "\n\r".encode(encoding) == b"\n\r"


def _line_end(data: bytes, start: int) -> tuple[int, int] | None:
    """(end of the line, start of the next) for the first line end at or after ``start``."""
    lf = data.find(b"\n", start)
    cr = data.find(b"\r", start, len(data) if lf < 0 else lf)
    if cr >= 0:
        return cr, cr + 2 if data[cr + 1 : cr + 2] == b"\n" else cr + 1
    return None if lf < 0 else (lf, lf + 1)


def _last_end(data: bytes, start: int, stop: int) -> int | None:
    """Where the line after the last line end in ``data[start:stop]`` starts."""
    end = max(data.rfind(b"\n", start, stop), data.rfind(b"\r", start, stop))
    if end < 0:
        return None
    return end + 2 if data[end : end + 2] == b"\r\n" else end + 1


def _line_blocks(path: Path, cap: int) -> Iterator[bytes | _LongLine]:
    """The file's bytes in blocks of whole lines (the last may lack its newline).

    A line of more than ``cap`` bytes comes alone as a :class:`_LongLine` holding its start
    only, so that a file without newlines streams in bounded memory too. Lines end where the
    text reader ends them (``\\n``, ``\\r\\n`` or a lone ``\\r``).
    """
    data = b""
    long: _LongLine | None = None  # a long line whose end is not read yet
    first = True
    with _open_binary(path) as handle:
        while True:
            chunk = handle.read(_BLOCK_BYTES)
            while chunk.endswith(b"\r") and (more := handle.read(1)):  # never cut "\r\n"
                chunk += more
            eof = not chunk
            if first:
                chunk, first = chunk.removeprefix(codecs.BOM_UTF8), False
            if long is not None:  # skip the rest of a long line
                found = _line_end(chunk, 0)
                if found is None:
                    long.size += len(chunk)
                    if not eof:
                        continue
                    yield long
                    return
                long.size += found[0]
                yield long
                long, chunk = None, chunk[found[1]:]
            data = data + chunk if data else chunk
            seg = pos = 0
            while pos < len(data):
                stop = min(pos + cap + 1, len(data))
                cut = _last_end(data, pos, stop)
                if cut is not None:  # every line in data[pos:cut] is at most cap bytes
                    pos = cut
                    continue
                if len(data) - pos <= cap:  # the last line, perhaps not whole yet
                    break
                if pos > seg:
                    yield data[seg:pos]
                line = _LongLine(data[pos : pos + 4 * RAW_CHARS], 0, cap)
                found = _line_end(data, stop)
                if found is None:
                    line.size, long = len(data) - pos, line
                    seg = pos = len(data)
                    break
                line.size = found[0] - pos
                yield line
                seg = pos = found[1]
            if eof:
                if long is not None:
                    yield long
                elif seg < len(data):
                    yield data[seg:]
                return
            if seg < pos:
                yield data[seg:pos]
            data = data[pos:]


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


def _allow_fields(cap: int) -> None:
    """Let the csv module read a field as long as a line may be (its limit is process-wide:
    it is only ever raised)."""
    if csv.field_size_limit() < cap:
        csv.field_size_limit(cap)


def _open_csv(path: Path, source: SourceConfig, fmt: str) -> SourceFile:
    encoding = detect_encoding(path, source.encoding)
    cap = source.max_line_bytes
    whitespace = source.delimiter == "whitespace"
    in_bytes = not whitespace and _ascii_lines(encoding)  # pyarrow reads a capped byte stream

    def size(line: str | _LongLine | None) -> tuple[int, str]:
        if isinstance(line, _LongLine):
            return line.size, line.unit
        text = (line or "").rstrip("\r\n")
        return (len(text.encode(encoding, "replace")), "bytes") if in_bytes \
            else (len(text), "characters")

    lines = _text_lines(path, encoding, cap)
    long_skipped = 0  # long lines before the header: dropped from what pyarrow reads
    for _ in range(source.skip_rows):
        long_skipped += size(next(lines, None))[0] > cap
    first = next(lines, None)
    lines_close = getattr(lines, "close", None)
    if lines_close:
        lines_close()
    if isinstance(first, _LongLine) or size(first)[0] > cap:
        raise IngestError(
            f"The first line of {path.name} is {size(first)[0]:,} {size(first)[1]} long, over "
            f"the limit of {cap:,} (max_line_bytes): it cannot be read as a CSV header.",
            hint="Check that the file is a CSV export (one record per line), or raise "
            "max_line_bytes in the source.",
        )
    if first is None or not first.strip():
        return SourceFile(path, fmt, encoding, [], iter(()))
    if whitespace:  # runs of blanks separate fields: read a tab-separated UTF-8 view instead
        first, delimiter = _squeeze(first), "\t"
    else:
        delimiter = source.delimiter or ("\t" if fmt == "tsv" else _sniff_delimiter(first))
    _allow_fields(cap)
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

    def on_long(number: int, line: _LongLine) -> None:
        if number > source.skip_rows:  # not a line skipped before the header
            result.rejects.append(line.reject(number, encoding))

    # Lines over the cap never reach pyarrow (it would hold them whole, or fail on them).
    stream: Any = path  # UTF-16: pyarrow reads the file itself, lines uncapped
    capped: _CappedLines | None = None
    if whitespace:
        stream = io.BufferedReader(_SqueezedLines(path, encoding, cap, on_long), _BLOCK_BYTES)
    elif in_bytes:
        stream = capped = _CappedLines(path, cap)
    else:
        long_skipped = 0
    try:
        reader = _open_arrow_csv(stream, names, source, delimiter, skip - long_skipped,
                                 "utf8" if encoding == "utf-8" or whitespace else encoding,
                                 on_invalid)
    except pa.ArrowInvalid as exc:
        raise _csv_error(path, exc) from None

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
            raise _csv_error(path, exc) from None
        if capped is not None and capped.long_lines:
            offsets = [offset for offset, _ in capped.long_lines]
            for number, (_, line) in zip(_line_numbers(path, offsets), capped.long_lines,
                                         strict=True):
                on_long(number, line)
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
        _locate_lines(path, encoding, cap, result.rejects)
        if recovered:
            columns = list(zip(*recovered, strict=True))
            arrays = [pa.array(col, type=pa.string()) for col in columns]
            rows = pa.array(np.arange(done + 1, done + 1 + len(recovered), dtype=np.int64))
            yield pa.RecordBatch.from_arrays([*arrays, rows], names=[*names, "_row"])

    result._batches = batches()
    return result


def _csv_error(path: Path, exc: Exception) -> IngestError:
    if "straddl" in str(exc):  # a record pyarrow cannot end within a block
        return IngestError(
            f"{path.name} has a quoted value that is never closed: a stray quote character "
            f"makes over {_BLOCK_BYTES >> 20} MB of lines one value; nothing was loaded.",
            hint="Remove or double the stray quote in the export.",
        )
    return IngestError(f"{path.name} cannot be read as CSV: {exc}.")


def _open_arrow_csv(stream: Any, names: list[str], source: SourceConfig, delimiter: str,
                    skip: int, encoding: str, on_invalid: Callable[[Any], str]) -> Any:
    return pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(
            use_threads=True,
            block_size=_BLOCK_BYTES,
            skip_rows=skip,
            column_names=names,
            encoding=encoding,
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


def _squeeze(line: str) -> str:
    """A whitespace-delimited line as tab-separated fields (leading and trailing blanks dropped)."""
    return "\t".join(line.split())


class _SqueezedLines(io.RawIOBase):
    """A whitespace-delimited text file (``delimiter = "whitespace"``) read as UTF-8 TSV bytes.

    Fixed-width-looking exports (CDNOW's ``  00004 0001 19970101  2   29.33``) separate fields by
    runs of blanks; each line is squeezed as it is read, so the file streams in bounded memory.
    Values cannot contain blanks, quoted or not. Lines over ``cap`` are left out, told to
    ``on_long`` with their line number.
    """

    def __init__(self, path: Path, encoding: str, cap: int,
                 on_long: Callable[[int, _LongLine], None]) -> None:
        self._lines = self._squeezed(_text_lines(path, encoding, cap), on_long)
        self._pending = b""

    @staticmethod
    def _squeezed(lines: Iterator[str | _LongLine],
                  on_long: Callable[[int, _LongLine], None]) -> Iterator[str]:
        for number, line in enumerate(lines, start=1):
            if isinstance(line, _LongLine):
                on_long(number, line)
            else:
                yield _squeeze(line) + "\n"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while len(self._pending) < len(view):
            chunk = [line for _, line in zip(range(65536), self._lines, strict=False)]
            if not chunk:
                break
            self._pending += "".join(chunk).encode("utf-8")
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


class _CappedLines:
    """A file's bytes, decompressed as pyarrow would, without its lines over ``cap`` bytes.

    A file-like object whose reads hand pyarrow slices of the blocks read, without copying
    them; ``long_lines`` collects (byte offset, :class:`_LongLine`) of the lines left out.
    """

    closed = False

    def __init__(self, path: Path, cap: int) -> None:
        self._handle = _open_native(path)
        self._cap = cap
        self._out: deque[memoryview] = deque()
        self._held = memoryview(b"")  # the unfinished last line of the last block
        self._offset = 0  # of the next block read
        self._long: tuple[int, _LongLine] | None = None  # a long line not ended yet
        self._eof = False
        self.long_lines: list[tuple[int, _LongLine]] = []

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._handle.close()
        self.closed = True

    def read(self, size: int = -1) -> memoryview | bytes:
        while not self._out and not self._eof:
            self._next_block()
        if not self._out:
            return b""
        piece = self._out.popleft()
        if 0 <= size < len(piece):
            self._out.appendleft(piece[size:])
            piece = piece[:size]
        return piece

    def _next_block(self) -> None:
        chunk = self._handle.read(_BLOCK_BYTES)
        while chunk.endswith(b"\r") and (more := self._handle.read(1)):  # never cut "\r\n"
            chunk += more
        base, self._offset = self._offset, self._offset + len(chunk)
        if not chunk:
            self._eof = True
            if self._long is not None:
                self.long_lines.append(self._long)
            elif self._held:
                self._out.append(self._held)
            return
        pos = 0
        if self._long is not None:  # skip the rest of a long line
            found = _line_end(chunk, 0)
            if found is None:
                self._long[1].size += len(chunk)
                return
            self._long[1].size += found[0]
            self.long_lines.append(self._long)
            self._long, pos = None, found[1]
        elif self._held:  # the line the last block ended in
            held, self._held = self._held, memoryview(b"")
            start = base - len(held)
            found = _line_end(chunk, 0)
            if found is None and len(held) + len(chunk) <= self._cap:
                self._held = memoryview(bytes(held) + chunk)
                return
            if found is None or len(held) + found[0] > self._cap:
                head = bytes(held[: 4 * RAW_CHARS]) + chunk[: max(4 * RAW_CHARS - len(held), 0)]
                line = _LongLine(head, len(held), self._cap)
                self._long = (start, line)
                if found is None:
                    line.size += len(chunk)
                    return
                line.size += found[0]
                self.long_lines.append(self._long)
                self._long = None
            else:
                self._out.append(held)
                self._out.append(memoryview(chunk)[: found[1]])
            pos = found[1]
        self._scan(chunk, pos, base)

    def _scan(self, chunk: bytes, pos: int, base: int) -> None:
        """Queue the lines of ``chunk[pos:]``, leaving out long ones; hold the last if it does
        not end in this block."""
        view, seg, cap = memoryview(chunk), pos, self._cap
        while pos < len(chunk):
            cut = _last_end(chunk, pos, min(pos + cap + 1, len(chunk)))
            if cut is not None:  # every line in chunk[pos:cut] is at most cap bytes
                pos = cut
                continue
            if pos > seg:
                self._out.append(view[seg:pos])
            seg = len(chunk)
            if len(chunk) - pos <= cap:  # may end in the next block
                self._held = view[pos:]
                return
            line = _LongLine(chunk[pos : pos + 4 * RAW_CHARS], 0, cap)
            found = _line_end(chunk, pos + cap + 1)
            if found is None:
                line.size, self._long = len(chunk) - pos, (base + pos, line)
                return
            line.size = found[0] - pos
            self.long_lines.append((base + pos, line))
            seg = pos = found[1]
        if pos > seg:
            self._out.append(view[seg:pos])


def _open_native(path: Path) -> Any:
    """The file's bytes, decompressed by pyarrow as its CSV reader does for a path."""
    return pa.input_stream(str(path), compression="detect")


def _line_numbers(path: Path, offsets: list[int]) -> list[int]:
    """The number (from 1) of the line starting at each byte offset (ascending)."""
    numbers: list[int] = []
    ends = done = 0
    last = b""
    with _open_native(path) as handle:
        for offset in offsets:
            while done < offset:
                chunk = handle.read(min(_BLOCK_BYTES, offset - done))
                if not chunk:
                    break
                ends += chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
                ends -= last == b"\r" and chunk.startswith(b"\n")  # "\r\n" read in two
                done, last = done + len(chunk), chunk[-1:]
            numbers.append(ends + 1)
    return numbers


def _locate_lines(path: Path, encoding: str, cap: int, rejects: list[Reject]) -> None:
    """Give line numbers to rejected lines the parallel parser could not number."""
    pending = [r for r in rejects if not r.row_number]
    if not pending:
        return
    index = 0
    lines = _text_lines(path, encoding, cap)
    for number, line in enumerate(lines, start=1):
        if isinstance(line, str) and _clip(line.rstrip("\r\n")) == pending[index].raw:
            pending[index].row_number = number
            index += 1
            if index == len(pending):
                break
    getattr(lines, "close", lambda: None)()


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
    bad_utf8 = False
    if fmt == "jsonl":
        encoding, bad_utf8 = _jsonl_encoding(path, source.encoding)
    else:
        encoding = detect_encoding(path, source.encoding)
    result = SourceFile(path, fmt, encoding, [], iter(()))
    seen: dict[str, None] = {}
    if fmt == "jsonl" and encoding == "utf-8":
        result._batches = _jsonl_batches(path, source.max_line_bytes, bad_utf8, source.explode,
                                         seen, result)
    else:
        records = (_jsonl_records(_text_lines(path, encoding, source.max_line_bytes))
                   if fmt == "jsonl" else _json_records(path, encoding))
        result._batches = _python_batches(records, source.explode, seen, result)
    return result


def _jsonl_encoding(path: Path, declared: str) -> tuple[str, bool]:
    """The encoding of a JSON Lines file, and whether some of its lines are not valid in it.

    JSON is UTF-8: a file declared so, or in ``auto`` whose lines with non-ASCII bytes are
    mostly valid UTF-8, is read as UTF-8 and its invalid lines are quarantined; any other is
    read as :func:`detect_encoding` says (cp1252 or latin-1 for a legacy export).
    """
    name = declared.lower().replace("_", "-")
    if name in ("auto", "utf-8", "utf8", "utf-8-sig"):
        with _open_binary(path) as handle:
            head = handle.read(4)
        if not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            if _first_invalid_utf8(path) is None:
                return "utf-8", False
            if name != "auto" or _mostly_utf8(path):
                return "utf-8", True
    return detect_encoding(path, declared), False


def _mostly_utf8(path: Path) -> bool:
    """Whether at least as many lines with non-ASCII bytes decode as UTF-8 as do not (a line is
    judged by its first MiB)."""
    counts = [0, 0]  # valid, invalid

    def judge(line: bytes) -> None:
        if not line.isascii():
            try:
                codecs.utf_8_decode(line, "strict", False)  # a cut last character is fine
                counts[0] += 1
            except UnicodeDecodeError:
                counts[1] += 1

    pending = b""
    with _open_binary(path) as handle:
        while chunk := handle.read(8 << 20):
            if chunk.isascii() and pending.isascii():
                pending = (pending + chunk).rpartition(b"\n")[2][: 1 << 20]
                continue
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()[: 1 << 20]
            for line in lines:
                judge(line[: 1 << 20])
    judge(pending)
    return counts[0] >= counts[1]


_NOT_OPENERS = bytes(b for b in range(256) if b not in b"[{\n")
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"\n')


def _deepest(text: bytes) -> int:
    """The deepest nesting of arrays and objects on any line of ``text`` (JSON, strings aside)."""
    if b"\\" in text:  # escaped backslashes, then escaped quotes, read left to right as JSON
        text = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    return _marks_depth(text.translate(None, _NOT_STRUCTURE))


def _marks_depth(marks: bytes) -> int:
    """:func:`_deepest` of text reduced to its brackets, quotes and newlines."""
    codes = np.frombuffer(marks, np.uint8)
    if not len(codes):
        return 0
    ends = np.flatnonzero(codes == ord("\n"))
    quotes = np.cumsum(codes == ord('"'), dtype=np.uint8)  # wraps, but only parity counts
    if len(ends) and (quotes[ends] & 1).any():  # an odd number of quotes on a line: each alone
        return max(_marks_depth(line) for line in marks.split(b"\n"))
    outside = (quotes & 1) == 0  # not within a string
    opens = ((codes == ord("[")) | (codes == ord("{"))) & outside
    closes = ((codes == ord("]")) | (codes == ord("}"))) & outside
    depth = np.cumsum(opens.astype(np.int8) - closes, dtype=np.int32)
    starts = np.concatenate(([0], ends + 1))
    starts = starts[starts < len(codes)]
    base = np.concatenate(([0], depth[ends]))[: len(starts)]  # depth where each line starts
    return int((np.maximum.reduceat(depth, starts) - base).max())


def _too_deep(line: bytes) -> bool:
    """Whether a JSON text nests arrays and objects more than :data:`MAX_DEPTH` deep."""
    return line.count(b"[") + line.count(b"{") > MAX_DEPTH and _deepest(line) > MAX_DEPTH


def _has_deep_line(block: bytes) -> bool:
    """Whether a line of the block nests more than :data:`MAX_DEPTH` deep (computed only when
    a line has more opening brackets than that)."""
    openers = block.translate(None, _NOT_OPENERS)
    if len(openers) - openers.count(b"\n") <= MAX_DEPTH:
        return False
    ends = np.flatnonzero(np.frombuffer(openers, np.uint8) == ord("\n"))
    if int((np.diff(ends, prepend=-1, append=len(openers)) - 1).max()) <= MAX_DEPTH:
        return False
    return _deepest(block) > MAX_DEPTH


_DEEP = f"record is nested more than {MAX_DEPTH} levels deep"
_ESCAPED = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8 (surrogateescape)


def _jsonl_records(lines: Iterable[str | _LongLine], first: int = 1, escaped: bool = False
                   ) -> Iterator[tuple[int, dict[str, Any] | None, str, str]]:
    """(line number, object or None, reason, raw line) of each non-blank line.

    ``escaped``: the lines were decoded with ``surrogateescape``; a line holding such an
    escape is not valid UTF-8.
    """
    for number, line in enumerate(lines, start=first):
        if isinstance(line, _LongLine):
            reject = line.reject(number)
            yield number, None, reject.reason, reject.raw
            continue
        if not line.strip():
            continue
        if escaped and (bad := _ESCAPED.search(line)):
            raw = line.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            yield (number, None, f"line is not valid UTF-8 (byte 0x{ord(bad[0]) - 0xDC00:02X} "
                   f"at character {bad.start() + 1})", raw.rstrip("\r\n"))
            continue
        if line.count("[") + line.count("{") > MAX_DEPTH \
                and _too_deep(line.encode("utf-8", "surrogatepass")):
            yield number, None, _DEEP, line.rstrip("\r\n")
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, None, f"line is not valid JSON ({exc.msg})", line.rstrip("\n")
            continue
        except RecursionError:
            yield number, None, _DEEP, line.rstrip("\r\n")
            continue
        yield number, obj, "", line


def _nested_deeper(obj: Any, limit: int) -> bool:
    """Whether ``obj`` nests lists and dicts more than ``limit`` deep (without recursion)."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        if depth > limit:
            return True
        stack += [(c, depth + 1) for c in children if isinstance(c, dict | list)]
    return False


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
        except RecursionError:
            raise IngestError(
                f"{path.name} nests arrays or objects too deeply to be read as one JSON "
                "document.",
                hint='For one object per line, name the file .jsonl or set format = "jsonl": '
                "an over-nested line is then quarantined alone.",
            ) from None
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if len(lists) == 1 else [data]
    for number, obj in enumerate(data, start=1):
        if isinstance(obj, dict | list) and _nested_deeper(obj, MAX_DEPTH):
            try:
                raw = json.dumps(obj, ensure_ascii=False)[: RAW_CHARS + 1]
            except RecursionError:
                raw = ""
            yield number, None, _DEEP, raw
            continue
        yield number, obj, "", ""


def _python_batches(records: Iterator[tuple[int, dict[str, Any] | None, str, str]],
                    explode: str | None, seen: dict[str, None],
                    result: SourceFile) -> Iterator[pa.RecordBatch]:
    """Batches of parsed records, flattened (and exploded), every value as text."""

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        for number, obj, reason, raw in records:
            if obj is None and reason:
                result.rejects.append(Reject(number, reason, raw))
                continue
            if not isinstance(obj, dict):  # a list, a number, a string, null...
                result.rejects.append(Reject(number, "record is not a JSON object",
                                             raw.rstrip("\r\n") or json.dumps(obj)))
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


def _lines_in(block: bytes) -> int:
    """Lines as the text reader counts them (``\\n``, ``\\r\\n`` or ``\\r`` end one)."""
    ends = block.count(b"\n") + block.count(b"\r") - block.count(b"\r\n")
    return ends + (0 if block.endswith((b"\n", b"\r")) else 1)


def _lone_cr(piece: bytes) -> bool:
    return piece.count(b"\r") != piece.count(b"\r\n")


def _jsonl_batches(path: Path, cap: int, bad_utf8: bool, explode: str | None,
                   seen: dict[str, None], result: SourceFile) -> Iterator[pa.RecordBatch]:
    """``bad_utf8``: some lines are not valid UTF-8 (each block is checked before pyarrow,
    which would take them as they are)."""
    number = 1
    hint: list[pa.Schema | None] = [None]  # fields read as text, not as inferred dates
    for block in _line_blocks(path, cap):
        if isinstance(block, _LongLine):
            result.rejects.append(block.reject(number))
            number += 1
            continue
        pieces = [(block, number)]
        number += _lines_in(block)
        while pieces:
            piece, first = pieces.pop(0)
            batch = _arrow_jsonl(piece, first, explode, hint, result, bad_utf8)
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
            try:
                text, escaped = piece.decode("utf-8"), False
            except UnicodeDecodeError:
                text, escaped = piece.decode("utf-8", "surrogateescape"), True
            lines = io.StringIO(text, newline="")
            yield from _python_batches(_jsonl_records(lines, first, escaped), explode, seen,
                                       result)
    result.columns = list(seen)


def _valid_utf8(piece: bytes) -> bool:
    try:
        piece.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _arrow_jsonl(piece: bytes, first: int, explode: str | None, hint: list[pa.Schema | None],
                 result: SourceFile, bad_utf8: bool = False) -> pa.RecordBatch | str:
    """One block of lines read by pyarrow, as the Python path reads it; else ``"split"`` (some
    lines are at fault: halve the block) or ``"python"`` (its shape is: read it in Python)."""
    if _lone_cr(piece):
        return "python"  # a lone carriage return ends a line for the text reader
    if (bad_utf8 and not _valid_utf8(piece)) or _has_deep_line(piece):
        return "split"  # never given to pyarrow (a deep line takes it quadratic time, or down)
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
