"""Store adapter of value scoring: read transactions with their margin, write customer_scores."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from onetoone.clock import utcnow
from onetoone.differentiate.settings import ValueSettings
from onetoone.differentiate.value import ScoringError, ValueResult
from onetoone.store import Store, frame_view

#: Keys of ``customer_scores.scores`` that value scoring writes (other keys are kept).
SCORE_KEYS = ("expected_spend", "model", "value_rank", "pareto_share", "margin",
              "historical_spend", "fallback")


def load_customers(store: Store) -> list[str]:
    rows = store.fetchall("SELECT customer_id FROM customers UNION "
                          "SELECT customer_id FROM transactions WHERE customer_id IS NOT NULL")
    return [r[0] for r in rows if r[0] is not None]


def load_transactions(store: Store, settings: ValueSettings, timezone: str) -> pd.DataFrame:
    """Transactions of identified customers, cancelled ones excluded, with their margin.

    Margin of a transaction = revenue-weighted margin of its lines' products
    (``transaction_items`` -> ``products.margin``), ``default_margin`` for lines or transactions
    without one. Times are converted from UTC to the workspace's time zone before days are taken.
    """
    statuses = [s.lower() for s in settings.exclude_statuses] or [""]
    marks = ", ".join("?" for _ in statuses)
    frame = store.execute(
        f"""
        WITH p AS (
          SELECT source_id, avg(margin) AS margin FROM products
          WHERE margin BETWEEN -1 AND 1 GROUP BY source_id
        ), items AS (
          SELECT i.transaction_id,
                 sum(abs(coalesce(i.quantity, 1) * i.unit_price)
                     * coalesce(p.margin, ?::DOUBLE))
                 / nullif(sum(abs(coalesce(i.quantity, 1) * i.unit_price)), 0) AS margin
          FROM transaction_items i LEFT JOIN p ON p.source_id = i.product_id
          WHERE i.unit_price IS NOT NULL GROUP BY i.transaction_id
        )
        SELECT t.customer_id AS customer, t.occurred_at, t.amount::DOUBLE AS amount,
               items.margin::DOUBLE AS margin
        FROM transactions t LEFT JOIN items ON items.transaction_id = t.source_id
        WHERE t.customer_id IS NOT NULL
          AND (t.status IS NULL OR lower(t.status) NOT IN ({marks}))
        """,
        [settings.default_margin, *statuses],
    ).df()
    when = pd.to_datetime(frame["occurred_at"])
    frame["occurred_at"] = when.dt.tz_localize("UTC").dt.tz_convert(timezone).dt.tz_localize(None)
    return frame


def write_scores(store: Store, result: ValueResult) -> int:
    """Replace the rows of ``result.as_of`` in customer_scores (other score keys are kept)."""
    s = result.scores
    if s.empty:
        raise ScoringError("No customer to score.", hint="Run 'onetoone identify' first.")
    keys = [result.horizon_key, *SCORE_KEYS]
    columns: dict[str, pa.Array] = {
        "customer_id": pa.array(s.index.astype(str).to_numpy(), pa.string()),
        "value_tier": pa.array(s["value_tier"].astype(str).to_numpy(), pa.string()),
    }
    for name in ("frequency", "recency", "T", "monetary_value", "p_alive", "clv"):
        columns[name] = pa.array(s[name].to_numpy(float), pa.float64())
    for i, key in enumerate(keys):  # the scores JSON is made by DuckDB, not row by row
        columns[f"_k{i}"] = _json_ready(s[key])
    pairs = ", ".join(f"'{key}', n._k{i}" for i, key in enumerate(keys))
    frame = pa.table(columns)
    now = utcnow()
    as_of = result.as_of.date()
    with store.transaction() as con:
        with frame_view(con, "_new_scores", frame):
            con.execute("CREATE OR REPLACE TEMP TABLE _old_scores AS SELECT customer_id, scores "
                        "FROM customer_scores WHERE as_of = ?", [as_of])
            con.execute("DELETE FROM customer_scores WHERE as_of = ?", [as_of])
            con.execute(
                f"""
                INSERT INTO customer_scores
                SELECT n.customer_id, ?::DATE, n.frequency, n.recency, n."T", n.monetary_value,
                       n.p_alive, n.clv, n.value_tier,
                       CASE WHEN o.scores IS NULL THEN json_object({pairs})
                            ELSE json_merge_patch(o.scores, json_object({pairs})) END,
                       ?::TIMESTAMP
                FROM _new_scores n LEFT JOIN _old_scores o USING (customer_id)
                """,
                [as_of, now],
            )
        con.execute("DROP TABLE _old_scores")
    return len(frame)


def latest_as_of(store: Store) -> Any:
    """The as-of date scored last (not the latest date: an older one may be re-scored)."""
    return store.scalar("SELECT as_of FROM customer_scores ORDER BY scored_at DESC, as_of DESC "
                        "LIMIT 1")


def _json_ready(values: pd.Series) -> pa.Array:
    """A score column for ``json_object``: numbers as numbers (non-finite ones as null),
    anything else as text (None as null)."""
    if pd.api.types.is_bool_dtype(values):
        return pa.array(values.to_numpy(bool), pa.bool_())
    if pd.api.types.is_integer_dtype(values):
        return pa.array(values.to_numpy(np.int64), pa.int64())
    if pd.api.types.is_float_dtype(values):
        x = values.to_numpy(float)
        return pa.array(x, pa.float64(), mask=~np.isfinite(x))
    return pa.array([None if v is None or v is pd.NA or (isinstance(v, float) and v != v)
                     else str(v) for v in values.tolist()], pa.string())
