"""The report's plots, drawn with matplotlib (optional: the ``report`` extra).

Each function returns a matplotlib Figure; :func:`save` writes it as PNG and returns the bytes.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

_TIER_COLOURS = {"top": "#1b7837", "growable": "#5aae61", "rest": "#bababa",
                 "below_zero": "#c51b7d"}


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path) -> bytes:
    """Write ``fig`` to ``path`` as PNG and return the bytes (for inlining)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    data = buffer.getvalue()
    path.write_bytes(data)
    return data


def pyramid(table: pd.DataFrame) -> Any:
    """Customers and share of value per tier, the most valuable on top."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    order = ["below_zero", "rest", "growable", "top"]
    tiers = [t for t in order if t in table.index]
    colours = [_TIER_COLOURS[t] for t in tiers]
    customers = table.loc[tiers, "customers"].to_numpy(float)
    share_customers = customers / max(customers.sum(), 1)
    axes[0].barh(tiers, -share_customers, color=colours)
    axes[0].set_xlim(-1, 0)
    axes[0].set_xticks([-1, -0.5, 0], ["100 %", "50 %", "0"])
    axes[0].set_title("share of customers")
    axes[1].barh(tiers, table.loc[tiers, "value_share"].to_numpy(float), color=colours)
    axes[1].set_xlim(0, 1)
    axes[1].set_xticks([0, 0.5, 1], ["0", "50 %", "100 %"])
    axes[1].set_title("share of value (positive CLV)")
    for ax, values in ((axes[0], -share_customers),
                       (axes[1], table.loc[tiers, "value_share"].to_numpy(float))):
        for y, v in enumerate(values):
            ax.text(v, y, f" {abs(v):.0%} ", va="center", ha="right" if v < 0 else "left",
                    fontsize=9)
    fig.suptitle("Value pyramid")
    fig.tight_layout()
    return fig


def pareto(customers: np.ndarray, value: np.ndarray, top1: float, top20: float) -> Any:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(customers * 100, value * 100, color="#1b7837", lw=2, label="customers by CLV")
    ax.plot([0, 100], [0, 100], color="#999999", ls="--", lw=1, label="equal value")
    ax.axvline(20, color="#cccccc", lw=0.8)
    ax.annotate(f"top 20 %: {top20:.0%}", (20, top20 * 100), xytext=(30, top20 * 100 - 12),
                arrowprops={"arrowstyle": "->"})
    ax.set_xlabel("% of customers (most valuable first)")
    ax.set_ylabel("% of positive CLV")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 101)
    ax.set_title(f"Pareto curve (top 1 %: {top1:.0%} of value)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def calibration(table: pd.DataFrame, label: str) -> Any:
    """Mean holdout repeat purchases by calibration frequency, actual vs the model."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.arange(len(table))
    ax.plot(x, table["actual"], "o-", color="#333333", label="actual")
    ax.plot(x, table["expected"], "s--", color="#1b7837", label=label)
    names = [str(i) for i in table.index]
    names[-1] = names[-1] + "+"
    ax.set_xticks(x, names)
    ax.set_xlabel("repeat purchases in the calibration period")
    ax.set_ylabel("mean repeat purchases in the holdout")
    ax.set_title("Calibration vs holdout")
    ax.legend()
    fig.tight_layout()
    return fig


def tracking(table: pd.DataFrame, calibration_week: int, label: str) -> Any:
    """Weekly cumulative repeat purchases, actual vs the model, calibration then holdout."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(table.index, table["actual"], color="#333333", label="actual")
    ax.plot(table.index, table["expected"], color="#1b7837", ls="--", label=label)
    ax.axvline(calibration_week, color="#999999", ls=":", lw=1)
    ax.text(calibration_week, ax.get_ylim()[1] * 0.05, " holdout →", fontsize=9)
    ax.set_xlabel("week")
    ax.set_ylabel("cumulative repeat purchases")
    ax.set_title("Tracking cumulative repeat purchases")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def truth_scatter(joined: pd.DataFrame, deciles: pd.DataFrame) -> Any:
    """Predicted vs true holdout spend: per person (log scale) and by decile."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ax = axes[0]
    ax.scatter(joined["predicted_spend"] + 1, joined["spend"] + 1, s=6, alpha=0.35,
               color="#1b7837")
    top = float(max(joined["predicted_spend"].max(), joined["spend"].max()) + 1)
    ax.plot([1, top], [1, top], color="#999999", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("predicted holdout spend + 1")
    ax.set_ylabel("true holdout spend + 1")
    ax.set_title("Per person")
    ax = axes[1]
    x = np.arange(1, len(deciles) + 1)
    ax.bar(x - 0.2, deciles["predicted_spend"], width=0.4, color="#1b7837", label="predicted")
    ax.bar(x + 0.2, deciles["actual_spend"], width=0.4, color="#333333", label="true")
    ax.set_xticks(x)
    ax.set_xlabel("decile of predicted spend")
    ax.set_ylabel("mean holdout spend")
    ax.set_title("Decile calibration")
    ax.legend()
    fig.tight_layout()
    return fig


def monitor(shares: pd.DataFrame) -> Any:
    """Share of each value tier's value at risk (sum of CLV x risk / CLV) per as-of date."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    x = pd.to_datetime(shares.index)
    for tier in shares.columns:
        ax.plot(x, 100 * shares[tier].to_numpy(dtype=float), marker="o", label=str(tier),
                color=_TIER_COLOURS.get(str(tier), "#4575b4"), lw=2 if tier == "top" else 1)
    ax.set_ylabel("% of the tier's value at risk")
    ax.set_xlabel("as of")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return fig
