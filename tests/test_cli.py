"""The command line, end to end, as a user runs it (a real subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb


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
