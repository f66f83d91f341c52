"""Store.atomic: everything a block writes in one transaction (a job), the transactions inside
it joined, and nothing kept when any part fails, even a part whose error was caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from onetoone.errors import WorkspaceError
from onetoone.store import DatabaseError, Store, engine_settings, transaction


def _store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "t.duckdb")
    store.execute("CREATE TABLE t (a INTEGER)")
    store.execute("INSERT INTO t VALUES (0)")
    return store


def _values(store: Store) -> list[int]:
    with store.cursor() as other:  # what another cursor sees: the committed rows only
        return [r[0] for r in other.fetchall("SELECT a FROM t ORDER BY a")]


def test_transactions_inside_join_it_and_commit_at_its_end(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with store.cursor() as job:
        with job.atomic():
            with job.transaction() as con:
                con.execute("INSERT INTO t VALUES (1)")
            with transaction(job.con) as con:  # on the bare connection too
                con.execute("INSERT INTO t VALUES (2)")
            job.execute("INSERT INTO t VALUES (3)")  # outside any inner transaction
            assert _values(store) == [0]  # nothing committed yet
        assert _values(store) == [0, 1, 2, 3]
        with job.transaction() as con:  # after the block: transactions of their own again
            con.execute("INSERT INTO t VALUES (4)")
    assert _values(store) == [0, 1, 2, 3, 4]
    store.close()


def test_an_error_rolls_every_part_back(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with pytest.raises(KeyError), store.atomic():
        with store.transaction() as con:
            con.execute("INSERT INTO t VALUES (1)")
        with store.transaction() as con:
            con.execute("INSERT INTO t VALUES (2)")
            raise KeyError("second part")
    assert _values(store) == [0]
    store.close()


def test_a_failed_part_whose_error_is_caught_still_fails_the_block(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with pytest.raises(WorkspaceError, match=r"ValueError.*Nothing of it was kept"), \
            store.atomic():
        store.execute("INSERT INTO t VALUES (1)")
        try:
            with store.transaction() as con:
                con.execute("INSERT INTO t VALUES (2)")
                raise ValueError("caught below")
        except ValueError:
            pass
        store.execute("INSERT INTO t VALUES (3)")
    assert _values(store) == [0]
    store.close()


def test_a_failed_statement_whose_error_is_caught_is_not_committed_as_nothing(
        tmp_path: Path) -> None:
    """DuckDB answers COMMIT on a transaction aborted by an error by rolling it back without
    a word; the block says so instead of ending as if it had written."""
    store = _store(tmp_path)
    with pytest.raises(WorkspaceError, match="A statement failed"), store.atomic():
        store.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(DatabaseError):
            store.execute("SELECT 'x'::INTEGER")
    assert _values(store) == [0]
    store.close()


def test_settings_are_restored_when_a_statement_fails_inside(tmp_path: Path) -> None:
    store = _store(tmp_path)
    before = store.scalar("SELECT current_setting('TimeZone')")
    with pytest.raises(DatabaseError, match="Conversion"), store.atomic(), \
            engine_settings(store.con, TimeZone="Asia/Tokyo"), store.transaction() as con:
        con.execute("INSERT INTO t VALUES (1)")
        con.execute("SELECT 'x'::INTEGER")  # aborts the transaction
    assert store.scalar("SELECT current_setting('TimeZone')") == before
    assert _values(store) == [0]
    with store.atomic():  # the store is usable again
        store.execute("INSERT INTO t VALUES (5)")
    assert _values(store) == [0, 5]
    store.close()


def test_blocks_do_not_nest(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with pytest.raises(RuntimeError, match="do not nest"), store.atomic(), store.atomic():
        pass
    assert _values(store) == [0]
    store.close()


def test_rows_other_cursors_insert_meanwhile_are_kept(tmp_path: Path) -> None:
    """The service inserts while a job replaces a table's rows: DuckDB's snapshot isolation
    keeps both; the job's delete does not see, nor remove, the rows inserted after it began."""
    store = _store(tmp_path)
    with store.cursor() as job, store.cursor() as writer:
        with job.atomic():
            job.execute("DELETE FROM t")
            with writer.transaction() as con:
                con.execute("INSERT INTO t VALUES (7)")
            job.execute("INSERT INTO t VALUES (1)")
        assert _values(store) == [1, 7]
    store.close()
