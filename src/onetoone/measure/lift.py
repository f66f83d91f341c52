"""Lift against control groups, with confidence intervals.

Units are customers. Over a period, a customer is *treated* when at least one marketing action
was given to them (``decisions.control_group`` empty) and *control* when the actions the engine
chose for them were all withheld (universal control group, or the action's holdout). Both groups
are therefore customers the engine wanted to contact, split at random by a salted hash: their
difference is the effect of the contact.

The outcome of a customer is observed from their first decision in the period for
``window_days``: converted when they bought (``transactions``) or a conversion was reported
(``responses``); value is the larger of the two sums, which usually describe the same sale.

The difference in conversion rates and in value per customer get normal-approximation
(Wald) intervals: ``d ± z * sqrt(p_t(1-p_t)/n_t + p_c(1-p_c)/n_c)``, and Welch's standard error
for the values.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from statistics import NormalDist
from typing import Any

import duckdb


@dataclass
class Lift:
    """Treated vs control: rates, difference and confidence intervals."""

    action: str | None
    n_treated: int
    n_control: int
    conversion_treated: float
    conversion_control: float
    difference: float
    difference_low: float
    difference_high: float
    value_treated: float
    value_control: float
    value_difference: float
    value_difference_low: float
    value_difference_high: float
    confidence: float

    @property
    def incremental_conversions(self) -> float:
        return self.difference * self.n_treated

    @property
    def incremental_value(self) -> float:
        return self.value_difference * self.n_treated

    @property
    def incremental_value_interval(self) -> tuple[float, float]:
        return (
            self.value_difference_low * self.n_treated,
            self.value_difference_high * self.n_treated,
        )

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            incremental_conversions=self.incremental_conversions,
            incremental_value=self.incremental_value,
        )
        return out

    def __str__(self) -> str:
        return (
            f"{self.action or 'all marketing'}: conversion {self.conversion_treated:.2%} "
            f"(n={self.n_treated}) vs {self.conversion_control:.2%} control "
            f"(n={self.n_control}); lift {self.difference:+.2%} "
            f"[{self.difference_low:+.2%}, {self.difference_high:+.2%}] at "
            f"{self.confidence:.0%}"
        )


def lift(
    con: duckdb.DuckDBPyConnection,
    *,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    window_days: int = 14,
    confidence: float = 0.95,
) -> Lift:
    """Lift of one action (against its holdout and the universal control group), or of all
    marketing actions (against the universal control group) when ``action`` is None."""
    filters: list[str] = ["d.action_id IS NOT NULL"]
    params: list[object] = []
    if action is not None:
        filters.append("d.action_id = ?")
        params.append(action)
    else:
        filters.append("(d.control_group IS NULL OR d.control_group = 'universal')")
        filters.append("""coalesce(a.definition->>'purpose', 'marketing') = 'marketing'
                          AND coalesce(a.definition->>'kind', 'offer') <> 'service'""")
    if since is not None:
        filters.append("d.decided_at >= ?")
        params.append(since)
    if until is not None:
        filters.append("d.decided_at < ?")
        params.append(until)
    rows = con.execute(
        f"""
        WITH d AS (
            SELECT d.customer_id, d.decided_at, d.control_group IS NULL AS treated
            FROM decisions d LEFT JOIN actions a USING (action_id)
            WHERE {" AND ".join(filters)}
        ), units AS (
            SELECT customer_id, bool_or(treated) AS treated,
                   coalesce(min(decided_at) FILTER (WHERE treated), min(decided_at)) AS t0
            FROM d GROUP BY customer_id
        ), tx AS (
            SELECT u.customer_id, count(*) AS n, sum(t.amount)::DOUBLE AS v
            FROM units u JOIN transactions t ON t.customer_id = u.customer_id
             AND t.occurred_at >= u.t0 AND t.occurred_at < u.t0 + to_days(?)
            GROUP BY ALL
        ), rs AS (
            SELECT u.customer_id, count(*) AS n, sum(coalesce(r.value, 0)) AS v
            FROM units u JOIN responses r ON r.customer_id = u.customer_id
             AND r.response = 'conversion'
             AND r.occurred_at >= u.t0 AND r.occurred_at < u.t0 + to_days(?)
            GROUP BY ALL
        ), outcome AS (
            SELECT u.treated, (coalesce(tx.n, 0) + coalesce(rs.n, 0)) > 0 AS converted,
                   greatest(coalesce(tx.v, 0), coalesce(rs.v, 0)) AS value
            FROM units u LEFT JOIN tx USING (customer_id) LEFT JOIN rs USING (customer_id)
        )
        SELECT treated, count(*), avg(converted::INTEGER), avg(value), var_samp(value)
        FROM outcome GROUP BY treated
    """,
        [*params, window_days, window_days],
    ).fetchall()
    return lift_from_counts(
        action,
        {bool(t): (int(n), float(p or 0), float(v or 0), float(s or 0)) for t, n, p, v, s in rows},
        confidence,
    )


def lift_from_counts(
    action: str | None,
    groups: dict[bool, tuple[int, float, float, float]],
    confidence: float = 0.95,
) -> Lift:
    """Lift from (n, conversion rate, mean value, value variance) of treated (True) and
    control (False)."""
    n_t, p_t, v_t, s_t = groups.get(True, (0, 0.0, 0.0, 0.0))
    n_c, p_c, v_c, s_c = groups.get(False, (0, 0.0, 0.0, 0.0))
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    if n_t and n_c:
        se = math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
        se_v = math.sqrt(s_t / n_t + s_c / n_c)
    else:
        se = se_v = math.inf
    diff, vdiff = p_t - p_c, v_t - v_c
    return Lift(
        action,
        n_t,
        n_c,
        p_t,
        p_c,
        diff,
        diff - z * se,
        diff + z * se,
        v_t,
        v_c,
        vdiff,
        vdiff - z * se_v,
        vdiff + z * se_v,
        confidence,
    )
