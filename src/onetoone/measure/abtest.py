"""A/B/n tests of treatments: each arm against the reference arm, looked at as often as wished.

An ``[ab_tests.NAME]`` gives each customer one of its arms (actions of the catalog) for good, by
a salted hash (:func:`onetoone.measure.control.ab_arm`). Looking at a fixed-sample confidence
interval every day and stopping when it excludes zero finds "winners" far more often than its
level says; here the difference of each arm with the reference gets a *confidence sequence*,
an interval that covers the true difference at every look at once: the asymptotic confidence
sequence of Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas (2024, "Time-uniform central limit
theory and asymptotic confidence sequences", Annals of Statistics), for a mean estimated from
``t`` observations with standard error ``s``::

    estimate ± s * sqrt(2 (t rho^2 + 1) / (t rho^2) * log(sqrt(t rho^2 + 1) / alpha))

with ``rho`` set once (not from the data) so that it is tightest at :data:`PLANNED_CUSTOMERS`
customers; several arms share ``alpha`` (Bonferroni). The verdict of an arm: ``better`` or
``worse`` than the reference once its sequence excludes zero, else ``no difference yet``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from onetoone.measure.lift import outcomes_sql, wilson_interval

#: the number of customers in a comparison at which the confidence sequence is tightest
PLANNED_CUSTOMERS = 10_000


def confidence_sequence_half_width(
    se: Any, t: Any, alpha: float, planned: int = PLANNED_CUSTOMERS
) -> Any:
    """Half-width of the asymptotic confidence sequence at ``t`` observations with standard
    error ``se`` (arrays broadcast)."""
    log_a = -2 * math.log(alpha)
    rho2 = (log_a + math.log(log_a + 1)) / planned
    tr = np.asarray(t, dtype=float) * rho2
    return np.asarray(se, dtype=float) * np.sqrt(
        2 * (tr + 1) / tr * np.log(np.sqrt(tr + 1) / alpha)
    )


@dataclass
class Arm:
    action: str
    customers: int
    conversions: int
    rate: float
    rate_low: float
    rate_high: float
    value_per_customer: float
    difference: float = math.nan  # rate - the reference's rate
    difference_low: float = math.nan  # confidence sequence, valid at every look
    difference_high: float = math.nan
    verdict: str = "reference"


@dataclass
class ABTestResult:
    test: str
    alpha: float
    started_at: datetime | None
    arms: list[Arm] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        better = [a for a in self.arms[1:] if a.verdict == "better"]
        if better:
            best = max(better, key=lambda a: a.rate)
            return f"{best.action} converts better than {self.arms[0].action}"
        if self.arms and all(a.verdict == "worse" for a in self.arms[1:]):
            return f"{self.arms[0].action}, the reference, converts better than every other arm"
        return "no arm can be declared better yet: keep testing"

    def as_dict(self) -> dict[str, Any]:
        arms = [
            {
                k: None if isinstance(v, float) and not math.isfinite(v) else v
                for k, v in asdict(a).items()
            }
            for a in self.arms
        ]
        return {
            "test": self.test,
            "alpha": self.alpha,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "verdict": self.verdict,
            "arms": arms,
        }


def ab_test_results(
    con: Any,
    test: str,
    arms: list[str],
    *,
    window_days: int,
    alpha: float = 0.05,
    started_at: datetime | None = None,
) -> ABTestResult:
    """Every arm's customers (those it was given, since ``started_at``), their conversion within
    ``window_days``, and each arm against the first with its confidence sequence."""
    result = ABTestResult(test, alpha, started_at)
    where = "d.action_id = ? AND d.control_group IS NULL" + (
        " AND d.decided_at >= ?" if started_at else ""
    )
    for action in arms:
        params = [action, *([started_at] if started_at else []), window_days, window_days]
        n, k, value = con.execute(
            f"SELECT count(*), coalesce(sum(converted::INTEGER), 0), coalesce(avg(value), 0) "
            f"FROM ({outcomes_sql(where)})",
            params,
        ).fetchall()[0]
        rate = k / n if n else math.nan
        low, high = wilson_interval(rate, n, _z(alpha)) if n else (math.nan, math.nan)
        result.arms.append(Arm(action, int(n), int(k), rate, low, high, float(value)))
    reference = result.arms[0]
    share = alpha / max(len(arms) - 1, 1)
    for arm in result.arms[1:]:
        if not (arm.customers and reference.customers):
            arm.verdict = "no customer yet"
            continue
        arm.difference = arm.rate - reference.rate
        se = math.sqrt(
            arm.rate * (1 - arm.rate) / arm.customers
            + reference.rate * (1 - reference.rate) / reference.customers
        )
        half = float(confidence_sequence_half_width(se, arm.customers + reference.customers, share))
        arm.difference_low, arm.difference_high = arm.difference - half, arm.difference + half
        arm.verdict = (
            "better"
            if arm.difference_low > 0
            else "worse"
            if arm.difference_high < 0
            else "no difference yet"
        )
    return result


def _z(alpha: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(1 - alpha / 2)
