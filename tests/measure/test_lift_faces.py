"""``onetoone lift`` and ``GET /v1/lift`` on a workspace with decisions and a control group."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from onetoone.cli import app

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _tables import insert

from _service_server import Server, make_workspace


def _decisions(root: Path) -> None:
    """400 treated customers of whom 100 buy within 14 days; 200 controls of whom 30 buy."""
    t0 = datetime(2026, 11, 1)
    i = np.arange(600)
    treated = i < 400
    bought = np.where(treated, i < 100, i < 430)
    insert(root,
           decisions=pd.DataFrame({
               "decision_id": [f"d{k}" for k in i], "customer_id": [f"C{k}" for k in i],
               "channel": np.where(i % 2, "email", "sms"), "decided_at": t0,
               "action_id": "winback", "rank": 1,
               "control_group": np.where(treated, None, "universal"),
               "context": np.where(i % 2, '{"context": {"campaign": "run-B"}}',
                                   '{"context": {"campaign": "run-A"}}')}),
           transactions=pd.DataFrame({"customer_id": [f"C{k}" for k in i[bought]],
                                      "occurred_at": t0 + timedelta(days=3), "amount": 50.0}))


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    keys = make_workspace(tmp_path)
    _decisions(tmp_path)
    return tmp_path, keys


def test_onetoone_lift_prints_every_action_with_its_interval_and_status(
        workspace: tuple[Path, dict[str, str]]) -> None:
    root, _ = workspace
    result = CliRunner().invoke(app, ["lift", "--workspace", str(root)])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "all marketing" in line
            or "winback" in line]
    assert len(rows) == 2 and all("+10.0%" in r and "significant" in r for r in rows)
    assert "25.0%" in result.output and "15.0%" in result.output
    # purchases come on day 3: within one day nobody converted, and 200 controls are too few
    # to detect +2 points over 0 %
    small = CliRunner().invoke(app, ["lift", "--workspace", str(root), "--window-days", "1",
                                     "--detect", "0.02"])
    assert small.exit_code == 0
    assert "customers per group are needed to detect a lift of +2.0%" in small.output
    run = CliRunner().invoke(app, ["lift", "--workspace", str(root), "--campaign", "run-A"])
    assert run.exit_code == 0 and "in run-A" in run.output
    assert "  200  " in run.output and "  100  " in run.output  # its half of each group
    none = CliRunner().invoke(app, ["lift", "--workspace", str(root), "--campaign", "run-Z"])
    assert none.exit_code == 1 and "No decision of campaign run 'run-Z'" in none.output
    unknown = CliRunner().invoke(app, ["lift", "--workspace", str(root), "--action", "nosuch"])
    assert unknown.exit_code == 1
    assert "No decision of action 'nosuch' yet" in unknown.output
    assert "Traceback" not in unknown.output


@pytest.mark.slow
def test_get_v1_lift_answers_json_without_nan_to_a_reader(
        workspace: tuple[Path, dict[str, str]]) -> None:
    root, keys = workspace
    server = Server(root, keys).start()
    try:
        with server.client("reader") as c:
            answer = c.get("/v1/lift", params={"action": "winback", "window_days": 14})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            (only,) = body["lifts"]
            assert (only["n_treated"], only["n_control"]) == (400, 200)
            assert only["difference"] == pytest.approx(0.10)
            assert only["status"] == "significant" and body["window_days"] == 14
            assert c.get("/v1/lift", params={"window_days": 0}).status_code == 422
            missing = c.get("/v1/lift", params={"action": "nosuch"})
            assert missing.status_code == 404 and "nosuch" in missing.json()["message"]
            assert len(c.get("/v1/lift").json()["lifts"]) == 2  # all marketing, winback
            assert c.get("/v1/kpis").json() == {"kpis": []}  # no scoring run yet
        with server.client("decider") as c:
            assert c.get("/v1/lift").status_code == 403
            assert c.get("/v1/kpis").status_code == 403
    finally:
        server.stop()


@pytest.mark.slow
def test_the_report_says_what_our_marketing_changed(
        workspace: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, _ = workspace
    out = tmp_path / "report" / "index.html"
    result = CliRunner().invoke(app, ["report", "--workspace", str(root), "--output", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    section = html[html.index("What our marketing changed"):]
    assert "within 14 days" in section
    assert section.count("significant") == 2 and "winback" in section
    assert "25.0 %" in section and "15.0 %" in section


def test_onetoone_kpis_stores_and_prints_the_months(workspace: tuple[Path, dict[str, str]]
                                                     ) -> None:
    root, _ = workspace
    result = CliRunner().invoke(app, ["kpis", "--workspace", str(root)])
    assert result.exit_code == 0, result.output
    assert "2026-11" in result.output and "130" in result.output  # 100 + 30 new buyers
    with duckdb.connect(str(root / "onetoone.duckdb"), read_only=True) as con:
        assert con.execute("SELECT value FROM kpis WHERE kpi = 'buyers'").fetchall() == [(130,)]
