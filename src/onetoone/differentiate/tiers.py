"""Value tiers and the Pareto share of value.

Peppers & Rogers (*Enterprise One to One*, 1997; *Managing Customer Relationships*, 2004, ch. 5)
rank customers by value to decide where to spend: the **most valuable** customers (keep them),
the **most growable** (the largest gap between what they could be worth and what they are worth:
grow them), the **below-zero** customers (they cost more than they bring: serve them at lower
cost or let them go), and the rest. Rules (documented in docs/value-models.md):

* ``below_zero``: CLV < 0 (cost to serve above the margin, or returns above purchases);
* ``top``: the ``top_share`` of customers with a purchase ranked by CLV (ties broken by id);
* ``growable``: not top, CLV >= 0, a purchase on record, expected purchases over the horizon at
  or above the ``min_purchases_quantile`` of buyers but expected spend per purchase at or below
  their ``max_spend_quantile``: they come often and buy little, the share-of-wallet gap;
* ``rest``: everyone else (prospects without a purchase included).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

TIERS = ("top", "growable", "rest", "below_zero")


def value_ranks(clv: pd.Series) -> pd.Series:
    """1 = highest CLV; ties broken by customer id (the index), so ranks are reproducible."""
    order = pd.DataFrame({"clv": clv.to_numpy(dtype=float), "id": clv.index.astype(str)})
    order = order.sort_values(["clv", "id"], ascending=[False, True], kind="mergesort")
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order.index.to_numpy()] = np.arange(1, len(order) + 1)
    return pd.Series(ranks, index=clv.index, name="value_rank")


def pareto_shares(clv: pd.Series, ranks: pd.Series) -> pd.Series:
    """Share of the total positive CLV held by the customers ranked at or above each one."""
    positive = np.clip(clv.to_numpy(dtype=float), 0.0, None)
    total = positive.sum()
    order = np.argsort(ranks.to_numpy())
    cumulative = np.empty(len(clv))
    cumulative[order] = np.cumsum(positive[order])
    share = cumulative / total if total > 0 else np.zeros(len(clv))
    return pd.Series(share, index=clv.index, name="pareto_share")


def pareto_curve(clv: Any) -> tuple[np.ndarray, np.ndarray]:
    """(share of customers, share of positive value) from the most valuable down, from (0, 0)."""
    values = np.sort(np.clip(np.asarray(clv, dtype=float), 0.0, None))[::-1]
    n = len(values)
    customers = np.arange(n + 1) / max(n, 1)
    total = values.sum()
    value = np.r_[0.0, np.cumsum(values)] / total if total > 0 else np.zeros(n + 1)
    return customers, value


def top_share_of_value(clv: Any, share: float) -> float:
    """Share of positive value held by the top ``share`` of customers (at least one customer)."""
    values = np.sort(np.clip(np.asarray(clv, dtype=float), 0.0, None))[::-1]
    total = values.sum()
    if len(values) == 0 or total <= 0:
        return 0.0
    k = max(1, int(np.ceil(share * len(values))))
    return float(values[:k].sum() / total)


def value_tiers(
    clv: pd.Series,
    expected_purchases: pd.Series,
    expected_spend: pd.Series,
    has_purchase: pd.Series,
    *,
    top_share: float = 0.2,
    min_purchases_quantile: float = 0.5,
    max_spend_quantile: float = 0.5,
) -> pd.Series:
    """The value tier of every customer (see the module docstring); indexed like ``clv``."""
    value = clv.to_numpy(dtype=float)
    buyer = has_purchase.to_numpy(dtype=bool)
    tier = np.full(len(value), "rest", dtype=object)
    below = value < 0
    tier[below] = "below_zero"
    n_buyers = int(buyer.sum())
    if n_buyers == 0:
        return pd.Series(tier, index=clv.index, name="value_tier")
    k = int(np.ceil(top_share * n_buyers))
    buyer_ranks = value_ranks(clv[buyer & ~below]) if k else pd.Series(dtype=np.int64)
    top_ids = buyer_ranks.index[(buyer_ranks <= k).to_numpy()]
    is_top = clv.index.isin(top_ids) & (value > 0)
    tier[is_top] = "top"
    purchases = expected_purchases.to_numpy(dtype=float)
    spend = expected_spend.to_numpy(dtype=float)
    often = purchases >= np.quantile(purchases[buyer], min_purchases_quantile)
    small = spend <= np.quantile(spend[buyer], max_spend_quantile)
    growable = buyer & ~is_top & ~below & often & small & (purchases > 0)
    tier[growable] = "growable"
    return pd.Series(tier, index=clv.index, name="value_tier")


def pyramid(clv: pd.Series, tiers: pd.Series) -> pd.DataFrame:
    """Customers, total CLV and share of positive CLV per tier, in :data:`TIERS` order."""
    frame = pd.DataFrame({"clv": clv.to_numpy(dtype=float), "tier": tiers.to_numpy()})
    total = float(np.clip(frame["clv"], 0, None).sum())
    rows = []
    for name in TIERS:
        part = frame.loc[frame["tier"] == name, "clv"]
        positive = float(np.clip(part, 0, None).sum())
        rows.append(
            {
                "tier": name,
                "customers": len(part),
                "clv": float(part.sum()),
                "value_share": positive / total if total > 0 else 0.0,
            }
        )
    return pd.DataFrame(rows).set_index("tier")
