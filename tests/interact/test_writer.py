"""The group-commit writer: deferred works share later commits, in order, and are never lost on
a clean close."""

from __future__ import annotations

from pathlib import Path

import duckdb

from onetoone.interact.writer import GroupCommitWriter, Txn


def _count(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return int(con.execute("SELECT count(*) FROM t").fetchone()[0])  # type: ignore[index]


def _tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TABLE t (v INTEGER)")
    for table in ("interactions", "transactions"):  # where the writer reads known event ids
        con.execute(f"CREATE TABLE {table} (event_id VARCHAR)")


def _insert(value: int):  # type: ignore[no-untyped-def]
    def work(txn: Txn) -> None:
        txn.cur.execute("INSERT INTO t VALUES (?)", [value])

    return work


def test_deferred_works_wait_for_the_next_write_or_their_delay(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    _tables(con)
    writer = GroupCommitWriter(con, group_commit_ms=0, deferred_ms=60_000)
    deferred = [writer.submit(_insert(i), deferred=True) for i in range(5)]
    assert not any(f.done() for f in deferred)  # no commit of their own
    writer.write(_insert(99))  # an ordinary write commits them with it, first
    assert all(f.done() for f in deferred)
    assert con.execute("SELECT list(v ORDER BY rowid) FROM t").fetchone()[0] == [0, 1, 2, 3, 4, 99]
    later = writer.submit(_insert(7), deferred=True)
    writer.sync()  # read-your-writes
    assert later.done()
    writer.submit(_insert(8), deferred=True)
    writer.close()  # a clean close commits what is still deferred
    con.close()
    assert _count(path) == 8


def test_deferred_works_commit_alone_after_their_delay(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    _tables(con)
    writer = GroupCommitWriter(con, group_commit_ms=0, deferred_ms=20)
    futures = [writer.submit(_insert(i), deferred=True) for i in range(3)]
    for f in futures:
        f.result(10)
    assert writer.groups == 1  # the three shared one commit
    writer.sync()  # nothing deferred is pending: no commit
    assert writer.groups == 1
    writer.close()
    con.close()
