"""The mass-defection alert in `onetoone score` and in the report's defection-monitor section:
one workspace where the top tier's at-risk share jumps since the previous as-of date (alert),
one where it falls (no alert)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _defection_data import synthetic_base
from typer.testing import CliRunner

from onetoone import Workspace
from onetoone.cli import app
from onetoone.differentiate.defection import check_alert, monitor_history

SETTINGS = """[workspace]
name = "monitor"
[value]
models = ["bgnbd"]
[defection]
n_estimators = 60
cutoffs = 3
min_training_rows = 0
monitor_margin = 0.05
[needs]
min_customers = 20
"""


# The module's fixture scores a generated base; each test then scores or reports again.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("base") / "ws"
    ws = Workspace.init(root, config_text=SETTINGS)
    synthetic_base(ws.store.con, n=300)
    ws.close()
    return root


def _scored_after(base: Path, target: Path, previous_share: float) -> tuple[str, str]:
    """Copy ``base``, give it a previous monitor date, then `onetoone score` and `report`."""
    shutil.copytree(base, target)
    with Workspace(target) as ws:
        assert check_alert(ws.store).top_share is None  # the monitor never ran
        ws.store.execute(
            "INSERT INTO defection_monitor VALUES (DATE '2024-11-30', 'top', 'all', 10, 1, "
            "1000.0, ?, ?, now())", [1000.0 * previous_share, previous_share])
    runner = CliRunner()
    score = runner.invoke(app, ["score", "--workspace", str(target), "--as-of", "2024-12-31"])
    assert score.exit_code == 0, score.output
    page = target / "out.html"
    report = runner.invoke(app, ["report", "--workspace", str(target), "--output", str(page)])
    assert report.exit_code == 0, report.output
    return score.output, page.read_text(encoding="utf-8")


def test_alert_fires_in_the_score_summary_and_the_report(base, tmp_path):
    output, html = _scored_after(base, tmp_path / "up", previous_share=0.0)
    assert "Mass-defection alert" in output
    with Workspace(tmp_path / "up", read_only=True) as ws:
        alert = check_alert(ws.store, None, 0.05).alert
        history = monitor_history(ws.store)
    assert alert and "up from 0% on 2024-11-30" in alert
    assert " ".join(alert.split()) in " ".join(output.split())
    assert "<h2>Defection monitor</h2>" in html and 'class="alert"' in html
    assert "Mass-defection alert" in html
    # every tier over time, every needs segment at the latest date
    assert {"top", "rest"} <= set(history["value_tier"])
    segments = set(history.loc[history["needs_segment"] != "all", "needs_segment"])
    assert segments and all(s in html for s in segments)
    assert "2024-11-30" in html and "2024-12-31" in html


def test_no_alert_when_the_share_falls(base, tmp_path):
    output, html = _scored_after(base, tmp_path / "down", previous_share=0.99)
    assert "Mass-defection alert" not in output
    assert "Top tier value at risk" in output  # the monitor ran and said so
    assert "<h2>Defection monitor</h2>" in html
    assert 'class="alert"' not in html and "Mass-defection alert" not in html
    assert "99.0 %" in html  # the previous date's share is in the tier table


def test_report_without_monitor_has_no_section(base, tmp_path):
    target = tmp_path / "never"
    shutil.copytree(base, target)
    with Workspace(target, read_only=True) as ws:
        assert monitor_history(ws.store).empty and check_alert(ws.store).alert is None
    page = target / "out.html"
    report = CliRunner().invoke(app, ["report", "--workspace", str(target), "--output", str(page)])
    assert report.exit_code == 0, report.output
    assert "<h2>Defection monitor</h2>" not in page.read_text(encoding="utf-8")
