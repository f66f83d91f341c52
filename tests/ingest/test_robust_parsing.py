"""One record that cannot be parsed never stops a file: it is quarantined with a reason and
the start of its raw text, the rest loads, and read = loaded + quarantined."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onetoone.errors import IngestError

SOURCE = """
[sources.web]
entity = "customers"
path = "{path}"
{extra}
[sources.web.columns]
source_id = "id"
email = "email"
first_name = "name"
"""

MIB = 1 << 20


def _good(i: int, name: str = "Zoé") -> bytes:
    return json.dumps({"id": f"c{i}", "email": f"c{i}@exemple.fr", "name": name},
                      ensure_ascii=False).encode() + b"\n"


def _good_lines(n: int, start: int = 0) -> bytes:
    return b"".join(_good(i) for i in range(start, start + n))


def _ingest(make_workspace, path: str, content: bytes, extra: str = ""):
    ws = make_workspace(SOURCE.format(path=path, extra=extra), {path: content})
    ws.ingest()
    return ws


def _counts(ws) -> tuple[int, int, int]:
    [(read, loaded, quarantined, status)] = ws.store.fetchall(
        "SELECT rows_read, rows_loaded, rows_quarantined, status FROM ingestions")
    assert status == "loaded"
    assert read == loaded + quarantined
    return read, loaded, quarantined


def _quarantine(ws) -> list[tuple[int, str, str]]:
    return ws.store.fetchall("SELECT row_number, reason, raw FROM quarantine ORDER BY row_number")


def _loaded(ws) -> int:
    return int(ws.store.scalar("SELECT count(*) FROM customer_records"))


def _truncated(raw: str, start: str) -> bool:
    """The raw value is the record's first 1,000 characters, marked as cut."""
    return raw.startswith(start) and len(raw) == 1001 and raw.endswith("…")


def test_an_over_deep_json_record_is_quarantined_alone(make_workspace):
    deep = b'{"id": "deep", "x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}\n"
    nested = b'{"id": "nested", "x": ' + b'{"a": ' * 200 + b"1" + b"}" * 200 + b"}\n"
    shallow = b'{"id": "c9999", "email": "ok@exemple.fr", "x": ' + b"[" * 100 + b"]" * 100 + b"}\n"
    # Enough lines for pyarrow's reader, which must never see the deep ones.
    content = _good_lines(1500) + deep + _good_lines(1500, 1500) + nested + shallow
    ws = _ingest(make_workspace, "web.jsonl", content)
    (n1, r1, raw1), (n2, r2, raw2) = _quarantine(ws)
    assert (n1, n2) == (1501, 3002)
    assert r1 == r2 == "record is nested more than 128 levels deep"
    assert _truncated(raw1, '{"id": "deep", "x": [[[') and _truncated(raw2, '{"id": "nested"')
    assert _counts(ws) == (3003, 3001, 2)
    assert _loaded(ws) == 3001


def test_an_over_long_line_is_quarantined_by_its_start(make_workspace):
    long = b'{"id": "long", "blob": "' + b"x" * MIB + b'"}\n'
    content = _good_lines(10) + long + _good_lines(3000, 10)
    ws = _ingest(make_workspace, "web.jsonl", content, "max_line_bytes = 4096")
    [(number, reason, raw)] = _quarantine(ws)
    assert number == 11
    assert reason == (f"line is {len(long) - 1:,} bytes long, over the limit of 4,096 "
                      "(max_line_bytes)")
    assert _truncated(raw, '{"id": "long", "blob": "xxx')
    assert _counts(ws) == (3011, 3010, 1)
    # The values of the other lines are intact (UTF-8 accents, not mojibake).
    assert ws.store.scalar("SELECT DISTINCT first_name FROM customer_records") == "Zoé"


def test_a_line_over_the_default_cap_of_16_mib(make_workspace):
    long = b'{"id": "long", "email": "x@exemple.fr", "blob": "' + b"y" * (17 * MIB) + b'"}\n'
    ws = _ingest(make_workspace, "web.jsonl", _good_lines(5) + long + _good_lines(5, 5))
    [(number, reason, raw)] = _quarantine(ws)
    assert number == 6 and reason.endswith("over the limit of 16,777,216 (max_line_bytes)")
    assert _truncated(raw, '{"id": "long"')
    assert _counts(ws) == (11, 10, 1)


def test_a_file_without_any_newline(make_workspace, tmp_path: Path):
    # One giant JSON record and nothing else: quarantined, not refused for lacking columns.
    giant = b'{"id": "giant", "email": "g@exemple.fr", "blob": "' + b"z" * (2 * MIB) + b'"}'
    ws = _ingest(make_workspace, "web.jsonl", giant, "max_line_bytes = 65536")
    [(number, reason, raw)] = _quarantine(ws)
    assert number == 1 and reason.startswith(f"line is {len(giant):,} bytes long")
    assert _truncated(raw, '{"id": "giant"')
    assert _counts(ws) == (1, 0, 1)
    # The same file once its last record, short enough, lacks only its newline: it loads.
    (tmp_path / "web.jsonl").write_bytes(_good_lines(3) + _good(3).rstrip(b"\n"))
    ws.ingest()
    assert _loaded(ws) == 4


def test_a_csv_without_any_newline_is_one_header_line_too_long(make_workspace):
    header = b"id,email,name," + b"c" * (17 * MIB)
    ws = make_workspace(SOURCE.format(path="crm.csv", extra=""), {"crm.csv": header})
    with pytest.raises(IngestError) as info:
        ws.ingest()
    assert str(info.value) == (f"The first line of crm.csv is {len(header):,} characters long, "
                               "over the limit of 16,777,216 (max_line_bytes): it cannot be "
                               "read as a CSV header.")
    assert "max_line_bytes" in (info.value.hint or "")
    assert ws.store.scalar("SELECT count(*) FROM ingestions") == 0


def test_invalid_utf8_lines_are_quarantined_and_the_rest_read_as_utf8(make_workspace):
    bad = b'{"id": "bad", "email": "b@exemple.fr", "name": "\xff\xfeBesan\xe7on"}\n'
    at = bad.index(b"\xff") + 1  # ASCII before it: its character number
    content = _good_lines(2000) + bad + _good_lines(2000, 2000) + b'{"id": "\xe9"}\n'
    ws = _ingest(make_workspace, "web.jsonl", content)
    (n1, r1, raw1), (n2, r2, raw2) = _quarantine(ws)
    assert (n1, r1) == (2001, f"line is not valid UTF-8 (byte 0xFF at character {at})")
    assert raw1 == '{"id": "bad", "email": "b@exemple.fr", "name": "\ufffd\ufffdBesan\ufffdon"}'
    assert (n2, r2, raw2) == (4002, "line is not valid UTF-8 (byte 0xE9 at character 9)",
                              '{"id": "\ufffd"}')
    assert _counts(ws) == (4002, 4000, 2)
    assert ws.store.fetchall("SELECT DISTINCT first_name FROM customer_records") == [("Zoé",)]
    assert ws.store.scalar("SELECT encoding FROM ingestions") == "utf-8"


def test_declared_utf8_quarantines_invalid_lines_and_legacy_exports_stay_cp1252(
        make_workspace):
    ascii_ = _good_lines(3).replace("Zoé".encode(), b"Zoe")
    bad = b'{"id": "bad", "email": "b@exemple.fr", "name": "\xff"}\n'
    legacy = b"".join(_good(i).decode().encode("cp1252") for i in range(20, 25))
    sources = (SOURCE.format(path="ascii.jsonl", extra='encoding = "utf-8"')
               + SOURCE.format(path="legacy.jsonl", extra="").replace("sources.web",
                                                                      "sources.legacy"))
    ws = make_workspace(sources, {"ascii.jsonl": ascii_ + bad, "legacy.jsonl": legacy})
    ws.ingest()
    # Declared UTF-8: the invalid line is quarantined, not the whole file refused.
    at = bad.index(b"\xff") + 1
    assert [(n, r) for n, r, _ in _quarantine(ws)] == [
        (4, f"line is not valid UTF-8 (byte 0xFF at character {at})")]
    rows = ws.store.fetchall("SELECT source, rows_read, rows_loaded, rows_quarantined, encoding "
                             "FROM ingestions ORDER BY source")
    # A legacy export, its accents all cp1252, is still read as cp1252.
    assert rows == [("legacy", 5, 5, 0, "cp1252"), ("web", 4, 3, 1, "utf-8")]
    assert ws.store.fetchall("SELECT DISTINCT first_name FROM customer_records "
                             "WHERE source = 'legacy'") == [("Zoé",)]


def test_records_that_are_not_json_objects(make_workspace):
    array = b"[" + b", ".join(b"%d" % i for i in range(2000)) + b"]"
    content = (_good_lines(2) + b"[1, 2]\n42\nnull\n\"text\"\n" + array + b"\n"
               + _good_lines(3000, 2))
    ws = _ingest(make_workspace, "web.jsonl", content)
    rows = _quarantine(ws)
    assert [(n, r) for n, r, _ in rows] == [(n, "record is not a JSON object")
                                            for n in range(3, 8)]
    assert [raw for _, _, raw in rows[:4]] == ["[1, 2]", "42", "null", '"text"']
    assert _truncated(rows[4][2], "[0, 1, 2, 3")
    assert _counts(ws) == (3007, 3002, 5)


def test_csv_over_long_lines_and_a_last_line_without_newline(make_workspace):
    header = b"id,email,name\n"
    rows = [b"c%d,c%d@exemple.fr,Zo\xc3\xa9\n" % (i, i) for i in range(3000)]
    long = b"c-long,l@exemple.fr," + b"w" * MIB
    content = (header + b"".join(rows[:100]) + long + b"\r\n" + b"".join(rows[100:])
               + long)  # no final newline
    ws = _ingest(make_workspace, "crm.csv", content, "max_line_bytes = 4096")
    (n1, r1, raw1), (n2, r2, raw2) = _quarantine(ws)
    assert (n1, n2) == (102, 3003)  # line numbers in the file, header included
    assert r1 == r2 == f"line is {len(long):,} bytes long, over the limit of 4,096 (max_line_bytes)"
    assert _truncated(raw1, "c-long,l@exemple.fr,www") and raw1 == raw2
    assert _counts(ws) == (3002, 3000, 2)
    assert ws.store.fetchall("SELECT DISTINCT first_name FROM customer_records") == [("Zoé",)]


def test_csv_line_over_the_default_cap(make_workspace):
    content = (b"id,email,name\nc1,c1@exemple.fr,A\nc2,c2@exemple.fr," + b"v" * (17 * MIB)
               + b"\nc3,c3@exemple.fr,C\n")
    ws = _ingest(make_workspace, "crm.csv", content)
    [(number, reason, raw)] = _quarantine(ws)
    assert number == 3 and reason.endswith("over the limit of 16,777,216 (max_line_bytes)")
    assert _truncated(raw, "c2,c2@exemple.fr,vvv")
    assert _counts(ws) == (3, 2, 1)
