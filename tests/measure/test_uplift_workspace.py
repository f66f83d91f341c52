"""``onetoone uplift ACTION``: an action's uplift learned from its decisions, written for every
customer, and read by decisions."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime, timedelta
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

from _service_server import make_workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """2,000 customers, a third in the top tier; the retention offer, decided for all of them
    with half held out, makes top customers buy (+30 points) and puts the others off (-5)."""
    make_workspace(tmp_path)
    rng = np.random.default_rng(7)
    t0 = datetime(2026, 11, 2, 9)
    n = 2000
    ids = [f"C{i:04d}" for i in range(n)]
    top = np.arange(n) % 3 == 0
    treated = rng.random(n) < 0.5
    bought = rng.random(n) < 0.15 + np.where(top, 0.30, -0.05) * treated
    insert(tmp_path,
           customers=pd.DataFrame({"customer_id": ids, "record_count": 1,
                                   "gender": np.where(np.arange(n) % 2, "F", "M")}),
           customer_scores=pd.DataFrame({"customer_id": ids, "as_of": date(2026, 10, 31),
                                         "frequency": np.where(top, 4.0, 1.0),
                                         "clv": np.where(top, 300.0, 40.0),
                                         "value_tier": np.where(top, "top", "rest"),
                                         "scores": "{}"}),
           decisions=pd.DataFrame({"decision_id": [f"d{i}" for i in range(n)],
                                   "customer_id": ids, "channel": "email", "decided_at": t0,
                                   "action_id": "retention_offer", "rank": 1,
                                   "control_group": np.where(treated, None, "holdout")}),
           transactions=pd.DataFrame({"customer_id": np.array(ids)[bought],
                                      "occurred_at": t0 + timedelta(days=2), "amount": 40.0}))
    return tmp_path


def test_onetoone_uplift_writes_each_customers_uplift_and_spares_the_do_not_disturbs(
        workspace: Path) -> None:
    result = CliRunner().invoke(app, ["uplift", "retention_offer", "--workspace",
                                      str(workspace), "--learner", "logistic"])
    assert result.exit_code == 0, result.output
    assert "retention_offer: t_learner on" in result.output and "2,000 customers scored" in \
        result.output
    with duckdb.connect(str(workspace / "onetoone.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT value_tier, scores FROM customer_scores").fetchall()
    by_tier: dict[str, list[float]] = {}
    for tier, scores in rows:
        by_tier.setdefault(tier, []).append(json.loads(scores)["uplift_retention_offer"])
    assert np.mean(by_tier["top"]) > 0.2  # the truth: +0.30
    assert np.mean(by_tier["rest"]) < 0  # the truth: -0.05
    not_offered = int(result.output.split("scored, ")[1].split(" of them")[0].replace(",", ""))
    assert abs(not_offered - len(by_tier["rest"])) < 0.1 * len(by_tier["rest"])


def test_an_action_without_decisions_or_unknown_is_one_sentence(workspace: Path) -> None:
    result = CliRunner().invoke(app, ["uplift", "newsletter", "--workspace", str(workspace)])
    assert result.exit_code == 1 and "has no decision yet" in result.output
    result = CliRunner().invoke(app, ["uplift", "nosuch", "--workspace", str(workspace)])
    assert result.exit_code == 1 and "No action 'nosuch' in the catalog" in result.output
    assert "Traceback" not in result.output
