"""JSON Lines read by pyarrow give exactly what the line-by-line Python reader gives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from onetoone.config import SourceConfig
from onetoone.ingest import _readers
from onetoone.ingest._readers import open_source_file


def _lines() -> list[str]:
    out = []
    for i in range(3000):
        rec: dict[str, Any] = {
            "order_id": f"CMD{i:06d}",
            "account": {
                "id": f"W{i % 97}",
                "tier": None if i % 5 else "gold",
                "address": {"city": "Lyon" if i % 2 else "Besançon", "zip": i % 9},
            },
            "ordered_at": f"2024-0{1 + i % 9}-1{i % 10}T10:0{i % 10}:00+01:00",
            "day": f"2024-02-{10 + i % 18}",
            "total": [13.9, 3.0, 1e-05, 120.0, 0.1 + 0.2][i % 5],
            "qty": i % 7,
            "paid": i % 3 == 0,
            "tags": ["a", "é"] if i % 4 == 0 else [],
            "items": [{"sku": f"S{i}", "qty": 1, "price": 9.5}, {"sku": f"T{i}", "qty": 2}]
            if i % 11
            else [],
            "note": 'emoji 🙂 and "quotes"' if i % 13 == 0 else None,
        }
        if i % 17 == 0:
            del rec["qty"]
        out.append(json.dumps(rec, ensure_ascii=i % 2 == 0))
    out[5] = out[5][:40]  # an interrupted export
    out[2500] = '{"order_id": "X1", "items": "not a list"}'
    out.insert(700, "")  # a blank line
    out.insert(900, "   ")
    out[1500] = out[1500] + " " + out[1501]  # two objects on one line
    return out


def _read(
    path: Path, explode: str | None, fast: bool, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[dict[str, Any]], list[tuple[int, str, str]], list[str]]:
    source = SourceConfig.model_validate(
        {"entity": "transactions", "path": str(path), "explode": explode}
    )
    with monkeypatch.context() as m:
        if not fast:
            m.setattr(_readers, "_arrow_jsonl", lambda *a, **k: None)
            m.setattr(_readers, "_JSONL_MIN_LINES", 10**9)
        else:
            m.setattr(_readers, "_BLOCK_BYTES", 100_000)  # many blocks, halved around faults
            m.setattr(_readers, "_JSONL_MIN_LINES", 64)
        f = open_source_file(path, source)
        rows = []
        for batch in f.batches():
            for row in batch.to_pylist():
                rows.append({k: v for k, v in row.items() if v is not None})
        rejects = [(r.row_number, r.reason, r.raw) for r in f.rejects]
    return rows, sorted(rejects), f.columns


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("explode", [None, "items"])
def test_pyarrow_reads_every_line_as_the_python_reader(
    tmp_path: Path, newline: str, explode: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "orders.jsonl"
    path.write_bytes(("\ufeff" + newline.join(_lines()) + newline).encode("utf-8"))
    fast = _read(path, explode, True, monkeypatch)
    slow = _read(path, explode, False, monkeypatch)
    key = lambda r: (r["_row"], json.dumps(r, sort_keys=True))  # noqa: E731
    assert sorted(fast[0], key=key) == sorted(slow[0], key=key)
    assert fast[1] == slow[1]
    assert set(fast[2]) - set(slow[2]) == set()
    assert len(fast[0]) > 2500 and len(fast[1]) >= (3 if explode else 2)  # real ones compared
    row = next(r for r in fast[0] if r["_row"] == 2)
    assert row["ordered_at"] == "2024-02-11T10:01:00+01:00" and row["day"] == "2024-02-11"
    assert row["total"] == "3.0" and row["paid"] == "false"  # as Python writes them


def test_lone_carriage_returns_and_non_utf8_keep_the_python_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.jsonl"
    path.write_bytes(b'{"a": 1}\r{"a": 2}\r{"a": "x"}\r')
    rows, rejects, _ = _read(path, None, True, monkeypatch)
    assert [(r["_row"], r["a"]) for r in rows] == [(1, "1"), (2, "2"), (3, "x")]
    assert rejects == []
