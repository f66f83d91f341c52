"""Value of every customer as of a date: buy-till-you-die lifetime value chosen by holdout fit.

1. Transactions (cancelled ones excluded, returns netted) become recency-frequency summaries
   (:func:`~onetoone.differentiate.btyd.summary_from_transactions`: same-day purchases merged).
2. Model choice: BG/NBD (Fader, Hardie & Lee 2005), Pareto/NBD (Schmittlein, Morrison & Colombo
   1987) and MBG/NBD (Batislam et al. 2007) are fit on a calibration period ending
   ``holdout_weeks`` before ``as_of``; the one whose predicted repeat purchases in the holdout
   weeks are closest to the actual ones (root mean squared error per customer) wins and is refit
   on everything up to ``as_of`` -- the calibration/holdout practice of FHL 2005, section 5.
3. Spend: Gamma-Gamma (FHL 2005, "RFM and CLV"); CLV = discounted expected margin over the
   horizon, times the customer's share of purchases kept after returns, minus the cost to serve.
4. Documented fallbacks instead of NaN: prospects without a purchase, customers whose returns
   exceed their purchases, too little data to fit a model (RFM-only), too few repeat buyers for
   the spend model. docs/value-models.md has every rule.

Pure pandas/numpy: the store adapter is :mod:`onetoone.differentiate._value_io`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from onetoone.differentiate import tiers as tiering
from onetoone.differentiate.btyd import BGNBD, GammaGamma, ModifiedBGNBD, ParetoNBD
from onetoone.differentiate.btyd import summary_from_transactions as summarise
from onetoone.differentiate.btyd._summary import unit_days
from onetoone.differentiate.settings import ValueSettings
from onetoone.errors import ModelError, OneToOneError

MODELS: dict[str, type[BGNBD] | type[ParetoNBD]] = {
    "bgnbd": BGNBD,
    "paretonbd": ParetoNBD,
    "mbgnbd": ModifiedBGNBD,
}
MODEL_LABELS = {"bgnbd": "BG/NBD", "paretonbd": "Pareto/NBD", "mbgnbd": "MBG/NBD", "rfm": "RFM"}
_UNIT_CODE = {"day": "D", "week": "W", "month": "M"}
_DAY = pd.Timedelta(days=1)


class ScoringError(OneToOneError):
    """Customers cannot be scored as asked (as-of date, holdout, missing customers)."""

    http_status = 422


@dataclass
class Candidate:
    """One model fit on the calibration period, and how well it predicted the holdout."""

    name: str
    model: Any = None
    predicted: np.ndarray | None = None  # expected holdout repeat purchases per customer
    predicted_total: float = float("nan")
    rmse: float = float("inf")
    failure: str | None = None


@dataclass
class Validation:
    """Calibration/holdout comparison behind the model choice (FHL 2005, figures 2-4)."""

    calibration_end: pd.Timestamp
    as_of: pd.Timestamp
    time_unit: str
    summary: pd.DataFrame  # calibration summaries with frequency_holdout, first_day
    occasions: pd.DataFrame  # customer, day of every purchase occasion up to as_of
    candidates: dict[str, Candidate]
    chosen: str | None

    @property
    def actual_total(self) -> int:
        return int(self.summary["frequency_holdout"].sum())

    def holdout_weeks(self) -> tuple[int, int]:
        """Week numbers of the holdout, counted from the first purchase of the cohort."""
        start = self.summary["first_day"].min()
        first = int(np.ceil(((self.calibration_end - start).days + 1) / 7))
        last = int(np.ceil(((self.as_of - start).days + 1) / 7))
        return first + 1, last

    def by_frequency(self, name: str, max_frequency: int = 7) -> pd.DataFrame:
        """Mean actual vs expected holdout repeat purchases by calibration frequency 0..max+."""
        cand = self.candidates[name]
        assert cand.predicted is not None
        bucket = np.minimum(self.summary["frequency"].to_numpy(), max_frequency)
        frame = pd.DataFrame(
            {
                "frequency": bucket,
                "actual": self.summary["frequency_holdout"].to_numpy(dtype=float),
                "expected": cand.predicted,
            }
        )
        out = frame.groupby("frequency").agg(
            customers=("actual", "size"), actual=("actual", "mean"), expected=("expected", "mean")
        )
        return out.reindex(range(max_frequency + 1), fill_value=0.0)

    def tracking(self, name: str) -> pd.DataFrame:
        """Weekly cumulative repeat purchases of the calibration cohort, actual vs expected.

        Expected: sum over customers of E[X(t - t0_i)] for a new customer (FHL 2005, eq. 9),
        t0_i being the customer's first purchase; the model is the calibration fit.
        """
        cand = self.candidates[name]
        first = self.summary["first_day"]
        start = first.min()
        n_weeks = int(np.ceil(((self.as_of - start).days + 1) / 7))
        ends = start + pd.to_timedelta(7 * np.arange(1, n_weeks + 1), unit="D")
        cohort = self.occasions[self.occasions["customer"].isin(self.summary.index)]
        repeat = cohort[cohort["day"] > cohort["customer"].map(first)]
        counts = np.searchsorted(np.sort(repeat["day"].to_numpy()), ends.to_numpy(), "left")
        per_unit = unit_days(_UNIT_CODE[self.time_unit])
        days, n_first = np.unique((first - start).dt.days.to_numpy(), return_counts=True)
        elapsed = (7 * np.arange(1, n_weeks + 1))[:, None] - days[None, :]
        t = np.clip(elapsed, 0, None) / per_unit
        expected_new = np.asarray(cand.model.expected_purchases_new(t.ravel()), dtype=float)
        expected = (expected_new.reshape(t.shape) * n_first[None, :]).sum(axis=1)
        return pd.DataFrame(
            {"week": np.arange(1, n_weeks + 1), "actual": counts, "expected": expected}
        ).set_index("week")


@dataclass
class ValueResult:
    """Scores of every customer as of ``as_of``, and how they were obtained."""

    as_of: pd.Timestamp
    time_unit: str
    horizon_key: str
    model_name: str
    model: Any
    spend_model: GammaGamma | None
    validation: Validation | None
    scores: pd.DataFrame  # indexed by customer_id
    notes: list[str] = field(default_factory=list)

    @property
    def pyramid(self) -> pd.DataFrame:
        return tiering.pyramid(self.scores["clv"], self.scores["value_tier"])

    def summary(self) -> dict[str, Any]:
        """What ``onetoone score`` prints, as plain data: as-of date, model, the value
        pyramid (tier, customers, CLV, share of value), the Pareto shares, the notes."""
        return {"as_of": f"{self.as_of.date()}", "model_name": self.model_name,
                "customers": len(self.scores),
                "pyramid": [{"tier": str(tier), "customers": int(row["customers"]),
                             "clv": float(row["clv"]), "value_share": float(row["value_share"])}
                            for tier, row in self.pyramid.iterrows()],
                "pareto": self.pareto(), "notes": list(self.notes)}

    def pareto(self) -> dict[str, float]:
        """Share of positive CLV held by the top 1 % and 20 % of customers with a purchase."""
        buyers = self.scores.loc[self.scores["fallback"] != "no_purchase", "clv"]
        return {
            "top_1pct": tiering.top_share_of_value(buyers, 0.01),
            "top_20pct": tiering.top_share_of_value(buyers, 0.20),
        }


def horizon_key(settings: ValueSettings) -> str:
    """Name of the expected-purchases score, e.g. ``expected_purchases_52w`` for 12 months."""
    units = settings.horizon_months * unit_days("M") / unit_days(_UNIT_CODE[settings.time_unit])
    return f"expected_purchases_{round(units)}{settings.time_unit[0]}"


def occasions_of(tx: pd.DataFrame) -> pd.DataFrame:
    """Net amount per customer and day, and whether the day is a purchase occasion.

    Same rule as ``summary_from_transactions``: a day counts when its net amount is positive, or
    zero without any return line (a free order).
    """
    frame = tx.assign(negative=tx["amount"] < 0)
    daily = (
        frame.groupby(["customer", "day"], sort=True)
        .agg(amount=("amount", "sum"), negative=("negative", "any"))
        .reset_index()
    )
    daily["kept"] = (daily["amount"] > 0) | ((daily["amount"] == 0) & ~daily["negative"])
    return daily


def score_value(
    transactions: pd.DataFrame,
    customers: Any,
    settings: ValueSettings,
    as_of: Any = None,
    *,
    calibration_end: Any = None,
    today: Any = None,
) -> ValueResult:
    """Score every customer of ``customers`` from ``transactions`` as of ``as_of``.

    ``transactions``: columns ``customer``, ``occurred_at`` (local time), ``amount`` (net, negative
    for returns) and ``margin`` (share of the amount kept as margin, NaN when unknown).
    ``as_of`` defaults to the last transaction day; ``calibration_end`` to ``as_of`` minus
    ``settings.holdout_weeks``. Raises :class:`ScoringError` for an as-of date in the future or
    before every transaction, or an explicit calibration end that leaves no usable calibration.
    """
    notes: list[str] = []
    ids = pd.Index(pd.unique(np.asarray(customers, dtype=object)), name="customer_id")
    tx, as_of_ts = _usable_transactions(transactions, as_of, today, notes)
    ids = ids.union(pd.Index(tx["customer"].unique())) if len(tx) else ids

    unit = _UNIT_CODE[settings.time_unit]
    per_unit = unit_days(unit)
    per_month = unit_days("M") / per_unit
    horizon = settings.horizon_months * per_month
    key = horizon_key(settings)

    daily = occasions_of(tx.rename(columns={"customer": "customer"}))
    kept = daily[daily["kept"]]
    summary = (
        summarise(kept, "customer", "day", "amount", observation_period_end=as_of_ts,
                  time_unit=unit)
        if len(kept) else pd.DataFrame(columns=["frequency", "recency", "T", "monetary_value"])
    )
    validation = _validate(kept, settings, as_of_ts, calibration_end, notes)
    candidates = _fit_final(summary, settings, validation, notes)
    model_name, model = "rfm", None
    spend_model = _fit_spend(summary, settings, notes)

    days_total = daily.groupby("customer").agg(first=("day", "min"), n=("day", "size"),
                                               net=("amount", "sum"))
    out, fallback, has_occasion, returns_only = _history_columns(ids, summary, days_total,
                                                                 as_of_ts, per_unit)
    x = out["frequency"].to_numpy()
    t_x = out["recency"].to_numpy()
    big_t = out["T"].to_numpy()
    buyer = has_occasion | returns_only

    p_alive = np.zeros(len(ids))
    expected = np.zeros(len(ids))
    discounted = np.zeros(len(ids))  # sum over months of expected purchases / (1+d)^m
    discount_sum = np.zeros(len(ids))  # sum over months of P(alive) / (1+d)^m, for the cost
    factors = (1.0 + settings.monthly_discount_rate) ** -np.arange(1, settings.horizon_months + 1)
    if buyer.any():
        xb, tb, bb = x[buyer], t_x[buyer], big_t[buyer]
        model_name, model, preds = _predict_with_first_sound(
            candidates, xb, tb, bb, horizon, per_month, factors, notes)
        p_alive[buyer], expected[buyer], discounted[buyer] = preds
        discount_sum[buyer] = p_alive[buyer] * factors.sum()

    spend, cust_margin, keep_ratio, net = _money(
        tx, kept, days_total, out, ids, spend_model, has_occasion, returns_only, settings)
    cost = settings.cost_to_serve_per_year / 12.0 * discount_sum
    clv = discounted * spend * cust_margin * keep_ratio - cost
    clv = np.where(buyer, clv, 0.0)

    out["p_alive"] = p_alive
    out["clv"] = clv
    out[key] = expected
    out["expected_spend"] = np.where(buyer, spend, 0.0)
    out["margin"] = cust_margin
    out["historical_spend"] = net
    out["fallback"] = fallback
    _finish_scores(out, key, buyer, model_name, settings, notes)
    if (~buyer).any():
        notes.append(f"{int((~buyer).sum()):,} customers without a purchase as of "
                     f"{as_of_ts.date()} are scored as prospects (CLV 0, P(alive) 0).")
    if returns_only.any():
        notes.append(f"{int(returns_only.sum()):,} customers whose returns cancel all their "
                     "purchases are valued at their net spend per day (CLV <= 0).")
    return ValueResult(as_of=as_of_ts, time_unit=settings.time_unit, horizon_key=key,
                       model_name=model_name, model=model, spend_model=spend_model,
                       validation=validation, scores=out, notes=notes)


def _usable_transactions(transactions: pd.DataFrame, as_of: Any, today: Any,
                         notes: list[str]) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The transactions scoring can use as of the as-of date (which it resolves), each kind
    left out said in ``notes``: no date, amount or customer; dated after today; after as-of."""
    tx = transactions.loc[:, ["customer", "occurred_at", "amount", "margin"]].copy()
    tx["amount"] = pd.to_numeric(tx["amount"], errors="coerce").astype(float)
    tx["margin"] = pd.to_numeric(tx["margin"], errors="coerce").astype(float)
    tx["day"] = pd.to_datetime(tx["occurred_at"]).dt.normalize()
    unusable = tx["amount"].isna() | tx["day"].isna() | tx["customer"].isna()
    if unusable.any():
        notes.append(f"{int(unusable.sum()):,} transactions without a date, amount or customer "
                     "were left out.")
        tx = tx[~unusable]
    today_ts = pd.Timestamp(today).normalize() if today is not None else pd.Timestamp.now()
    today_ts = today_ts.normalize()
    future = tx["day"] > today_ts
    if future.any():
        notes.append(f"{int(future.sum()):,} transactions dated after today ({today_ts.date()}) "
                     "were left out as data errors.")
        tx = tx[~future]
    as_of_ts = _resolve_as_of(as_of, tx, today_ts)
    later = tx["day"] > as_of_ts
    if later.any():
        notes.append(f"{int(later.sum()):,} transactions after the as-of date "
                     f"{as_of_ts.date()} were not used.")
        tx = tx[~later]
    return tx, as_of_ts


def _history_columns(ids: pd.Index, summary: pd.DataFrame, days_total: pd.DataFrame,
                     as_of_ts: pd.Timestamp, per_unit: float
                     ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Each customer's recency-frequency history (0 without one) and ``fallback``; with which
    customers have a purchase occasion and which only returns (aged from their first day)."""
    out = pd.DataFrame(index=ids)
    out["frequency"] = summary["frequency"].reindex(ids).astype(float)
    out["recency"] = summary["recency"].reindex(ids).astype(float)
    out["T"] = summary["T"].reindex(ids).astype(float)
    out["monetary_value"] = summary["monetary_value"].reindex(ids).astype(float)
    has_occasion = out["frequency"].notna().to_numpy()
    has_tx = ids.isin(days_total.index)
    returns_only = has_tx & ~has_occasion
    fallback = np.full(len(ids), None, dtype=object)
    fallback[returns_only] = "returns_only"
    fallback[~has_occasion & ~returns_only] = "no_purchase"
    # returns-only customers: age from their first transaction day, no occasion
    age = (as_of_ts - days_total["first"].reindex(ids)).dt.days.to_numpy(dtype=float) / per_unit
    out.loc[returns_only, "T"] = age[returns_only]
    out = out.fillna({"frequency": 0.0, "recency": 0.0, "T": 0.0, "monetary_value": 0.0})
    return out, fallback, has_occasion, returns_only


def _money(tx: pd.DataFrame, kept: pd.DataFrame, days_total: pd.DataFrame, out: pd.DataFrame,
           ids: pd.Index, spend_model: Any, has_occasion: np.ndarray, returns_only: np.ndarray,
           settings: ValueSettings) -> tuple[np.ndarray, ...]:
    """Per customer: expected spend per purchase, margin (revenue-weighted, the default where
    unknown), the share of spend kept after returns, and the historical net spend."""
    positive = tx["amount"].clip(lower=0)
    margin = tx["margin"].where(tx["margin"].between(-1, 1), settings.default_margin)
    per_customer = pd.DataFrame(
        {"customer": tx["customer"], "net": tx["amount"], "pos": positive,
         "pos_margin": positive * margin}
    ).groupby("customer").sum()
    occasion_total = kept.groupby("customer")["amount"].sum()
    spend = _expected_spend(spend_model, out, kept, has_occasion)
    net = days_total["net"].reindex(ids).fillna(0.0).to_numpy()
    n_days = days_total["n"].reindex(ids).fillna(1.0).to_numpy()
    spend = np.where(returns_only, net / n_days, spend)
    occ = occasion_total.reindex(ids).fillna(0.0).to_numpy()
    keep_ratio = np.divide(net, occ, out=np.ones(len(ids)), where=has_occasion & (occ > 0))
    pos = per_customer["pos"].reindex(ids).fillna(0.0).to_numpy()
    pos_margin = per_customer["pos_margin"].reindex(ids).fillna(0.0).to_numpy()
    cust_margin = np.divide(pos_margin, pos, out=np.full(len(ids), settings.default_margin),
                            where=pos > 0)
    return spend, cust_margin, keep_ratio, net


def _finish_scores(out: pd.DataFrame, key: str, buyer: np.ndarray, model_name: str,
                   settings: ValueSettings, notes: list[str]) -> None:
    """No non-finite score ever reaches customer_scores; then model, ranks and value tiers."""
    numeric = ["frequency", "recency", "T", "monetary_value", "p_alive", "clv", key,
               "expected_spend", "margin", "historical_spend"]
    bad = ~np.isfinite(out[numeric].to_numpy(dtype=float))
    if bad.any():  # never expected; kept so that no NaN ever reaches customer_scores
        notes.append(f"{int(bad.any(axis=1).sum())} customers had non-finite scores, set to 0.")
        out[numeric] = out[numeric].where(~bad, 0.0)
    out["model"] = np.where(buyer, model_name, "none")
    out["value_rank"] = tiering.value_ranks(out["clv"])
    out["pareto_share"] = tiering.pareto_shares(out["clv"], out["value_rank"])
    out["value_tier"] = tiering.value_tiers(
        out["clv"], out[key], out["expected_spend"], pd.Series(buyer, index=out.index),
        top_share=settings.top_share,
        min_purchases_quantile=settings.growable_min_purchases_quantile,
        max_spend_quantile=settings.growable_max_spend_quantile,
    )


# -- steps ------------------------------------------------------------------------------------
def _resolve_as_of(as_of: Any, tx: pd.DataFrame, today: pd.Timestamp) -> pd.Timestamp:
    if as_of is None:
        return tx["day"].max() if len(tx) else today
    try:
        ts = pd.Timestamp(as_of)
    except (TypeError, ValueError):
        raise ScoringError(f"as_of {as_of!r} is not a date.",
                           hint="Give a date such as 2025-12-31.") from None
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)
    ts = ts.normalize()
    if ts > today:
        raise ScoringError(
            f"as_of {ts.date()} is in the future (today is {today.date()}).",
            hint="Score as of today or an earlier date.",
        )
    if len(tx) and ts < tx["day"].min():
        raise ScoringError(
            f"as_of {ts.date()} is before the first transaction ({tx['day'].min().date()}): "
            "no customer has bought anything yet.",
            hint="Choose a date inside the transaction history.",
        )
    return ts


def _enough(summary: pd.DataFrame, settings: ValueSettings) -> str | None:
    """Why a purchase model cannot be fit on these summaries, or None."""
    n = len(summary)
    repeaters = int((summary["frequency"] > 0).sum()) if n else 0
    if n and float(summary["T"].max()) <= 0:
        return "every customer bought for the first time on the as-of day (T = 0)"
    if n < settings.min_customers:
        return f"{n} customers with a purchase, fewer than min_customers = {settings.min_customers}"
    if repeaters < settings.min_repeat_customers:
        return (f"{repeaters} repeat customers, fewer than min_repeat_customers = "
                f"{settings.min_repeat_customers}")
    return None


def _validate(kept: pd.DataFrame, settings: ValueSettings, as_of: pd.Timestamp,
              calibration_end: Any, notes: list[str]) -> Validation | None:
    explicit = calibration_end is not None
    unit = _UNIT_CODE[settings.time_unit]
    cal_end = (pd.Timestamp(calibration_end).normalize() if explicit
               else as_of - pd.Timedelta(weeks=settings.holdout_weeks))
    problem: str | None = None
    if len(kept) == 0:
        problem = "there is no purchase"
    elif cal_end >= as_of:
        problem = f"the calibration end {cal_end.date()} is not before as_of {as_of.date()}"
    elif cal_end < kept["day"].min():
        problem = (f"the holdout ({cal_end.date()} to {as_of.date()}) is longer than the "
                   f"purchase history, which starts {kept['day'].min().date()}")
    summary = None
    if problem is None:
        summary = summarise(kept, "customer", "day", "amount", observation_period_end=as_of,
                            calibration_period_end=cal_end, time_unit=unit)
        problem = _enough(summary, settings)
    if problem is not None:
        if explicit:
            raise ScoringError(f"Cannot validate the models: {problem}.",
                               hint="Choose a calibration end inside the purchase history.")
        notes.append(f"No holdout model choice ({problem}); the first of [value] models is "
                     "used.")
        return None
    assert summary is not None
    summary["first_day"] = cal_end - pd.to_timedelta(
        np.rint(summary["T"].to_numpy() * unit_days(unit)), unit="D")
    x, t_x, big_t = (summary[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    actual = summary["frequency_holdout"].to_numpy(dtype=float)
    duration = float(summary["duration_holdout"].iloc[0])
    candidates: dict[str, Candidate] = {}
    for name in settings.models:
        cand = Candidate(name)
        try:
            cand.model = MODELS[name]().fit(x, t_x, big_t)
            with np.errstate(all="ignore"):
                predicted = cand.model.expected_purchases(duration, x, t_x, big_t)
            cand.predicted = np.asarray(predicted, dtype=float)
            if not np.isfinite(cand.predicted).all():
                raise ModelError(f"{cand.model!r} gives non-finite predictions")
            cand.predicted_total = float(cand.predicted.sum())
            cand.rmse = float(np.sqrt(np.mean((cand.predicted - actual) ** 2)))
        except ModelError as exc:
            cand.model, cand.failure = None, str(exc)
        candidates[name] = cand
    fitted = [c for c in candidates.values() if c.failure is None]
    chosen = min(fitted, key=lambda c: c.rmse).name if fitted else None
    if chosen is None:
        notes.append("No model could be fit on the calibration period.")
    return Validation(calibration_end=cal_end, as_of=as_of, time_unit=settings.time_unit,
                      summary=summary, occasions=kept[["customer", "day"]], candidates=candidates,
                      chosen=chosen)


def _fit_final(summary: pd.DataFrame, settings: ValueSettings, validation: Validation | None,
               notes: list[str]) -> Iterator[tuple[str, Any]]:
    """The models refit on all data, best holdout first, each fit only when asked for."""
    problem = _enough(summary, settings) if len(summary) else "there is no purchase"
    if problem is not None:
        notes.append(f"RFM-only scores ({problem}): no buy-till-you-die model was fit; "
                     "P(alive) is taken as 1.")
        return
    order = list(settings.models)
    if validation is not None:
        order.sort(key=lambda n: validation.candidates[n].rmse)
    x, t_x, big_t = (summary[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    for name in order:
        try:
            model = MODELS[name]().fit(x, t_x, big_t)
        except ModelError as exc:
            notes.append(f"{MODEL_LABELS[name]} could not be fit on all the data: {exc}")
            continue
        yield name, model


def _predict_with_first_sound(
    candidates: Iterator[tuple[str, Any]], x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray,
    horizon: float, per_month: float, factors: np.ndarray, notes: list[str],
) -> tuple[str, Any, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """P(alive), expected purchases over the horizon and their discounted monthly sum, from the
    first model whose predictions are all finite; RFM-only when none is."""
    tried = False
    for name, model in candidates:
        tried = True
        with np.errstate(all="ignore"):
            p_alive = np.asarray(model.p_alive(x, t_x, big_t), dtype=float)
            expected = np.asarray(model.expected_purchases(horizon, x, t_x, big_t), float)
            previous = np.zeros(len(x))
            discounted = np.zeros(len(x))
            for month, factor in enumerate(factors, start=1):
                cumulative = np.asarray(
                    model.expected_purchases(month * per_month, x, t_x, big_t), dtype=float
                )
                discounted += (cumulative - previous) * factor
                previous = cumulative
        if all(np.isfinite(a).all() for a in (p_alive, expected, discounted)):
            return name, model, (p_alive, expected, discounted)
        notes.append(f"{MODEL_LABELS[name]} ({model!r}) gives non-finite predictions for some "
                     "customers: not used.")
    if tried:
        notes.append("RFM-only scores: no model gave usable predictions; P(alive) is taken as 1.")
    rate = _rfm_rates(x, big_t)
    return "rfm", None, (np.ones(len(x)), rate * horizon, rate * per_month * factors.sum())


def _fit_spend(summary: pd.DataFrame, settings: ValueSettings,
               notes: list[str]) -> GammaGamma | None:
    if not len(summary):
        return None
    repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    if len(repeat) < settings.min_repeat_customers:
        notes.append(f"Gamma-Gamma spend model not fit ({len(repeat)} repeat customers with a "
                     "positive spend): each customer's own mean purchase is used.")
        return None
    try:
        model = GammaGamma().fit(repeat["frequency"], repeat["monetary_value"])
        if model.params_["q"] <= 1:
            raise ModelError("q <= 1: infinite mean spend")
        return model
    except ModelError as exc:
        notes.append(f"Gamma-Gamma spend model failed ({exc}); each customer's own mean "
                     "purchase is used.")
        return None


def _expected_spend(spend_model: GammaGamma | None, out: pd.DataFrame, kept: pd.DataFrame,
                    has_occasion: np.ndarray) -> np.ndarray:
    """E[Z | x, zbar] from Gamma-Gamma, else the customer's mean occasion amount."""
    spend = np.zeros(len(out))
    if not has_occasion.any():
        return spend
    if spend_model is not None:
        x = out["frequency"].to_numpy()[has_occasion]
        m = out["monetary_value"].to_numpy()[has_occasion]
        spend[has_occasion] = np.asarray(spend_model.expected_spend(x, m), dtype=float)
    else:
        mean = kept.groupby("customer")["amount"].mean().reindex(out.index)
        spend[has_occasion] = mean.to_numpy(dtype=float)[has_occasion]
    return spend


def _rfm_rates(x: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Repeat purchases per time unit, each customer's x/T shrunk to the population rate.

    Gamma(1, 1/pop) prior on the Poisson rate: rate = (x + 1) / (T + 1/pop), pop = sum x / sum T.
    """
    total_x, total_t = float(x.sum()), float(age.sum())
    if total_x <= 0 or total_t <= 0:
        return np.zeros(len(x))
    pop = total_x / total_t
    return (x + 1.0) / (age + 1.0 / pop)
