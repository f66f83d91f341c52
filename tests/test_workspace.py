"""Workspace lifecycle: creation, schema versions and migrations, locking."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from onetoone import Workspace
from onetoone.errors import WorkspaceError
from onetoone.schema import SCHEMA_VERSION, TABLES


def test_init_creates_every_documented_table(tmp_path: Path):
    with Workspace.init(tmp_path / "shop") as ws:
        assert set(TABLES) <= {name for (name,) in ws.store.fetchall(
            "SELECT table_name FROM information_schema.tables")}
        assert ws.store.schema_version() == SCHEMA_VERSION
    assert (tmp_path / "shop" / "onetoone.toml").is_file()


def test_a_database_from_a_newer_version_says_what_to_do(tmp_path: Path):
    Workspace.init(tmp_path).close()
    con = duckdb.connect(str(tmp_path / "onetoone.duckdb"))
    con.execute("UPDATE onetoone_meta SET value = '999' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(WorkspaceError) as info:
        Workspace(tmp_path)
    assert "newer onetoone" in str(info.value) and "Upgrade" in (info.value.hint or "")


def test_an_older_database_is_migrated_in_place(tmp_path: Path):
    Workspace.init(tmp_path).close()
    con = duckdb.connect(str(tmp_path / "onetoone.duckdb"))
    con.execute("DROP TABLE responses")
    con.execute("UPDATE onetoone_meta SET value = '0' WHERE key = 'schema_version'")
    con.close()
    with Workspace(tmp_path) as ws:
        assert ws.store.schema_version() == SCHEMA_VERSION
        assert ws.store.scalar("SELECT count(*) FROM responses") == 0


def test_opening_a_folder_that_is_not_a_workspace(tmp_path: Path):
    with pytest.raises(WorkspaceError, match="not a onetoone workspace"):
        Workspace(tmp_path)
