"""The command line, end to end, as a user runs it (a real subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

# Each test runs the real command line in subprocesses on a generated company: seconds each.
pytestmark = pytest.mark.slow


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "onetoone.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_init_ingest_and_clear_errors(tmp_path: Path):
    assert run("init", "shop", cwd=tmp_path).returncode == 0
    shop = tmp_path / "shop"
    (shop / "crm.csv").write_text("id;mail\n1;a@b.fr\n2;c@d.fr\n", encoding="utf-8")
    done = run("ingest", "shop/crm.csv", "--entity", "customers", "--map", "source_id=id",
               "--map", "email=mail", "--workspace", str(shop), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Ingestion" in done.stdout
    con = duckdb.connect(str(shop / "onetoone.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM customer_records").fetchone() == (2,)
    con.close()

    bad = run("ingest", "--workspace", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert bad.returncode == 1
    assert "is not a onetoone workspace" in bad.stderr and "Traceback" not in bad.stderr

    (shop / "onetoone.toml").write_text('[workspace]\nnmae = "x"\n', encoding="utf-8")
    bad = run("ingest", "--workspace", str(shop), cwd=tmp_path)
    assert bad.returncode == 1
    assert "Unknown key 'nmae' in [workspace]" in bad.stderr and "line 2" in bad.stderr


def test_demo_end_to_end(tmp_path: Path):
    done = run("demo", "--workspace", "demo", "--customers", "400", "--seed", "7", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Demo company of 400 people" in done.stdout
    root = tmp_path / "demo"
    assert (root / "truth" / "records.parquet").is_file()
    con = duckdb.connect(str(root / "onetoone.duckdb"), read_only=True)
    # Every row of every file is accounted for, loaded or quarantined.
    bad = con.execute("SELECT count(*) FROM ingestions "
                      "WHERE rows_read <> rows_loaded + rows_quarantined").fetchone()
    assert bad == (0,)
    sources = {s for (s,) in con.execute("SELECT DISTINCT source FROM ingestions").fetchall()}
    assert len(sources) >= 7
    assert con.execute("SELECT count(*) FROM customer_records").fetchone()[0] > 400
    # Ground truth never lands in the workspace's tables.
    tables = {t for (t,) in con.execute(
        "SELECT table_name FROM information_schema.tables").fetchall()}
    assert not any("truth" in t for t in tables)
    con.close()
    again = run("demo", "--workspace", "demo", cwd=tmp_path)
    assert again.returncode == 1 and "already holds a workspace" in again.stderr


def test_what_the_cli_writes_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    import stat

    from typer.testing import CliRunner

    from onetoone.cli import app

    root = tmp_path / "demo"
    result = CliRunner().invoke(
        app, ["demo", "--customers", "200", "--seed", "2", "--workspace", str(root)])
    assert result.exit_code == 0, result.output
    written = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".duckdb" for p in written) and len(written) > 5
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
