"""Per-customer defection reasons in a marketer's words, from LightGBM's contributions.

Features are grouped in families (purchase rhythm, spend, returns, complaints, e-mail, web,
social, NPS, consent, contract); a family's contribution is the sum of its features' TreeSHAP
(or, on large bases, path attribution: :mod:`._paths`) values. The families that raise the risk
most (positive contribution), at most ``limit``, are said with the customer's own figures:
"orders every 3 weeks until 12 May 2025, none since; 2 complaints in 30 days". The phrases are
built one family at a time over every row (array masks, each distinct date formatted once).
"""

from __future__ import annotations

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


class _Columns:
    """Columns of the rows being said, as float arrays (NaN when absent or not a number)."""

    def __init__(self, values: pd.DataFrame) -> None:
        self.values = values
        self.n = len(values)
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            if name in self.values:
                column = pd.to_numeric(self.values[name], errors="coerce")
                self._cache[name] = column.to_numpy(dtype=float, na_value=np.nan)
            else:
                self._cache[name] = np.full(self.n, np.nan)
        return self._cache[name]

    def dates(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(present, '12 May 2025' text) -- each distinct day is formatted once."""
        if name not in self.values:
            return np.zeros(self.n, dtype=bool), np.full(self.n, "", dtype=object)
        codes, uniques = pd.factorize(pd.to_datetime(self.values[name]))
        texts = np.array([*(_date(u) for u in uniques), ""], dtype=object)
        return codes >= 0, texts[codes]


def _ok(value: np.ndarray) -> np.ndarray:
    return ~np.isnan(value)


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


def _ints(values: np.ndarray) -> list[int]:
    return [int(v) for v in values.tolist()]


def _put(out: np.ndarray, where: np.ndarray, texts: list[str]) -> None:
    out[np.flatnonzero(where)] = np.array(texts, dtype=object) if texts else []


# Each phrase below is computed for the rows in ``m`` at once and returns one text or None per
# row: the same words as one call per row, but the tests run as array masks and only the rows
# that get a phrase are formatted.
def _rhythm(g: _Columns, m: np.ndarray, out: np.ndarray) -> None:
    n, since, gap = g("purchases"), g("days_since_last_purchase"), g("mean_gap_days")
    recent, before = g("purchases_90d"), g("purchases_prev_90d")
    has_last, last = g.dates("last_day")
    base = m & _ok(n) & _ok(since) & has_last
    multi = base & (n >= 2) & _ok(gap)
    fewer = multi & (recent < before) & (recent > 0)
    plain = multi & ~fewer
    _put(out, plain, [f"orders {every(d)} until {when}, none since"
                      for d, when in zip(gap[plain].tolist(), last[plain], strict=True)])
    _put(out, fewer, [f"{int(r)} order(s) in the last 90 days vs {int(b)} the 90 days before; "
                      f"orders {every(d)}"
                      for r, b, d in zip(recent[fewer].tolist(), before[fewer].tolist(),
                                         gap[fewer].tolist(), strict=True)])
    one = base & ~multi
    _put(out, one, [f"one purchase only, on {when} ({int(s)} days ago)"
                    for when, s in zip(last[one], since[one].tolist(), strict=True)])


def _spend(g: _Columns, m: np.ndarray, out: np.ndarray) -> None:
    now, before = g("spend_90d"), g("spend_prev_90d")
    w = m & (before > now)
    _put(out, w, [f"spent {a:,.0f} in the last 90 days vs {b:,.0f} the 90 days before"
                  for a, b in zip(now[w].tolist(), before[w].tolist(), strict=True)])


def _returns(g: _Columns, m: np.ndarray, out: np.ndarray) -> None:
    n = g("returns_365d")
    w = m & (n > 0)
    _put(out, w, [f"{k} return(s) in 12 months" for k in _ints(n[w])])


def _complaints(g: _Columns, m: np.ndarray, out: np.ndarray) -> None:
    c30, c90, s90 = g("complaints_30d"), g("complaints_90d"), g("service_contacts_90d")
    w30 = m & (c30 > 0)
    w90 = m & ~w30 & (c90 > 0)
    ws = m & ~w30 & ~w90 & (s90 > 0)
    _put(out, w30, [f"{k} complaint(s) in 30 days" for k in _ints(c30[w30])])
    _put(out, w90, [f"{k} complaint(s) in 90 days" for k in _ints(c90[w90])])
    _put(out, ws, [f"{k} service contact(s) in 90 days" for k in _ints(s90[ws])])


def _email(g: _Columns, m: np.ndarray, out: np.ndarray) -> None:
    now, before = g("email_open_rate_90d"), g("email_open_rate_prev")
    days, sent = g("days_since_email_open"), g("emails_sent_90d")
    unsub = m & (g("unsubscribes_365d") > 0)
    fewer = m & ~unsub & (before > now)
    idle = m & ~unsub & ~fewer & (days > 60)
    never = m & ~unsub & ~fewer & ~_ok(days) & (sent > 0)
    _put(out, unsub, ["unsubscribed from e-mails"] * int(unsub.sum()))
    _put(out, fewer, [f"opens fewer e-mails ({a:.0%} in 90 days vs {b:.0%} before)"
                      for a, b in zip(now[fewer].tolist(), before[fewer].tolist(), strict=True)])
    _put(out, idle, [f"no e-mail opened for {k} days" for k in _ints(days[idle])])
    _put(out, never, ["no e-mail opened in 12 months"] * int(never.sum()))


def _sms(g: _Columns, m: np.ndarray, out: np.ndarray) -> None:
    w = m & (g("sms_stops_365d") > 0)
    _put(out, w, ["answered STOP to text messages"] * int(w.sum()))


def _web(g: _Columns, m: np.ndarray, out: np.ndarray) -> None:
    v30, v90, trend = g("web_visits_30d"), g("web_visits_90d"), g("web_visit_trend")
    quiet = m & (v30 == 0) & (v90 > 0)
    fewer = m & ~quiet & (trend < 0)
    _put(out, quiet, ["no web visit in 30 days"] * int(quiet.sum()))
    _put(out, fewer, ["fewer web visits than before"] * int(fewer.sum()))


def _counted(column: str, phrase: str) -> Callable[[_Columns, np.ndarray, np.ndarray], None]:
    """A reason that says a positive count: ``phrase`` holds ``{}`` for the number."""
    def say(g: _Columns, m: np.ndarray, out: np.ndarray) -> None:
        n = g(column)
        w = m & (n > 0)
        _put(out, w, [phrase.format(k) for k in _ints(n[w])])
    return say


_social = _counted("negative_posts_180d", "{} negative post(s) on social media in 6 months")


def _nps(g: _Columns, m: np.ndarray, out: np.ndarray) -> None:
    score, low = g("last_nps"), g("low_scores_365d")
    has_when, when = g.dates("last_nps_at")
    detractor = m & (score <= 6)
    lows = m & ~detractor & (low > 0)
    _put(out, detractor, [f"detractor (NPS {k}){f' on {w}' if h else ''}"
                          for k, h, w in zip(_ints(score[detractor]), has_when[detractor],
                                             when[detractor], strict=True)])
    _put(out, lows, [f"{k} low survey score(s) in 12 months" for k in _ints(low[lows])])


_consent = _counted("consents_withdrawn_180d", "withdrew {} consent(s) in 6 months")


def _contract(g: _Columns, m: np.ndarray, out: np.ndarray) -> None:
    ended, tenure = g("contracts_ended_365d"), g("contract_tenure_days")
    w = m & (ended > 0)
    subscriber = m & ~w & _ok(tenure)
    _put(out, w, [f"ended {k} contract(s) in 12 months" for k in _ints(ended[w])])
    _put(out, subscriber, [f"subscriber for {k} days" for k in _ints(tenure[subscriber])])


_SAY: dict[str, Callable[[_Columns, np.ndarray, np.ndarray], None]] = {
    "rhythm": _rhythm, "spend": _spend, "returns": _returns, "complaints": _complaints,
    "email": _email, "sms": _sms, "web": _web, "social": _social, "nps": _nps,
    "consent": _consent, "contract": _contract,
}


def family_contributions(contrib: pd.DataFrame) -> pd.DataFrame:
    """Sum of the contributions per family (columns = families present, alphabetical); a frame
    whose columns are already families is returned as it is."""
    if set(contrib.columns) - {"_bias"} <= set(FAMILIES):
        return contrib[sorted(c for c in contrib.columns if c in FAMILIES)]
    cols = [c for c in contrib.columns if c in _FAMILY_OF]
    names = sorted({_FAMILY_OF[c] for c in cols})
    member = np.array([[_FAMILY_OF[c] == f for f in names] for c in cols], dtype=float)
    matrix = contrib[cols].to_numpy(dtype=float) @ member.reshape(len(cols), len(names))
    return pd.DataFrame(matrix, index=contrib.index, columns=names)


def reasons(contrib: pd.DataFrame, values: pd.DataFrame, limit: int = 3) -> list[list[str]]:
    """The reasons of each row: phrases of the families that raise its risk most.

    Families are taken by decreasing contribution while it is positive; one without a phrase
    for the row (nothing to say) is passed over; at most ``limit`` phrases. Phrases are built
    family by family over all rows at once (see the phrase functions).
    """
    fam = family_contributions(contrib)
    names = list(fam.columns)
    matrix = fam.to_numpy(dtype=float)
    n = len(matrix)
    columns = _Columns(values.reset_index(drop=True))
    phrases = np.full((n, len(names)), None, dtype=object)
    for j, name in enumerate(names):
        out = np.full(n, None, dtype=object)
        _SAY[name](columns, matrix[:, j] > 0, out)
        phrases[:, j] = out
    order = np.argsort(-matrix, axis=1)
    said = np.take_along_axis(phrases, order, axis=1)
    ok = np.take_along_axis(matrix > 0, order, axis=1) & pd.notna(said)
    keep = ok & (np.cumsum(ok, axis=1) <= limit)
    flat = said[keep].tolist()
    result: list[list[str]] = []
    at = 0
    for count in keep.sum(axis=1).tolist():
        result.append(flat[at:at + count])
        at += count
    return result
