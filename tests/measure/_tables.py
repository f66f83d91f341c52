"""Helpers of the measurement tests: rows into a workspace's tables."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd


def insert(workspace: Path, **tables: pd.DataFrame) -> None:
    """Append each frame to the workspace table of its name (its columns by name; the table's
    other columns stay empty)."""
    with duckdb.connect(str(workspace / "onetoone.duckdb")) as con:
        for table, frame in tables.items():
            con.register("_frame", frame)
            cols = ", ".join(f'"{c}"' for c in frame.columns)
            con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _frame")
            con.unregister("_frame")
