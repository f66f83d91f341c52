"""Lift against control groups, with confidence intervals.

Units are customers. Over a period, a customer is *treated* when at least one marketing action
was given to them (``decisions.control_group`` empty) and *control* when the actions the engine
chose for them were all withheld (universal control group, or the action's holdout). Both groups
are therefore customers the engine wanted to contact, split at random by a salted hash: their
difference is the effect of the contact.

The outcome of a customer is observed from their first decision in the period for
``window_days``: converted when they bought (``transactions``) or a conversion was reported
(``responses``); value is the larger of the two sums, which usually describe the same sale.

Intervals: Wilson's score interval for each conversion rate (Wilson 1927); Newcombe's hybrid
score interval for their difference (Newcombe 1998, method 10), which keeps its coverage for
small groups and rare conversions where the normal approximation does not; the relative lift
(rate ratio - 1) by the log method (Katz et al. 1978); Welch's t interval for the difference in
value per customer (Welch 1947). ``sample_size_needed`` is the customers needed in each group to
detect a given absolute lift with 80 % power at the same confidence (Fleiss 1981, eq. 3.14,
without continuity correction); below it the status is "not enough data yet".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from statistics import NormalDist
from typing import Any

from onetoone.errors import InvalidInputError
from onetoone.store import Connection


@dataclass
class Lift:
    """Treated vs control: rates, difference and confidence intervals (NaN where a group is
    empty; :attr:`status` then says why)."""

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
    conversion_treated_low: float = math.nan
    conversion_treated_high: float = math.nan
    conversion_control_low: float = math.nan
    conversion_control_high: float = math.nan
    relative: float = math.nan  # conversion_treated / conversion_control - 1
    relative_low: float = math.nan
    relative_high: float = math.nan
    detect: float = math.nan  # the absolute lift the sample size is computed for
    sample_size_needed: int | None = None  # per group
    status: str = ""
    channel: str | None = None

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
        """Every figure, JSON-ready: a figure that cannot be computed is None, never NaN."""
        out = asdict(self)
        out.update(
            incremental_conversions=self.incremental_conversions,
            incremental_value=self.incremental_value,
        )
        return {k: None if isinstance(v, float) and not math.isfinite(v) else v
                for k, v in out.items()}

    def __str__(self) -> str:
        if not (self.n_treated and self.n_control):
            return f"{self.action or 'all marketing'}: {self.status}"
        return (
            f"{self.action or 'all marketing'}: conversion {self.conversion_treated:.2%} "
            f"(n={self.n_treated}) vs {self.conversion_control:.2%} control "
            f"(n={self.n_control}); lift {self.difference:+.2%} "
            f"[{self.difference_low:+.2%}, {self.difference_high:+.2%}] at "
            f"{self.confidence:.0%}: {self.status}"
        )


def lift(
    con: Connection,
    *,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    window_days: int = 14,
    confidence: float = 0.95,
    channel: str | None = None,
    detect: float | None = None,
    campaign: str | None = None,
) -> Lift:
    """Lift of one action (against its holdout and the universal control group), or of all
    marketing actions (against the universal control group) when ``action`` is None; of the
    decisions on one ``channel``, or of one ``campaign`` run, only when given. ``detect``: see
    :func:`lift_from_counts`."""
    if window_days < 1:
        raise InvalidInputError(f"window_days {window_days} is not a positive number of days.")
    filters: list[str] = ["d.action_id IS NOT NULL"]
    params: list[object] = []
    if action is not None:
        filters.append("d.action_id = ?")
        params.append(action)
    if channel is not None:
        filters.append("d.channel = ?")
        params.append(channel)
    if campaign is not None:  # the run id a campaign run puts in its decisions' context
        filters.append("d.context->'context'->>'campaign' = ?")
        params.append(campaign)
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
    sql = outcomes_sql(" AND ".join(filters))
    rows = con.execute(
        f"SELECT treated, count(*), avg(converted::INTEGER), avg(value), var_samp(value) "
        f"FROM ({sql}) GROUP BY treated",
        [*params, window_days, window_days],
    ).fetchall()
    return lift_from_counts(
        action,
        {bool(t): (int(n), float(p or 0), float(v or 0), float(s or 0)) for t, n, p, v, s in rows},
        confidence,
        detect,
        channel,
    )


def outcomes_sql(where: str) -> str:
    """One row per customer decided for (``decisions d`` joined to ``actions a``, filtered by
    ``where``): ``customer_id``, ``treated``, ``t0`` (first decision, the first treated one for
    the treated), ``converted`` and ``value`` within the window (parameters: the filters'
    values, then the window in days twice)."""
    return f"""
        WITH d AS (
            SELECT d.customer_id, d.decided_at, d.control_group IS NULL AS treated
            FROM decisions d LEFT JOIN actions a USING (action_id)
            WHERE {where}
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
        )
        SELECT u.customer_id, u.treated, u.t0,
               (coalesce(tx.n, 0) + coalesce(rs.n, 0)) > 0 AS converted,
               greatest(coalesce(tx.v, 0), coalesce(rs.v, 0)) AS value
        FROM units u LEFT JOIN tx USING (customer_id) LEFT JOIN rs USING (customer_id)
    """


def action_outcomes(con: Connection, action: str, window_days: int) -> Any:
    """The customers one action was decided for, treated or withheld, with their outcome
    (a DataFrame of :func:`outcomes_sql`'s columns): the training set of its uplift."""
    return con.execute(outcomes_sql("d.action_id = ?"), [action, window_days, window_days]).df()


def actions_with_decisions(con: Connection, channel: str | None = None,
                           campaign: str | None = None) -> list[str]:
    """The actions decided at least once (on ``channel``, in ``campaign``), by name."""
    where = ""
    params: list[str] = []
    if channel:
        where += " AND channel = ?"
        params.append(channel)
    if campaign:
        where += " AND context->'context'->>'campaign' = ?"
        params.append(campaign)
    return [r[0] for r in con.execute(
        f"SELECT DISTINCT action_id FROM decisions WHERE action_id IS NOT NULL{where} "
        "ORDER BY action_id", params).fetchall()]


def lift_from_counts(
    action: str | None,
    groups: dict[bool, tuple[int, float, float, float]],
    confidence: float = 0.95,
    detect: float | None = None,
    channel: str | None = None,
) -> Lift:
    """Lift from (n, conversion rate, mean value, value variance) of treated (True) and
    control (False); ``detect``: the absolute lift the sample size is computed for (default:
    the one observed)."""
    if not 0.5 <= confidence < 1:
        raise InvalidInputError(f"confidence {confidence} is not between 0.5 and 1.")
    n_t, p_t, v_t, s_t = groups.get(True, (0, 0.0, 0.0, 0.0))
    n_c, p_c, v_c, s_c = groups.get(False, (0, 0.0, 0.0, 0.0))
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    t_low, t_high = wilson_interval(p_t, n_t, z)
    c_low, c_high = wilson_interval(p_c, n_c, z)
    nan = math.nan
    diff = p_t - p_c if n_t and n_c else nan
    low = diff - math.hypot(p_t - t_low, c_high - p_c) if n_t and n_c else nan
    high = diff + math.hypot(t_high - p_t, p_c - c_low) if n_t and n_c else nan
    v_diff, v_low, v_high = _welch(n_t, v_t, s_t, n_c, v_c, s_c, confidence)
    relative, r_low, r_high = _relative(n_t, p_t, n_c, p_c, z)
    target = abs(diff) if detect is None else abs(detect)
    needed = sample_size(p_c, target, confidence) if n_c and target > 0 else None
    if not n_c:
        status = "no control group: the lift cannot be measured"
    elif not n_t:
        status = "nobody was treated"
    elif low > 0 or high < 0:
        status = "significant"
    elif needed is not None and min(n_t, n_c) < needed:
        status = "not enough data yet"
    else:
        status = "no significant lift"
    return Lift(action, n_t, n_c, p_t if n_t else nan, p_c if n_c else nan, diff, low, high,
                v_t if n_t else nan, v_c if n_c else nan, v_diff, v_low, v_high, confidence,
                t_low, t_high, c_low, c_high, relative, r_low, r_high, target, needed, status,
                channel)


def wilson_interval(p: float, n: int, z: float) -> tuple[float, float]:
    """Wilson's score interval of a proportion ``p`` observed on ``n`` units (NaN for none)."""
    if n <= 0:
        return math.nan, math.nan
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _welch(n_t: int, v_t: float, s_t: float, n_c: int, v_c: float, s_c: float,
           confidence: float) -> tuple[float, float, float]:
    if n_t < 2 or n_c < 2:
        return (v_t - v_c if n_t and n_c else math.nan), math.nan, math.nan
    from scipy.stats import t as student

    a, b = s_t / n_t, s_c / n_c
    diff = v_t - v_c
    if a + b == 0:
        return diff, diff, diff
    df = (a + b) ** 2 / (a * a / (n_t - 1) + b * b / (n_c - 1))
    half = float(student.ppf(0.5 + confidence / 2, df)) * math.sqrt(a + b)
    return diff, diff - half, diff + half


def _relative(n_t: int, p_t: float, n_c: int, p_c: float, z: float
              ) -> tuple[float, float, float]:
    """Rate ratio - 1, with the log-method interval (needs a conversion in each group)."""
    if not (n_t and n_c and p_t > 0 and p_c > 0):
        return math.nan, math.nan, math.nan
    ratio = p_t / p_c
    se = math.sqrt((1 - p_t) / (n_t * p_t) + (1 - p_c) / (n_c * p_c))
    return ratio - 1, ratio * math.exp(-z * se) - 1, ratio * math.exp(z * se) - 1


def sample_size(control_rate: float, lift: float, confidence: float = 0.95,
                power: float = 0.8) -> int | None:
    """Customers needed in each group to detect an absolute ``lift`` over ``control_rate``
    (two-sided test of two proportions; Fleiss 1981). None when it cannot be reached."""
    p1, p2 = control_rate + lift, control_rate
    if lift <= 0 or not 0 < p1 < 1 or not 0 <= p2 < 1:
        return None
    z_a = NormalDist().inv_cdf(0.5 + confidence / 2)
    z_b = NormalDist().inv_cdf(power)
    mean = (p1 + p2) / 2
    root = z_a * math.sqrt(2 * mean * (1 - mean)) + z_b * math.sqrt(p1 * (1 - p1)
                                                                   + p2 * (1 - p2))
    return math.ceil(root * root / (lift * lift))
