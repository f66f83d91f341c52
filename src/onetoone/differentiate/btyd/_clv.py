"""Customer lifetime value from a purchase model and a spend model, discounted monthly."""

from __future__ import annotations

from typing import Any

import numpy as np

from onetoone.differentiate.btyd._base import as_float, wrap
from onetoone.differentiate.btyd._summary import unit_days
from onetoone.differentiate.btyd.bgbb import BGBB
from onetoone.differentiate.btyd.bgnbd import BGNBD
from onetoone.differentiate.btyd.gammagamma import GammaGamma
from onetoone.differentiate.btyd.paretonbd import ParetoNBD
from onetoone.errors import ModelError


def clv(
    model: BGNBD | ParetoNBD,
    spend_model: GammaGamma,
    frequency: Any,
    recency: Any,
    T: Any,
    monetary_value: Any,
    margin: float = 1.0,
    monthly_discount_rate: float = 0.01,
    horizon_months: int = 12,
    time_unit: str = "week",
) -> Any:
    """Discounted expected margin of each customer over the next ``horizon_months`` months.

    CLV = sum_{m=1..H} (E[X(T, T+m)] - E[X(T, T+m-1)]) * E[Z | x, zbar] * margin / (1+d)^m,
    the conditional expected purchases of each month (``model.expected_purchases``) times the
    conditional expected spend (``spend_model.expected_spend``, Fader, Hardie & Lee 2005, "RFM and
    CLV"), discounted at the end of the month (lifetimes' ``customer_lifetime_value``). A month
    is 365.25/12 days; ``time_unit`` ("day", "week" or "month") is the unit of recency and T.
    ``margin`` is the share of spend that is profit (1.0 = revenue).
    """
    if isinstance(model, BGBB) or not hasattr(model, "expected_purchases"):
        raise ModelError(
            "clv needs a continuous-time purchase model (BGNBD, ModifiedBGNBD or ParetoNBD).",
            hint="For BG/BB, multiply expected_purchases by the value of one opportunity.",
        )
    if not isinstance(horizon_months, (int, np.integer)) or horizon_months < 1:
        raise ModelError("horizon_months must be a whole number of months >= 1.")
    rate = float(monthly_discount_rate)
    if not np.isfinite(rate) or rate <= -1:
        raise ModelError("monthly_discount_rate must be a number > -1 (0.01 = 1 % a month).")
    if not np.isfinite(float(margin)):
        raise ModelError("margin must be a finite number (share of spend kept as profit).")
    per_month = unit_days("M") / unit_days(time_unit)
    spend = np.asarray(spend_model.expected_spend(frequency, monetary_value), dtype=float) * float(
        margin
    )
    freq = as_float("frequency", frequency)
    rec = as_float("recency", recency)
    age = as_float("T", T)
    total = np.zeros(np.broadcast_shapes(freq.shape, rec.shape, age.shape, spend.shape))
    previous = np.zeros_like(total)
    for month in range(1, int(horizon_months) + 1):
        cumulative = np.asarray(model.expected_purchases(month * per_month, freq, rec, age))
        total += (cumulative - previous) * spend / (1.0 + rate) ** month
        previous = cumulative
    return wrap(total, frequency)
