"""CDNOW through an ordinary source configuration: ingest, identify, score, report.

Reproduces Fader, Hardie & Lee (2005): BG/NBD on the 39-week calibration period, and the 1,882
actual repeat transactions of weeks 40-78 that the report sets against the predictions.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from onetoone import Workspace


def shared_data() -> Path:
    """<project root>/../shared/data, or $ONETOONE_SHARED_DATA."""
    env = os.environ.get("ONETOONE_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"

# The module's fixture ingests, identifies and scores the CDNOW sample: seconds, then each
# test reads it.
pytestmark = pytest.mark.slow

PUBLISHED = {"r": 0.2425945, "alpha": 4.4136019, "a": 0.7929199, "b": 2.4258881}


@pytest.fixture(scope="module")
def cdnow(tmp_path_factory):
    sample = shared_data() / "cdnow" / "CDNOW_sample.txt"
    if not sample.exists():
        pytest.skip(f"CDNOW reference data not found at {sample} (set ONETOONE_SHARED_DATA)")
    root = tmp_path_factory.mktemp("cdnow")
    (root / "onetoone.toml").write_text(f'''
[workspace]
name = "cdnow"

[sources.cdnow]
entity = "transactions"
path = "{sample.resolve()}"
format = "csv"
delimiter = "whitespace"
header = false
date_format = "%Y%m%d"
[sources.cdnow.columns]
occurred_at = "column3"
amount = "column5"
[sources.cdnow.identifiers]
customer_number = "column2"

[identify]
probabilistic = false

[value]
holdout_weeks = 39
''', encoding="utf-8")
    ws = Workspace(root)
    ws.ingest()
    ws.identify()
    result = ws.score(as_of="1998-06-30", calibration_end="1997-09-30")
    yield ws, result
    ws.close()


def test_bgnbd_calibration_fit_reproduces_the_paper(cdnow):
    _, result = cdnow
    fit = result.validation.candidates["bgnbd"].model
    for name, value in PUBLISHED.items():
        assert fit.params_[name] == pytest.approx(value, rel=1e-3), name
    assert fit.log_likelihood_ == pytest.approx(-9582.429, abs=0.01)
    assert result.validation.actual_total == 1882
    assert result.validation.holdout_weeks() == (40, 78)
    assert int(result.validation.summary["frequency"].sum()) == 2457


def test_scores_fill_customer_scores_once_per_customer(cdnow):
    ws, _ = cdnow
    n, distinct, nan = ws.store.fetchall(
        "SELECT count(*), count(DISTINCT customer_id), count(*) FILTER (WHERE isnan(clv) OR "
        "isnan(p_alive)) FROM customer_scores WHERE as_of = DATE '1998-06-30'")[0]
    assert n == distinct == 2357 and nan == 0
    ws.score(as_of="1998-06-30", calibration_end="1997-09-30")  # re-scoring replaces
    assert ws.store.scalar("SELECT count(*) FROM customer_scores") == 2357


def test_report_states_predicted_against_the_actual_holdout(cdnow, tmp_path):
    ws, result = cdnow
    path = ws.report(tmp_path / "cdnow.html")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8")))
    predicted = round(result.validation.candidates["bgnbd"].predicted_total)
    assert "Holdout weeks 40-78" in text
    assert "actual 1,882 repeat transactions" in text
    assert f"BG/NBD {predicted:,}" in text and 1600 < predicted < 1700
    assert "r 0.2425945" in text
    for plot in ("value-pyramid", "pareto", "calibration-holdout", "tracking"):
        png = tmp_path / f"cdnow-{plot}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
