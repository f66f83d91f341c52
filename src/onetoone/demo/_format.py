"""Vectorized text formatting for the demo exports (pyarrow compute, no per-row Python).

Hand-written because the exports must imitate real systems byte for byte (French decimal commas,
``dd/mm/yyyy`` dates, deliberately broken rows, cp1252), which no CSV/JSON writer offers; every
function works on whole columns so that a million customers format in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import IO, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DAY = 86_400
Column: TypeAlias = "pa.Array | str"

_EPOCH = date(1970, 1, 1)


def day_number(d: date) -> int:
    """Days since 1970-01-01."""
    return (d - _EPOCH).days


def strings(values: Sequence[str]) -> pa.Array:
    """A small lookup table of strings."""
    return pa.array(list(values), type=pa.string())


def lookup(table: Sequence[str] | pa.Array, index: np.ndarray) -> pa.Array:
    """``table[index]`` as a string array; negative indexes give null."""
    arr = table if isinstance(table, pa.Array) else strings(table)
    idx = np.asarray(index, dtype=np.int64)
    mask = idx < 0
    taken = arr.take(pa.array(np.where(mask, 0, idx)))
    if mask.any():
        taken = pc.if_else(pa.array(mask), pa.nulls(len(idx), pa.string()), taken)
    return taken


def cat(*parts: Column) -> pa.Array:
    """Element-wise concatenation; a null part makes the result null."""
    args = [p if isinstance(p, pa.Array) else pa.scalar(p, pa.string()) for p in parts]
    return pc.binary_join_element_wise(*args, "")


def where(mask: np.ndarray, when_true: Column, when_false: Column) -> pa.Array:
    a = when_true if isinstance(when_true, pa.Array) else pa.scalar(when_true, pa.string())
    b = when_false if isinstance(when_false, pa.Array) else pa.scalar(when_false, pa.string())
    return pc.if_else(pa.array(np.asarray(mask, dtype=bool)), a, b)


def null_where(mask: np.ndarray, values: pa.Array) -> pa.Array:
    return where(mask, pa.nulls(len(values), pa.string()), values)


def int_str(values: np.ndarray, width: int = 0) -> pa.Array:
    out = pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())
    return pc.utf8_lpad(out, width=width, padding="0") if width else out


def money(cents: np.ndarray, decimal: str = ".") -> pa.Array:
    """Amounts in cents formatted with two decimals and the given decimal mark."""
    c = np.asarray(cents, dtype=np.int64)
    sign = where(c < 0, "-", "")
    a = np.abs(c)
    return cat(sign, int_str(a // 100), decimal, int_str(a % 100, 2))


def ratio_str(values: np.ndarray, decimals: int = 2) -> pa.Array:
    """Non-negative numbers with a fixed number of decimals and a dot."""
    scale = 10**decimals
    v = np.round(np.asarray(values, dtype=np.float64) * scale).astype(np.int64)
    return cat(int_str(v // scale), ".", int_str(v % scale, decimals))


def _table_strings(fmt: str, first: int, count: int, unit: int) -> pa.Array:
    base = np.datetime64(0, "s") + np.arange(first, first + count, dtype=np.int64) * unit
    return pc.strftime(pa.array(base.astype("datetime64[s]")), format=fmt)


def datetime_str(seconds: np.ndarray, date_fmt: str, time_fmt: str | None = None,
                 sep: str = " ") -> pa.Array:
    """Format epoch seconds (naive local time) with strftime codes, vectorized by lookups.

    Dates are formatted once per distinct day and times once per second of the day, then joined.
    """
    s = np.asarray(seconds, dtype=np.int64)
    if len(s) == 0:
        return pa.array([], pa.string())
    days = s // DAY
    first = int(days.min())
    day_table = _table_strings(date_fmt, first, int(days.max()) - first + 1, DAY)
    out = day_table.take(pa.array(days - first))
    if time_fmt is None:
        return out
    tod = s - days * DAY
    if "%S" in time_fmt:
        time_table = _table_strings(time_fmt, 0, DAY, 1)
        out_t = time_table.take(pa.array(tod))
    else:
        time_table = _table_strings(time_fmt, 0, DAY // 60, 60)
        out_t = time_table.take(pa.array(tod // 60))
    return cat(out, sep, out_t)


def paris_offset_hours(seconds: np.ndarray) -> np.ndarray:
    """UTC offset (1 or 2) of naive Europe/Paris local times (EU summer-time rule)."""
    s = np.asarray(seconds, dtype=np.int64)
    years = s.astype("datetime64[s]").astype("datetime64[Y]").astype(np.int64) + 1970
    y0, y1 = int(years.min(initial=1970)), int(years.max(initial=1970))
    starts = np.empty(y1 - y0 + 1, dtype=np.int64)
    ends = np.empty(y1 - y0 + 1, dtype=np.int64)
    for i, y in enumerate(range(y0, y1 + 1)):  # a handful of years
        mar31, oct31 = date(y, 3, 31), date(y, 10, 31)
        last_sun_mar = day_number(mar31) - (mar31.weekday() + 1) % 7
        last_sun_oct = day_number(oct31) - (oct31.weekday() + 1) % 7
        starts[i] = last_sun_mar * DAY + 2 * 3600
        ends[i] = last_sun_oct * DAY + 3 * 3600
    k = years - y0
    summer = (s >= starts[k]) & (s < ends[k])
    return np.where(summer, 2, 1)


def iso_local(seconds: np.ndarray, with_offset: bool = True) -> pa.Array:
    """ISO 8601 local time, e.g. ``2024-03-02T10:11:12+01:00``."""
    base = datetime_str(seconds, "%Y-%m-%d", "%H:%M:%S", "T")
    if not with_offset:
        return base
    off = paris_offset_hours(seconds)
    return cat(base, where(off == 2, "+02:00", "+01:00"))


def iso_utc(seconds: np.ndarray) -> pa.Array:
    """ISO 8601 UTC with a ``Z``, from naive Paris local times."""
    s = np.asarray(seconds, dtype=np.int64)
    return cat(datetime_str(s - paris_offset_hours(s) * 3600, "%Y-%m-%d", "%H:%M:%S", "T"), "Z")


# --- CSV ------------------------------------------------------------------------------------

def csv_field(values: pa.Array, delimiter: str, quote_all: bool = False) -> pa.Array:
    """Quote a text column where needed (delimiter, quote or line break); null gives ''."""
    v = pc.fill_null(values, "")
    escaped = pc.replace_substring(v, '"', '""')
    quoted = cat('"', escaped, '"')
    if quote_all:
        return quoted
    pattern = "[" + ("\\t" if delimiter == "\t" else _re_escape(delimiter)) + '"\\r\\n]'
    needs = pc.match_substring_regex(v, pattern)
    return pc.if_else(needs, quoted, v)


def _re_escape(ch: str) -> str:
    return "\\" + ch if ch in "\\^]-[" else ch


def write_lines(handle: IO[bytes], lines: pa.Array, encoding: str = "utf-8") -> None:
    """Write a string array of complete lines, fast (one buffer copy)."""
    if len(lines) == 0:
        return
    lines = pc.fill_null(lines, "")
    if lines.offset != 0:
        lines = pa.concat_arrays([lines])
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32 if lines.type == pa.string()
                            else np.int64)
    data = lines.buffers()[2]
    chunk = memoryview(data)[int(offsets[0]):int(offsets[len(lines)])]
    if encoding == "utf-8":
        handle.write(chunk)
    else:
        handle.write(bytes(chunk).decode("utf-8").encode(encoding, errors="replace"))


# --- JSON -----------------------------------------------------------------------------------

def json_str(values: pa.Array) -> pa.Array:
    """JSON string literals (escaped, non-ASCII kept); null gives ``null``."""
    v = pc.replace_substring(values, "\\", "\\\\")
    v = pc.replace_substring(v, '"', '\\"')
    v = pc.replace_substring(v, "\n", "\\n")
    v = pc.replace_substring(v, "\r", "\\r")
    v = pc.replace_substring(v, "\t", "\\t")
    return pc.fill_null(cat('"', v, '"'), "null")


def json_objects(fields: Sequence[tuple[str, pa.Array]]) -> pa.Array:
    """``{"key":value,...}`` from already JSON-encoded values."""
    parts: list[Column] = []
    for i, (key, value) in enumerate(fields):
        parts.append(("{" if i == 0 else ",") + '"' + key + '":')
        parts.append(pc.fill_null(value, "null"))
    parts.append("}")
    return cat(*parts)


def group_join(values: pa.Array, group_sizes: np.ndarray, sep: str) -> pa.Array:
    """Join consecutive runs of ``values`` (run lengths ``group_sizes``) with ``sep``."""
    offsets = np.zeros(len(group_sizes) + 1, dtype=np.int32)
    np.cumsum(group_sizes, out=offsets[1:])
    lists = pa.ListArray.from_arrays(pa.array(offsets), values)
    return pc.binary_join(lists, sep)
