"""Value scoring (score_value), tiers and Pareto: rules, fallbacks and bad input, no NaN."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from onetoone.config import ValueSettings
from onetoone.differentiate import tiers
from onetoone.differentiate.btyd import clv as btyd_clv
from onetoone.differentiate.value import ScoringError, score_value

TODAY = "2026-01-15"
NUMERIC = ["frequency", "recency", "T", "monetary_value", "p_alive", "clv", "expected_spend",
           "margin", "historical_spend", "value_rank", "pareto_share"]


def simulate_transactions(n: int = 400, seed: int = 1, start: str = "2024-01-01",
                          days: int = 700) -> pd.DataFrame:
    """BG/NBD customers (Poisson purchases, drop-out after each with probability p) as a log."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(0.6, 1 / 6.0, n)  # per day ~ one purchase every 10 days on average
    p = rng.beta(1.0, 4.0, n)
    first = rng.integers(0, days // 2, n)
    rows = []
    for i in range(n):
        t = float(first[i])
        rows.append((f"c{i:04d}", t, rng.gamma(3.0, 15.0)))
        while True:
            if rng.random() < p[i]:
                break
            t += rng.exponential(1 / lam[i])
            if t >= days:
                break
            rows.append((f"c{i:04d}", t, rng.gamma(3.0, 15.0)))
    frame = pd.DataFrame(rows, columns=["customer", "t", "amount"])
    frame["occurred_at"] = pd.Timestamp(start) + pd.to_timedelta(frame["t"], unit="D")
    frame["margin"] = np.nan
    return frame[["customer", "occurred_at", "amount", "margin"]]


def tx(rows: list[tuple[str, str, float]], margin: float = np.nan) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer", "occurred_at", "amount"])
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"])
    frame["margin"] = margin
    return frame


def assert_finite(scores: pd.DataFrame, key: str) -> None:
    values = scores[[*NUMERIC, key]].to_numpy(dtype=float)
    assert np.isfinite(values).all()


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    return simulate_transactions()


def test_model_choice_by_holdout_and_refit(simulated):
    ids = [*simulated["customer"].unique(), "prospect"]
    result = score_value(simulated, ids, ValueSettings(), today=TODAY)
    v = result.validation
    assert v is not None and v.chosen in ("bgnbd", "paretonbd", "mbgnbd")
    best = min(v.candidates.values(), key=lambda c: c.rmse)
    assert best.name == v.chosen == result.model_name
    # the chosen model predicts the holdout total within 25 % on data from its own family
    assert abs(best.predicted_total - v.actual_total) < 0.25 * v.actual_total
    # refit on all data: different parameters from the calibration fit
    assert result.model.params_ != best.model.params_
    assert result.horizon_key == "expected_purchases_52w"
    s = result.scores
    assert len(s) == len(ids) and s.index.is_unique
    assert_finite(s, result.horizon_key)
    assert s.loc["prospect", "fallback"] == "no_purchase"
    assert s.loc["prospect", ["clv", "p_alive", result.horizon_key]].tolist() == [0, 0, 0]
    assert s.loc["prospect", "value_tier"] == "rest"
    # tracking and calibration tables have the shapes the report plots
    by_f = v.by_frequency(v.chosen)
    assert list(by_f.index) == list(range(8))
    assert by_f["customers"].sum() == len(v.summary)
    track = v.tracking(v.chosen)
    assert track["actual"].is_monotonic_increasing
    assert track["actual"].iloc[-1] == v.summary["frequency"].sum() + v.actual_total


def test_clv_equals_the_btyd_clv_times_margin(simulated):
    settings = ValueSettings(default_margin=0.4, horizon_months=6, monthly_discount_rate=0.02)
    result = score_value(simulated, simulated["customer"].unique(), settings, today=TODAY)
    s = result.scores
    expected = btyd_clv(result.model, result.spend_model, s["frequency"], s["recency"], s["T"],
                        s["monetary_value"], margin=0.4, monthly_discount_rate=0.02,
                        horizon_months=6, time_unit="week")
    np.testing.assert_allclose(s["clv"].to_numpy(), np.asarray(expected), rtol=1e-9)


def test_tiers_follow_the_documented_rules(simulated):
    settings = ValueSettings(top_share=0.1)
    result = score_value(simulated, simulated["customer"].unique(), settings, today=TODAY)
    s = result.scores
    n_top = int((s["value_tier"] == "top").sum())
    assert n_top == int(np.ceil(0.1 * len(s)))
    assert s.loc[s["value_tier"] == "top", "clv"].min() >= s.loc[
        s["value_tier"] != "top", "clv"].max()
    grow = s[s["value_tier"] == "growable"]
    key = result.horizon_key
    assert len(grow) > 0
    assert (grow[key] >= s[key].median()).all()
    assert (grow["expected_spend"] <= s["expected_spend"].median()).all()
    assert (s["value_tier"] != "below_zero").all()  # no cost, no returns: nobody below zero
    assert sorted(s["value_rank"]) == list(range(1, len(s) + 1))
    assert s.loc[s["value_rank"] == len(s), "pareto_share"].iloc[0] == pytest.approx(1.0)
    pareto = result.pareto()
    assert 0 < pareto["top_1pct"] < pareto["top_20pct"] <= 1


def test_cost_to_serve_makes_clv_below_zero(simulated):
    settings = ValueSettings(cost_to_serve_per_year=40.0)
    s = score_value(simulated, simulated["customer"].unique(), settings, today=TODAY).scores
    below = s[s["value_tier"] == "below_zero"]
    assert len(below) > 0 and (below["clv"] < 0).all()
    assert (s.loc[s["clv"] < 0, "value_tier"] == "below_zero").all()


def test_returns_net_and_returns_only_customers_are_below_zero(simulated):
    extra = tx([
        ("refunder", "2025-03-01", 50.0), ("refunder", "2025-03-01", -80.0),  # nets to -30
        ("returner", "2025-02-01", 100.0), ("returner", "2025-04-01", -100.0),  # later return
        ("zero", "2025-02-01", 0.0),  # a free order is a purchase occasion
    ])
    data = pd.concat([simulated, extra], ignore_index=True)
    result = score_value(data, data["customer"].unique(), ValueSettings(default_margin=0.5),
                         today=TODAY)
    s = result.scores
    assert_finite(s, result.horizon_key)
    assert s.loc["refunder", "fallback"] == "returns_only"
    assert s.loc["refunder", "clv"] < 0 and s.loc["refunder", "value_tier"] == "below_zero"
    assert s.loc["refunder", "historical_spend"] == -30.0
    # a later return takes back the whole purchase: nothing kept, CLV 0 (not positive)
    assert pd.isna(s.loc["returner", "fallback"])
    assert s.loc["returner", "clv"] == pytest.approx(0.0, abs=1e-9)
    assert pd.isna(s.loc["zero", "fallback"]) and s.loc["zero", "frequency"] == 0
    assert any("returns cancel" in n for n in result.notes)


def test_product_margins_weight_clv(simulated):
    base = score_value(simulated, simulated["customer"].unique(), ValueSettings(),
                       today=TODAY).scores
    with_margin = simulated.assign(margin=0.6)
    s = score_value(with_margin, simulated["customer"].unique(), ValueSettings(),
                    today=TODAY).scores
    np.testing.assert_allclose(s["margin"], 0.6)
    np.testing.assert_allclose(s["clv"], base["clv"] * 0.6 / 0.3, rtol=1e-9)


def test_as_of_defaults_to_last_day_and_later_transactions_are_not_used(simulated):
    result = score_value(simulated, simulated["customer"].unique(), ValueSettings(),
                         today=TODAY)
    assert result.as_of == simulated["occurred_at"].max().normalize()
    earlier = score_value(simulated, simulated["customer"].unique(), ValueSettings(),
                          as_of="2025-01-31", today=TODAY)
    assert earlier.as_of == pd.Timestamp("2025-01-31")
    assert any("after the as-of date" in n for n in earlier.notes)
    late = simulated.groupby("customer")["occurred_at"].min() > pd.Timestamp("2025-02-01")
    assert (earlier.scores.loc[late[late].index, "fallback"] == "no_purchase").all()


def test_bad_dates_are_clear_errors(simulated):
    ids = simulated["customer"].unique()
    with pytest.raises(ScoringError, match="in the future"):
        score_value(simulated, ids, ValueSettings(), as_of="2030-01-01", today=TODAY)
    with pytest.raises(ScoringError, match="before the first transaction"):
        score_value(simulated, ids, ValueSettings(), as_of="2020-01-01", today=TODAY)
    with pytest.raises(ScoringError, match="not a date"):
        score_value(simulated, ids, ValueSettings(), as_of="yesterday-ish", today=TODAY)
    with pytest.raises(ScoringError, match="longer than the purchase history"):
        score_value(simulated, ids, ValueSettings(), calibration_end="2023-06-30", today=TODAY)


def test_future_dated_transactions_are_left_out(simulated):
    bad = tx([("c0000", "2027-05-01", 30.0)])
    data = pd.concat([simulated, bad], ignore_index=True)
    result = score_value(data, data["customer"].unique(), ValueSettings(), today=TODAY)
    assert result.as_of <= pd.Timestamp(TODAY)
    assert any("after today" in n for n in result.notes)


def test_holdout_longer_than_the_data_falls_back_without_choice(simulated):
    settings = ValueSettings(holdout_weeks=500, models=["paretonbd", "bgnbd"])
    result = score_value(simulated, simulated["customer"].unique(), settings, today=TODAY)
    assert result.validation is None and result.model_name == "paretonbd"
    assert any("longer than the purchase history" in n for n in result.notes)


def test_too_few_customers_gives_rfm_only_scores():
    data = tx([("a", "2025-01-01", 10.0), ("a", "2025-02-01", 20.0), ("b", "2025-01-15", 5.0),
               ("c", "2025-03-01", -5.0)])
    result = score_value(data, ["a", "b", "c", "d"], ValueSettings(), today=TODAY)
    s = result.scores
    assert result.model_name == "rfm" and result.model is None
    assert_finite(s, result.horizon_key)
    assert s.loc["a", "p_alive"] == 1.0 and s.loc["a", "clv"] > s.loc["b", "clv"] > 0
    assert s.loc["c", "fallback"] == "returns_only" and s.loc["c", "clv"] <= 0
    assert s.loc["d", "fallback"] == "no_purchase"
    assert any("RFM-only" in n for n in result.notes)


def test_every_customer_bought_on_the_as_of_day_t_is_zero():
    data = tx([(f"c{i}", "2025-05-05 10:00", 10.0 + i) for i in range(50)])
    result = score_value(data, data["customer"], ValueSettings(), today=TODAY)
    s = result.scores
    assert (s["T"] == 0).all() and result.model_name == "rfm"
    assert_finite(s, result.horizon_key)
    assert any("T = 0" in n for n in result.notes)


def test_daily_time_unit_and_month_unit_give_finite_scores(simulated):
    for unit, key in (("day", "expected_purchases_365d"), ("month", "expected_purchases_12m")):
        result = score_value(simulated, simulated["customer"].unique(),
                             ValueSettings(time_unit=unit, holdout_weeks=20), today=TODAY)
        assert result.horizon_key == key
        assert_finite(result.scores, key)


def test_pareto_helpers():
    clv = pd.Series([10.0, 0.0, -5.0, 30.0, 10.0], index=list("abcde"))
    ranks = tiers.value_ranks(clv)
    assert ranks.tolist() == [2, 4, 5, 1, 3]  # tie a/e broken by id
    shares = tiers.pareto_shares(clv, ranks)
    assert shares["d"] == pytest.approx(0.6) and shares["c"] == pytest.approx(1.0)
    x, y = tiers.pareto_curve(clv)
    assert x[0] == 0 and y[0] == 0 and y[-1] == pytest.approx(1.0)
    assert tiers.top_share_of_value(clv, 0.2) == pytest.approx(0.6)
