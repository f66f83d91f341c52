"""Defection: point-in-time features, labels, the model, reasons, bad input, the monitor."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _defection_data import START, synthetic_base
from sklearn.metrics import roc_auc_score

from onetoone.config import Config, DefectionSettings
from onetoone.differentiate.defection import (
    DefectionError,
    DefectionModel,
    InsufficientHistoryError,
    SingleClassError,
    build_training_set,
    check_alert,
    compute_features,
    labels,
    purchase_horizon,
    score_defection,
    update_monitor,
)
from onetoone.differentiate.defection._reasons import every, reasons
from onetoone.differentiate.defection._sentiment import sentiment_scores
from onetoone.errors import ModelError, OneToOneError
from onetoone.store import Store

FAST = {"n_estimators": 80, "cutoffs": 3}


@pytest.fixture(scope="module")
def base():
    store = Store(":memory:")
    truth = synthetic_base(store.con, n=500, contracts=True)
    yield store, truth
    store.close()


@pytest.fixture(scope="module")
def result(base):
    store, _ = base
    return score_defection(store, "2024-12-31", DefectionSettings(kind="purchase", **FAST))


def _scramble_future(con, cutoff: pd.Timestamp) -> None:
    """Change, add and delete rows dated on or after ``cutoff`` in every silo."""
    c = cutoff.to_pydatetime()
    con.execute("UPDATE transactions SET amount = amount * 7 WHERE occurred_at >= ?", [c])
    con.execute("DELETE FROM transactions WHERE occurred_at >= ? AND hash(source_id) % 3 = 0",
                [c])
    con.execute("INSERT INTO transactions (customer_id, occurred_at, amount, source_id) "
                "SELECT customer_id, ?::TIMESTAMP + INTERVAL 3 DAY, 999, 'future' || "
                "customer_id FROM customers", [c])
    con.execute("INSERT INTO interactions (customer_id, occurred_at, channel, type) "
                "SELECT customer_id, ?::TIMESTAMP + INTERVAL 1 HOUR, 'phone', 'complaint' "
                "FROM customers", [c])
    con.execute("UPDATE interactions SET type = 'open' WHERE occurred_at >= ?", [c])
    con.execute("INSERT INTO feedback (customer_id, occurred_at, kind, score) "
                "SELECT customer_id, ?::TIMESTAMP, 'nps', 0 FROM customers", [c])
    con.execute("INSERT INTO social_posts (customer_id, occurred_at, text, source_id) "
                "SELECT customer_id, ?::TIMESTAMP, 'nul, decu', 'f' || customer_id "
                "FROM customers", [c])
    con.execute("INSERT INTO consents (customer_id, occurred_at, channel, granted) "
                "SELECT customer_id, ?::TIMESTAMP, 'sms', false FROM customers", [c])
    con.execute("UPDATE contracts SET ended_at = ?::TIMESTAMP + INTERVAL 5 DAY "
                "WHERE ended_at IS NULL OR ended_at >= ?", [c, c])
    con.execute("INSERT INTO contracts (source_id, customer_id, started_at) "
                "SELECT 'fk' || customer_id, customer_id, ? FROM customers", [c])


def test_no_feature_reads_a_row_dated_after_its_cutoff():
    cutoffs = [pd.Timestamp("2023-09-01"), pd.Timestamp("2024-03-01")]
    later = pd.Timestamp("2024-06-01")
    store = Store(":memory:")
    synthetic_base(store.con, n=300, contracts=True)
    before = compute_features(store, [*cutoffs, later], population="purchase").features
    _scramble_future(store.con, pd.Timestamp("2024-03-01"))
    after = compute_features(store, [*cutoffs, later], population="purchase").features
    for cut in cutoffs:
        a, b = before.xs(cut, level="cutoff"), after.xs(cut, level="cutoff")
        # Counts and amounts must match exactly; the BTYD columns come from a maximum-likelihood
        # fit whose optimizer may stop a hair apart when the rows arrive in another order.
        fitted = [c for c in a.columns if c.startswith(("p_alive", "expected_"))]
        pd.testing.assert_frame_equal(a.drop(columns=fitted), b.drop(columns=fitted),
                                      check_exact=False, rtol=1e-9)
        pd.testing.assert_frame_equal(a[fitted], b[fitted], check_exact=False, rtol=1e-3)
    # the scrambling is visible to a cutoff after it, so the check above can fail
    a, b = before.xs(later, level="cutoff"), after.xs(later, level="cutoff")
    assert not a.reindex(b.index).equals(b)
    assert len(before.columns) > 40  # every silo brought features
    store.close()


def test_training_set_stacks_cutoffs_with_labels_from_after_them(base):
    store, truth = base
    ts = build_training_set(store, DefectionSettings(kind="purchase", cutoffs=3,
                                                     horizon_days=60, cutoff_step_days=60,
                                                     min_training_rows=0),
                            "2024-12-31")
    assert len(ts.cutoffs) == 3 and ts.cutoffs[-1] == pd.Timestamp("2024-11-01")
    assert set(ts.X.index.get_level_values("cutoff")) == set(ts.cutoffs)
    assert ts.y.isin([0, 1]).all() and 0.1 < ts.y.mean() < 0.95
    # a customer acquired after a cutoff is not in that cutoff's population
    first = START + pd.to_timedelta(truth["acquired"], unit="D")
    for cut in ts.cutoffs:
        members = ts.X.xs(cut, level="cutoff").index
        assert (first.reindex(members) < cut).all()
    # latent defection before the cutoff means a label of 1
    cut = ts.cutoffs[0]
    y = ts.y.xs(cut, level="cutoff")
    dead = (START + pd.to_timedelta(truth["defect_day"], unit="D")).reindex(y.index) < cut
    assert y[dead].mean() == 1.0


def test_labels_by_hand():
    store = Store(":memory:")
    rows = [("a", "2024-01-01", 10), ("a", "2024-01-11", 10), ("a", "2024-01-21", 10),
            ("b", "2024-01-01", 10), ("c", "2024-02-01", 10), ("d", "2024-01-05", 10),
            ("d", "2024-01-20", -10)]
    frame = pd.DataFrame(rows, columns=["customer_id", "occurred_at", "amount"])
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"])
    store.con.register("f", frame)
    store.con.execute("INSERT INTO transactions (customer_id, occurred_at, amount) "
                      "SELECT * FROM f")
    store.con.execute("SELECT count(*) FROM transactions").fetchone()  # result left unfinished
    y = labels(store, "purchase", [pd.Timestamp("2024-01-15")], 30, ["cancelled"])
    got = y.droplevel("cutoff").to_dict()
    assert got == {"a": 0, "b": 1, "d": 1}  # c not yet a customer; d's return is no purchase
    store.close()


def test_contractual_labels_are_cancellations_within_the_horizon(base):
    store, truth = base
    cut = pd.Timestamp("2024-01-01")
    y = labels(store, "contract", [cut], 90, ["cancelled"]).droplevel("cutoff")
    ended = START + pd.to_timedelta(truth["defect_day"], unit="D")
    expected = ((ended >= cut) & (ended < cut + pd.Timedelta(days=90))).astype(int)
    assert len(y) > 100
    assert (y == expected.reindex(y.index)).all()


def test_horizon_from_the_gaps_or_fixed(base):
    store, _ = base
    auto = purchase_horizon(store, DefectionSettings())
    assert 30 <= auto <= 200
    assert purchase_horizon(store, DefectionSettings(horizon_days=45)) == 45
    loose = purchase_horizon(store, DefectionSettings(horizon_percentile=0.6))
    assert loose < auto


@pytest.mark.slow
def test_defection_model_ranks_and_is_calibrated(result, base):
    _, truth = base
    model = result.model
    assert model.validation_auc_ > 0.8
    scores = result.scores
    risk = scores["defection_risk"]
    assert risk.between(0, 1).all() and risk.notna().all()
    # against the latent truth: already defected (or about to) by the as-of date + horizon
    dead = (START + pd.to_timedelta(truth["defect_day"], unit="D")).reindex(scores.index)
    horizon_end = result.as_of + pd.Timedelta(days=result.horizon_days)
    assert roc_auc_score(dead < horizon_end, risk) > 0.8


def test_calibration_on_the_latest_cutoff(base):
    store, _ = base
    ts = build_training_set(store, DefectionSettings(kind="purchase", **FAST), "2024-12-31")
    time = ts.X.index.get_level_values("cutoff")
    last = time == time.max()
    # re-weighted classes: the boosting's raw log-odds overstate defection, calibration not
    model = DefectionModel(n_estimators=80, balance_classes=True, linear=False).fit(
        ts.X[~last], ts.y[~last])
    p = model.predict_proba(ts.X[last])[:, 1]
    assert abs(p.mean() - ts.y[last].mean()) < 0.08  # calibrated to the real rate
    weighted = model.decision_function(ts.X[last]) + model.prior_shift_
    raw = 1 / (1 + np.exp(-weighted))
    assert abs(raw.mean() - ts.y[last].mean()) > abs(p.mean() - ts.y[last].mean())


def test_model_follows_the_scikit_learn_contract():
    model = DefectionModel(n_estimators=20, learning_rate=0.1)
    assert model.n_estimators == 20 and not hasattr(model, "booster_")
    with pytest.raises(ModelError, match="not fitted"):
        model.predict_proba(np.zeros((2, 2)))
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"recency": rng.uniform(0, 100, 2000), "frequency": rng.poisson(3, 2000)})
    X.loc[::7, "frequency"] = np.nan
    y = (rng.uniform(0, 1, 2000) < X["recency"] / 100).astype(int)
    assert model.fit(X, y) is model
    p = model.predict_proba(X)
    assert p.shape == (2000, 2) and np.allclose(p.sum(axis=1), 1) and np.isfinite(p).all()
    assert list(model.feature_names_in_) == ["recency", "frequency"]
    assert model.n_features_in_ == 2 and model.validation_ == "random stratified"
    contrib = model.contributions(X.head(5))
    assert list(contrib.columns) == ["recency", "frequency", "_bias"]


def test_model_trains_on_any_flat_table_with_a_label():
    rng = np.random.default_rng(1)
    n = 3000
    table = pd.DataFrame({"tenure": rng.uniform(0, 1000, n), "tickets": rng.poisson(1, n),
                          "month": np.repeat(pd.date_range("2024-01-01", periods=3, freq="MS"),
                                             n // 3), "name": "x"})
    table["churned"] = (rng.uniform(0, 1, n) < 0.1 + 0.2 * (table["tickets"] > 1)).astype(int)
    model = DefectionModel(n_estimators=30).fit_table(table, "churned", time="month")
    assert list(model.feature_names_in_) == ["tenure", "tickets"]
    assert model.validation_.startswith("time")
    with pytest.raises(DefectionError, match="no label column"):
        DefectionModel().fit_table(table, "left")


def test_single_class_is_a_clear_error():
    X = pd.DataFrame({"a": np.arange(100.0)})
    with pytest.raises(SingleClassError, match="stayed") as info:
        DefectionModel().fit(X, np.zeros(100))
    assert isinstance(info.value, OneToOneError) and info.value.hint
    with pytest.raises(DefectionError, match=r"0 .* or 1"):
        DefectionModel().fit(X, np.full(100, 2))


def test_too_little_history_is_a_clear_error():
    store = Store(":memory:")
    frame = pd.DataFrame({"customer_id": ["a", "b", "a"], "amount": [1.0, 2.0, 3.0],
                          "occurred_at": pd.to_datetime(["2024-01-01", "2024-01-05",
                                                         "2024-02-01"])})
    store.con.register("f", frame)
    store.con.execute("INSERT INTO transactions (customer_id, amount, occurred_at) "
                      "SELECT * FROM f")
    with pytest.raises(InsufficientHistoryError, match="too short"):
        score_defection(store, None, DefectionSettings())
    store.close()


@pytest.mark.slow
def test_absent_silos_are_skipped_with_a_note():
    store = Store(":memory:")
    synthetic_base(store.con, n=300, silos=())
    res = score_defection(store, None, DefectionSettings(**FAST))
    assert any("interactions" in n and "skipped" in n for n in res.notes)
    assert not any(c.startswith("complaints") for c in res.training.features)
    assert res.scores["defection_risk"].notna().all()
    store.close()


def test_no_transactions_at_all_is_a_clear_error():
    store = Store(":memory:")
    with pytest.raises(OneToOneError):
        score_defection(store, None, DefectionSettings())
    store.close()


@pytest.mark.slow
def test_reasons_speak_the_marketers_language(result):
    scores = result.scores
    top = scores.sort_values("defection_risk", ascending=False).head(50)
    said = [r for rs in top["defection_reasons"] for r in rs]
    assert all(len(rs) <= 3 for rs in scores["defection_reasons"])
    assert any(r.startswith("orders every") and "none since" in r for r in said)
    complained = scores[scores["complaints_90d"] > 0]
    assert len(complained) > 5
    said = [r for rs in complained["defection_reasons"] for r in rs]
    assert sum("complaint(s) in" in r for r in said) >= len(complained) / 2


def test_reason_phrases():
    assert every(21) == "every 3 weeks" and every(5) == "every 5 days"
    assert every(61) == "every 2 months" and every(7) == "every 7 days"
    contrib = pd.DataFrame({"days_since_last_purchase": [1.0, -1.0], "complaints_30d": [0.5, 0],
                            "_bias": [0.0, 0.0]})
    values = pd.DataFrame({"days_since_last_purchase": [70.0, 3.0], "purchases": [5.0, 2.0],
                           "mean_gap_days": [21.0, 30.0], "complaints_30d": [2.0, 0.0],
                           "last_day": pd.to_datetime(["2025-05-12", "2025-07-18"])})
    got = reasons(contrib, values)
    assert got[0] == ["orders every 3 weeks until 12 May 2025, none since",
                      "2 complaint(s) in 30 days"]
    assert got[1] == []


def test_path_contributions_sum_to_the_score_and_are_exact_for_stumps():
    from onetoone.differentiate.defection._paths import path_contributions

    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(3000, 4)), columns=list("abcd"))
    X.iloc[::7, 2] = np.nan
    y = (X["a"] + X["b"] * X["c"].fillna(0) + rng.normal(size=3000) > 0).astype(int)
    params = {"objective": "binary", "verbosity": -1, "num_threads": 1}
    deep = lgb.train({**params, "num_leaves": 15}, lgb.Dataset(X, y), 30)
    paths = path_contributions(deep, X, chunk=1000)
    shap = deep.predict(X, pred_contrib=True)
    assert np.allclose(paths.sum(axis=1), deep.predict(X, raw_score=True))
    assert np.allclose(paths[:, -1], shap[:, -1])  # same expected score as TreeSHAP
    assert not np.allclose(paths, shap)  # an approximation with interactions
    assert (paths[:, :-1].argmax(axis=1) == shap[:, :-1].argmax(axis=1)).mean() > 0.7
    stumps = lgb.train({**params, "num_leaves": 2}, lgb.Dataset(X, y), 20)
    assert np.allclose(path_contributions(stumps, X), stumps.predict(X, pred_contrib=True))


@pytest.mark.slow
def test_reasons_by_path_attribution_above_the_exact_limit(base):
    store, _ = base
    settings = DefectionSettings(kind="purchase", reasons_exact_max_rows=0, **FAST)
    res = score_defection(store, "2024-12-31", settings)
    at_risk = res.scores[res.scores["defection_risk"] >= settings.reasons_min_risk]
    assert at_risk["defection_reasons"].map(len).gt(0).mean() > 0.8
    features = res.training.features
    contrib = res.model.contributions(at_risk[features], method="path")
    assert np.allclose(contrib.sum(axis=1), res.model.decision_function(at_risk[features]))
    with pytest.raises(DefectionError, match="Unknown contribution method"):
        res.model.contributions(at_risk[features], method="exact")


def test_reasons_in_bulk_match_the_phrases_row_by_row():
    rows = pd.DataFrame({
        "purchases": [1.0, 4.0, 4.0, np.nan], "days_since_last_purchase": [40.0, 9.0, 80, 3],
        "mean_gap_days": [np.nan, 400.0, 30.0, 10.0], "purchases_90d": [0, 1.0, 0, 1],
        "purchases_prev_90d": [0, 3.0, 2, 1], "spend_90d": [0, 10.0, 1234.5, 0],
        "spend_prev_90d": [0, 2000.0, 10, 0], "last_nps": [9.0, 3.0, np.nan, 5.0],
        "last_day": pd.to_datetime(["2025-03-01", "2025-06-30", "2025-04-02", None]),
        "last_nps_at": pd.to_datetime([None, "2025-02-14", None, None]),
        "emails_sent_90d": [3.0, 0, 0, 0], "days_since_email_open": [np.nan, 10, 90.0, 1]})
    contrib = pd.DataFrame({"days_since_last_purchase": [2.0, 1.0, 1.0, 1.0],
                            "spend_90d": [1.0, 3.0, 2.0, 0.5], "last_nps": [0.5, 2.0, 3.0, 2.0],
                            "days_since_email_open": [0.2, -1.0, 0.1, 0.1], "_bias": 0.0})
    assert reasons(contrib, rows) == [
        ["one purchase only, on 1 Mar 2025 (40 days ago)", "no e-mail opened in 12 months"],
        ["spent 10 in the last 90 days vs 2,000 the 90 days before",
         "detractor (NPS 3) on 14 Feb 2025",
         "1 order(s) in the last 90 days vs 3 the 90 days before; orders every 13 months"],
        ["orders every 4 weeks until 2 Apr 2025, none since", "no e-mail opened for 90 days"],
        ["detractor (NPS 5)"]]
    assert reasons(contrib, rows, limit=1)[1] == [
        "spent 10 in the last 90 days vs 2,000 the 90 days before"]


def test_lexicon_sentiment():
    s = sentiment_scores(["Super accueil, merci !", "Vraiment déçu, service nul",
                          "pas bon", None, "rien à dire"], {"bof": -1})
    assert s[0] > 0 > s[1] and s[2] < 0 and s[3] == 0 and s[4] == 0
    assert sentiment_scores(["bof"], {"bof": -1})[0] == -1


@pytest.mark.slow
def test_write_into_customer_scores_and_the_monitor(make_workspace):
    ws = make_workspace(settings="[value]\nmodels = [\"bgnbd\"]\n"
                               "[defection]\nn_estimators = 60\ncutoffs = 3\n"
                                 "monitor_margin = 0.02\n[needs]\nmin_customers = 20\n")
    synthetic_base(ws.store.con, n=400)
    ws.store.con.execute("INSERT INTO customers (customer_id) VALUES ('prospect')")
    result = ws.score("2024-12-31")
    rows = dict(ws.store.fetchall("SELECT customer_id, scores FROM customer_scores "
                                  "WHERE as_of = DATE '2024-12-31'"))
    first = json.loads(rows["c0001"])
    assert 0 < first["defection_risk"] < 1 and isinstance(first["defection_reasons"], list)
    assert first["defection_status"] == "scored" and "needs_segment" in first
    assert "clv" not in first and "expected_spend" in first  # value keys kept
    prospect = json.loads(rows["prospect"])
    assert "defection_risk" not in prospect  # a JSON merge patch drops null values
    assert prospect["defection_status"] == "not_scored"
    assert prospect["defection_reasons"] == ["no purchase before the as-of date"]
    assert prospect["needs_segment"] == "unsegmented"
    monitor = ws.store.execute("SELECT * FROM defection_monitor").df()
    assert {"top", "rest"} <= set(monitor["value_tier"])
    assert (monitor["at_risk_share"].between(0, 1)).all()
    assert any("Top tier value at risk" in n for n in result.notes)


def test_mass_defection_alert(make_workspace):
    ws = make_workspace()
    con = ws.store.con

    def scores(day: str, risk_top: float) -> None:
        rows = [(f"t{i}", day, 100.0, "top", json.dumps({"defection_risk": risk_top}))
                for i in range(10)]
        rows += [(f"r{i}", day, 10.0, "rest", json.dumps({"defection_risk": 0.5}))
                 for i in range(10)]
        con.executemany("INSERT INTO customer_scores (customer_id, as_of, clv, value_tier, "
                        "scores) VALUES (?, ?, ?, ?, ?)", rows)

    settings = DefectionSettings(monitor_margin=0.05)
    scores("2025-01-31", 0.10)
    first = update_monitor(ws.store, "2025-01-31", settings)
    assert first.alert is None and first.top_share == pytest.approx(0.10)
    scores("2025-02-28", 0.13)
    assert update_monitor(ws.store, "2025-02-28", settings).alert is None  # within the margin
    scores("2025-03-31", 0.30)
    third = update_monitor(ws.store, "2025-03-31", settings)
    assert third.alert and "30%" in third.alert and "13%" in third.alert
    assert check_alert(ws.store, None, 0.05).alert == third.alert
    table = ws.store.execute("SELECT * FROM defection_monitor WHERE as_of = DATE '2025-03-31' "
                             "AND needs_segment = 'all' ORDER BY value_tier").df()
    assert table["at_risk_customers"].tolist() == [10, 0]  # threshold 0.5: rest at 0.5 counts
    assert table["at_risk_value"].tolist() == pytest.approx([50.0, 300.0])


def test_config_section_is_validated():
    with pytest.raises(ValueError):
        DefectionSettings(horizon_percentile=1.5)
    assert Config().defection.enabled and Config().needs.enabled
