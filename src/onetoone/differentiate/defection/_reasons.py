"""Per-customer defection reasons in a marketer's words, from LightGBM's contributions.

Features are grouped in families (purchase rhythm, spend, returns, complaints, e-mail, web,
social, NPS, consent, contract); a family's contribution is the sum of its features' TreeSHAP
values. The families that raise the risk most (positive contribution), at most ``limit``, are
said with the customer's own figures: "orders every 3 weeks until 12 May 2025, none since; 2
complaints in 30 days".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

FAMILIES: dict[str, tuple[str, ...]] = {
    "rhythm": ("days_since_last_purchase", "mean_gap_days", "last_gap_days", "gap_ratio",
               "rhythm_trend", "purchases", "purchases_90d", "purchases_prev_90d",
               "purchase_trend", "p_alive", "expected_purchases", "tenure_days"),
    "spend": ("spend_total", "spend_90d", "spend_prev_90d", "spend_trend", "mean_basket"),
    "returns": ("returns_365d", "return_share"),
    "complaints": ("complaints_30d", "complaints_90d", "service_contacts_90d"),
    "email": ("emails_sent_90d", "email_open_rate_90d", "email_open_rate_prev",
              "email_engagement_trend", "days_since_email_open", "unsubscribes_365d"),
    "sms": ("sms_clicks_90d", "sms_stops_365d"),
    "web": ("web_visits_30d", "web_visits_90d", "web_visit_trend"),
    "social": ("social_posts_180d", "social_sentiment_180d", "negative_posts_180d"),
    "nps": ("last_nps", "nps_detractor", "days_since_nps", "low_scores_365d"),
    "consent": ("consents_withdrawn_180d", "consents_withdrawn_total", "consents_active"),
    "contract": ("contracts_active", "contract_tenure_days", "contracts_ended_365d",
                 "contract_amount"),
}
_FAMILY_OF = {feature: family for family, feats in FAMILIES.items() for feature in feats}


def _num(row: Any, name: str) -> float:
    value = row.get(name, np.nan)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value


def _ok(value: float) -> bool:
    return not math.isnan(value)


def every(days: float) -> str:
    """'every 5 days', 'every 3 weeks', 'every 2 months'."""
    if days < 12:
        n, unit = max(1, round(days)), "day"
    elif days < 60:
        n, unit = round(days / 7), "week"
    elif days < 540:
        n, unit = round(days / 30.4), "month"
    else:
        n, unit = round(days / 365.25), "year"
    return f"every {unit}" if n == 1 else f"every {n} {unit}s"


def _date(value: Any) -> str:
    ts = pd.Timestamp(value)
    return f"{ts.day} {ts:%b %Y}"


def _rhythm(row: Any) -> str | None:
    n = _num(row, "purchases")
    since = _num(row, "days_since_last_purchase")
    last = row.get("last_day")
    if not _ok(n) or not _ok(since) or last is None or pd.isna(last):
        return None
    gap = _num(row, "mean_gap_days")
    recent, before = _num(row, "purchases_90d"), _num(row, "purchases_prev_90d")
    if n >= 2 and _ok(gap):
        text = f"orders {every(gap)} until {_date(last)}, none since"
        if _ok(recent) and _ok(before) and recent < before and recent > 0:
            text = (f"{int(recent)} order(s) in the last 90 days vs {int(before)} the 90 days "
                    f"before; orders {every(gap)}")
        return text
    return f"one purchase only, on {_date(last)} ({int(since)} days ago)"


def _spend(row: Any) -> str | None:
    now, before = _num(row, "spend_90d"), _num(row, "spend_prev_90d")
    if _ok(now) and _ok(before) and before > now:
        return f"spent {now:,.0f} in the last 90 days vs {before:,.0f} the 90 days before"
    return None


def _returns(row: Any) -> str | None:
    n = _num(row, "returns_365d")
    return f"{int(n)} return(s) in 12 months" if _ok(n) and n > 0 else None


def _complaints(row: Any) -> str | None:
    c30, c90 = _num(row, "complaints_30d"), _num(row, "complaints_90d")
    if _ok(c30) and c30 > 0:
        return f"{int(c30)} complaint(s) in 30 days"
    if _ok(c90) and c90 > 0:
        return f"{int(c90)} complaint(s) in 90 days"
    s90 = _num(row, "service_contacts_90d")
    return f"{int(s90)} service contact(s) in 90 days" if _ok(s90) and s90 > 0 else None


def _email(row: Any) -> str | None:
    now, before = _num(row, "email_open_rate_90d"), _num(row, "email_open_rate_prev")
    if _ok(_num(row, "unsubscribes_365d")) and _num(row, "unsubscribes_365d") > 0:
        return "unsubscribed from e-mails"
    if _ok(now) and _ok(before) and before > now:
        return f"opens fewer e-mails ({now:.0%} in 90 days vs {before:.0%} before)"
    days = _num(row, "days_since_email_open")
    if _ok(days) and days > 60:
        return f"no e-mail opened for {int(days)} days"
    if not _ok(days) and _num(row, "emails_sent_90d") > 0:
        return "no e-mail opened in 12 months"
    return None


def _sms(row: Any) -> str | None:
    stops = _num(row, "sms_stops_365d")
    return "answered STOP to text messages" if _ok(stops) and stops > 0 else None


def _web(row: Any) -> str | None:
    v30, v90 = _num(row, "web_visits_30d"), _num(row, "web_visits_90d")
    if _ok(v30) and v30 == 0 and _ok(v90) and v90 > 0:
        return "no web visit in 30 days"
    trend = _num(row, "web_visit_trend")
    return "fewer web visits than before" if _ok(trend) and trend < 0 else None


def _social(row: Any) -> str | None:
    neg = _num(row, "negative_posts_180d")
    if _ok(neg) and neg > 0:
        return f"{int(neg)} negative post(s) on social media in 6 months"
    return None


def _nps(row: Any) -> str | None:
    score = _num(row, "last_nps")
    when = row.get("last_nps_at")
    if _ok(score) and score <= 6:
        at = f" on {_date(when)}" if when is not None and not pd.isna(when) else ""
        return f"detractor (NPS {int(score)}){at}"
    low = _num(row, "low_scores_365d")
    return f"{int(low)} low survey score(s) in 12 months" if _ok(low) and low > 0 else None


def _consent(row: Any) -> str | None:
    n = _num(row, "consents_withdrawn_180d")
    return f"withdrew {int(n)} consent(s) in 6 months" if _ok(n) and n > 0 else None


def _contract(row: Any) -> str | None:
    ended = _num(row, "contracts_ended_365d")
    if _ok(ended) and ended > 0:
        return f"ended {int(ended)} contract(s) in 12 months"
    tenure = _num(row, "contract_tenure_days")
    return f"subscriber for {int(tenure)} days" if _ok(tenure) else None


_SAY: dict[str, Callable[[Any], str | None]] = {
    "rhythm": _rhythm, "spend": _spend, "returns": _returns, "complaints": _complaints,
    "email": _email, "sms": _sms, "web": _web, "social": _social, "nps": _nps,
    "consent": _consent, "contract": _contract,
}


def family_contributions(contrib: pd.DataFrame) -> pd.DataFrame:
    """Sum of the contributions per family (columns = families present)."""
    cols = [c for c in contrib.columns if c in _FAMILY_OF]
    groups = pd.Series({c: _FAMILY_OF[c] for c in cols})
    return contrib[cols].T.groupby(groups).sum().T


def reasons(contrib: pd.DataFrame, values: pd.DataFrame, limit: int = 3) -> list[list[str]]:
    """The reasons of each row: phrases of the families that raise its risk most."""
    fam = family_contributions(contrib)
    names = np.asarray(fam.columns)
    matrix = fam.to_numpy(dtype=float)
    order = np.argsort(-matrix, axis=1)
    records = values.to_dict("records")
    out: list[list[str]] = []
    for i, row in enumerate(records):
        said: list[str] = []
        for j in order[i]:
            if matrix[i, j] <= 0 or len(said) >= limit:
                break
            phrase = _SAY[names[j]](row)
            if phrase:
                said.append(phrase)
        out.append(said)
    return out
