"""The DuckDB store: registering a frame whatever the connection's last result."""

from __future__ import annotations

import pandas as pd

from onetoone.store import Store


def test_register_after_a_result_left_unfinished():
    store = Store(":memory:")
    assert store.con.execute("SELECT 42").fetchone() == (42,)  # one row read, result not ended
    store.register("_frame", pd.DataFrame({"a": [1, 2, 3]}))
    assert store.scalar("SELECT sum(a) FROM _frame") == 6
    store.close()


def test_register_keeps_an_open_transaction_usable():
    store = Store(":memory:")
    store.execute("CREATE SEQUENCE s")
    store.execute("CREATE TABLE t (a INTEGER)")
    with store.transaction() as con:
        con.execute("INSERT INTO t VALUES (1)")
        con.execute("SELECT nextval('s') FROM range(100000)").fetchone()  # may write, unfinished
        store.register("_frame", pd.DataFrame({"a": [2, 3]}))
        con.execute("INSERT INTO t SELECT a FROM _frame")
    assert store.scalar("SELECT sum(a) FROM t") == 6
    store.close()


def test_settings_hold_for_a_block_and_are_restored_even_when_it_fails():
    import pytest

    from onetoone.store.duckdb import duckdb_settings

    store = Store(":memory:")
    con = store.con
    before = con.execute("SELECT current_setting('memory_limit'), "
                         "current_setting('preserve_insertion_order')").fetchall()[0]
    with pytest.raises(RuntimeError), duckdb_settings(con, memory_limit="1GB",
                                               preserve_insertion_order=not before[1]):
        assert con.execute("SELECT current_setting('preserve_insertion_order')"
                           ).fetchall()[0][0] is (not before[1])
        assert con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] \
            != before[0]
        raise RuntimeError("the block fails")
    assert con.execute("SELECT current_setting('memory_limit'), "
                       "current_setting('preserve_insertion_order')").fetchall()[0] == before
    store.close()
