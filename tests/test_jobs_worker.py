"""A step the server runs in a worker process writes only the tables it copies back."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from onetoone import Workspace
from onetoone.cli import app
from onetoone.jobs import IN_WORKER, STEPS
from onetoone.schema import TABLES

pytestmark = pytest.mark.slow


def _checksums(ws: Workspace) -> dict[str, tuple[object, ...]]:
    return {name: tuple(ws.store.fetchall(
        f'SELECT count(*), sum(hash(t)) FROM "{name}" t')[0]) for name in TABLES}


@pytest.mark.parametrize("step", sorted(IN_WORKER))
def test_the_step_writes_no_table_but_those_copied_back(tmp_path: Path, step: str) -> None:
    root = tmp_path / "demo"
    result = CliRunner().invoke(
        app, ["demo", "--customers", "300", "--seed", "4", "--workspace", str(root)])
    assert result.exit_code == 0, result.output
    with Workspace(root) as ws:
        before = _checksums(ws)
        STEPS[step][0](ws, {"as_of": "2026-12-01"} if step == "score" else {},
                       lambda _part, _done: None)
        after = _checksums(ws)
    changed = {name for name in TABLES if before[name] != after[name]}
    assert changed and changed <= set(IN_WORKER[step]), changed - set(IN_WORKER[step])
