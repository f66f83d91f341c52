"""Predicted vs true value on the demo company, from the ground truth written by the generator.

The demo writes ``truth/records.parquet`` (source, source_id -> person_id) and
``truth/holdout.parquet`` (each person's purchases and spend in the weeks after the exports end).
Each customer is mapped to the person behind most of its records and transactions; predictions
of customers of the same person are added up, so a person split into two customers is compared
once. Purchases the company cannot see (anonymous store tickets) are in the truth too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from onetoone.differentiate.btyd._summary import unit_days
from onetoone.differentiate.value import ValueResult
from onetoone.store import Store

_UNIT_CODE = {"day": "D", "week": "W", "month": "M"}


def find_truth(root: Path) -> Path | None:
    """``truth/`` in the workspace folder or next to it, when it holds the demo's files."""
    for folder in (root / "truth", root.parent / "truth"):
        if (folder / "records.parquet").exists() and (folder / "holdout.parquet").exists():
            return folder
    return None


def person_of_customers(store: Store, truth: Path) -> pd.Series:
    """The person behind each customer (index: customer_id): the one behind most of its
    records and transactions (ties: the first person id)."""
    # voted in the store: millions of keys never reach pandas
    records = str(truth / "records.parquet").replace("'", "''")
    return store.execute(
        f"""
        WITH keys AS (
          SELECT l.customer_id, r.source, r.source_id FROM customer_records r
          JOIN customer_links l USING (record_key) WHERE r.origin = 'profile'
          UNION ALL
          SELECT customer_id, source, source_id FROM transactions
          WHERE customer_id IS NOT NULL AND source_id IS NOT NULL
        ), truth AS (
          SELECT source, source_id, person_id FROM read_parquet('{records}')
          WHERE person_id IS NOT NULL
        )
        SELECT k.customer_id, t.person_id FROM keys k JOIN truth t USING (source, source_id)
        GROUP BY k.customer_id, t.person_id
        QUALIFY row_number() OVER (PARTITION BY k.customer_id
                                   ORDER BY count(*) DESC, t.person_id) = 1
        """
    ).df().set_index("customer_id")["person_id"]


def truth_comparison(store: Store, result: ValueResult, truth: Path) -> dict[str, Any] | None:
    """Correlation and decile calibration of predicted vs true holdout purchases and spend."""
    holdout = pd.read_parquet(truth / "holdout.parquet")
    start = pd.Timestamp(holdout["holdout_start"].iloc[0]).normalize()
    end = pd.Timestamp(holdout["holdout_end"].iloc[0]).normalize()
    gap = abs((start - result.as_of).days)
    if gap > 1:
        return {"skipped": f"the scores are as of {result.as_of.date()}, the truth's holdout "
                           f"starts {start.date()}: score as of that date to compare."}
    person = person_of_customers(store, truth)
    if person.empty:
        return {"skipped": "no customer could be matched to the truth's records."}

    s = result.scores
    weeks = (end - start).days / 7.0
    t = (end - start).days / unit_days(_UNIT_CODE[result.time_unit])
    predicted_n = np.zeros(len(s))
    buyer = (s["fallback"] != "no_purchase").to_numpy()
    if result.model is not None and buyer.any():
        predicted_n[buyer] = np.asarray(result.model.expected_purchases(
            t, s["frequency"].to_numpy()[buyer], s["recency"].to_numpy()[buyer],
            s["T"].to_numpy()[buyer]), dtype=float)
    elif buyer.any():  # RFM-only: the horizon's expected purchases scaled to the holdout
        months = t * unit_days(_UNIT_CODE[result.time_unit]) / unit_days("M")
        predicted_n = s[result.horizon_key].to_numpy() * months / _horizon_months(result)
    frame = pd.DataFrame({
        "person_id": person.reindex(s.index).to_numpy(),
        "predicted_purchases": predicted_n,
        "predicted_spend": predicted_n * s["expected_spend"].to_numpy(),
        "clv": s["clv"].to_numpy(),
    }).dropna(subset=["person_id"])
    per_person = frame.groupby("person_id").sum()
    actual = holdout.set_index("person_id")[["purchases", "spend"]]
    joined = per_person.join(actual, how="inner")
    if len(joined) < 10:
        return {"skipped": f"only {len(joined)} people matched the truth."}
    deciles = pd.qcut(joined["predicted_spend"].rank(method="first"), 10, labels=False) + 1
    table = joined.groupby(deciles).agg(
        people=("spend", "size"), predicted_purchases=("predicted_purchases", "mean"),
        actual_purchases=("purchases", "mean"), predicted_spend=("predicted_spend", "mean"),
        actual_spend=("spend", "mean"))
    table.index.name = "decile"
    return {
        "people": len(joined),
        "customers_matched": int(frame.shape[0]),
        "weeks": weeks,
        "start": start.date(),
        "end": end.date(),
        "corr_purchases": _corr(joined["predicted_purchases"], joined["purchases"]),
        "corr_spend": _corr(joined["predicted_spend"], joined["spend"]),
        "corr_clv_spend": _corr(joined["clv"], joined["spend"]),
        "spearman_spend": _corr(joined["predicted_spend"].rank(), joined["spend"].rank()),
        "predicted_purchases_total": float(joined["predicted_purchases"].sum()),
        "actual_purchases_total": float(joined["purchases"].sum()),
        "predicted_spend_total": float(joined["predicted_spend"].sum()),
        "actual_spend_total": float(joined["spend"].sum()),
        "deciles": table,
        "joined": joined,
    }


def _horizon_months(result: ValueResult) -> float:
    digits = "".join(ch for ch in result.horizon_key.rsplit("_", 1)[-1] if ch.isdigit())
    return float(digits) * unit_days(_UNIT_CODE[result.time_unit]) / unit_days("M")


def _corr(a: pd.Series, b: pd.Series) -> float:
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a.to_numpy(float), b.to_numpy(float))[0, 1])
