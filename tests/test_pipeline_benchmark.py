"""benchmarks/pipeline.py: every command a user runs, in order, on a small demo company."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "pipeline.py"


@pytest.mark.slow
def test_the_pipeline_benchmark_runs_every_step_and_names_the_slowest_lines(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--customers", "400", "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    table = run.stdout[run.stdout.index("Pipeline at 400 people") :]
    for step in ("generate", "ingest", "identify", "score", "report", "decide", "serve"):
        row = next(line for line in table.splitlines() if line.startswith(f"| {step} |"))
        cells = [c.strip() for c in row.split("|")]
        assert cells[2].endswith(" s") and float(cells[2][:-2].replace(",", "")) > 0
        assert cells[3].endswith(" GiB") and float(cells[3][:-4]) > 0
        assert "onetoone/" in cells[4] and "%" in cells[4], row  # a line of ours, its share
    assert "| **total** |" in table
    assert (workspace / "report" / "index.html").exists()
    samples = json.loads((tmp_path / "ws-profiles" / "score.json").read_text())
    assert any("/onetoone/differentiate/" in path for path, _line, _name, _s in samples)
