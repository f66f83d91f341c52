"""Point-in-time defection features: one row per customer and cutoff, from every silo present.

Every feature of a row dated ``cutoff`` reads only rows with ``occurred_at < cutoff`` (contracts:
``started_at < cutoff``, and an ``ended_at`` only when it is before the cutoff), so stacking
several cutoffs gives a training set without leakage; a test adds and changes future rows and
checks that no feature moves. Set-based SQL over a ``cutoffs`` table joined by inequality: the
same statements run on DuckDB here and could run on Spark SQL (only standard aggregates with
``FILTER``, ``arg_max`` and window ``lag``). The per-post sentiment is the one row-wise step
(a lexicon, see :mod:`._sentiment`); the BTYD scores are fitted per cutoff on the recency-
frequency columns computed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from onetoone.differentiate.defection._sentiment import sentiment_scores
from onetoone.errors import ModelError
from onetoone.store import frame_view, has_table

COMPLAINT_TYPES = ("complaint", "claim", "reclamation")
SERVICE_TYPES = (*COMPLAINT_TYPES, "question", "delivery", "return", "call", "ticket", "request")
EMAIL_SENT = ("sent", "delivered")
OPEN_TYPES = ("open", "opened", "click", "clicked")
WEB_CHANNELS = ("web", "app")
RETURN_STATUSES = ("returned", "refunded", "return", "refund")

#: Silo -> the features it brings (a silo without rows for identified customers brings none).
SILO_FEATURES: dict[str, tuple[str, ...]] = {
    "transactions": (
        "tenure_days", "purchases", "days_since_last_purchase", "mean_gap_days",
        "last_gap_days", "gap_ratio", "rhythm_trend", "purchases_90d", "purchases_prev_90d",
        "purchase_trend", "spend_total", "spend_90d", "spend_prev_90d", "spend_trend",
        "mean_basket", "returns_365d", "return_share", "p_alive", "expected_purchases",
    ),
    "interactions": (
        "complaints_30d", "complaints_90d", "service_contacts_90d", "emails_sent_90d",
        "email_open_rate_90d", "email_open_rate_prev", "email_engagement_trend",
        "days_since_email_open", "unsubscribes_365d", "sms_clicks_90d", "sms_stops_365d",
        "web_visits_30d", "web_visits_90d", "web_visit_trend",
    ),
    "social_posts": ("social_posts_180d", "social_sentiment_180d", "negative_posts_180d"),
    "feedback": ("last_nps", "nps_detractor", "days_since_nps", "low_scores_365d"),
    "consents": ("consents_withdrawn_180d", "consents_withdrawn_total", "consents_active"),
    "contracts": ("contracts_active", "contract_tenure_days", "contracts_ended_365d",
                  "contract_amount"),
}


@dataclass
class FeatureFrame:
    """Features (indexed by customer_id, cutoff) and the silos they came from."""

    features: pd.DataFrame
    silos: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return [c for s in self.silos for c in SILO_FEATURES[s]]


def connection(store: Any) -> Any:
    """A DuckDB connection from a :class:`~onetoone.store.Store` or a connection itself."""
    return getattr(store, "con", store)


def present_silos(con: Any) -> list[str]:
    """Silos with at least one row of an identified customer (or a table that is missing)."""
    out = []
    for silo in SILO_FEATURES:
        if not has_table(con, silo):
            continue
        row = con.execute(
            f'SELECT 1 FROM "{silo}" WHERE customer_id IS NOT NULL LIMIT 1').fetchall()
        if row:
            out.append(silo)
    return out


def _cutoff_table(store: Any, cutoffs: Sequence[Any]) -> None:
    con = connection(store)
    stamps = pd.DataFrame({"cutoff": pd.to_datetime(list(cutoffs)).normalize()})
    with frame_view(con, "_dfx_cut_df", stamps):
        con.execute("CREATE OR REPLACE TEMP TABLE _dfx_cut AS "
                    "SELECT DISTINCT cutoff::TIMESTAMP AS cutoff FROM _dfx_cut_df")


def occasions_sql(exclude_statuses: Sequence[str]) -> str:
    """Purchase occasions (one per customer and day, net amount), as in the BTYD summaries."""
    marks = ", ".join(f"'{s.lower()}'" for s in exclude_statuses) or "''"
    returns = ", ".join(f"'{s}'" for s in RETURN_STATUSES)
    return f"""
        CREATE OR REPLACE TEMP TABLE _dfx_occ AS
        WITH d AS (
          SELECT customer_id, date_trunc('day', occurred_at) AS day,
                 sum(amount)::DOUBLE AS amount, bool_or(amount < 0) AS negative,
                 count(*) FILTER (WHERE amount < 0 OR lower(status) IN ({returns})) AS returns
          FROM transactions
          WHERE customer_id IS NOT NULL AND occurred_at IS NOT NULL AND amount IS NOT NULL
            AND (status IS NULL OR lower(status) NOT IN ({marks}))
          GROUP BY ALL
        ), k AS (
          SELECT *, (amount > 0 OR (amount = 0 AND NOT negative)) AS kept FROM d
        )
        SELECT *, CASE WHEN kept THEN lag(day) OVER (
                    PARTITION BY customer_id, kept ORDER BY day) END AS prev_day
        FROM k
    """


_TX = """
    SELECT o.customer_id, c.cutoff,
      count(*) FILTER (WHERE o.kept) AS purchases,
      min(o.day) FILTER (WHERE o.kept) AS first_day,
      max(o.day) FILTER (WHERE o.kept) AS last_day,
      arg_max(date_diff('day', o.prev_day, o.day), o.day) FILTER (WHERE o.kept)
        AS last_gap_days,
      count(*) FILTER (WHERE o.kept AND o.day >= c.cutoff - INTERVAL 90 DAY) AS purchases_90d,
      count(*) FILTER (WHERE o.kept AND o.day >= c.cutoff - INTERVAL 180 DAY
                       AND o.day < c.cutoff - INTERVAL 90 DAY) AS purchases_prev_90d,
      coalesce(sum(o.amount) FILTER (WHERE o.kept), 0) AS spend_total,
      coalesce(sum(o.amount) FILTER (WHERE o.kept AND o.day >= c.cutoff - INTERVAL 90 DAY), 0)
        AS spend_90d,
      coalesce(sum(o.amount) FILTER (WHERE o.kept AND o.day >= c.cutoff - INTERVAL 180 DAY
                                     AND o.day < c.cutoff - INTERVAL 90 DAY), 0)
        AS spend_prev_90d,
      coalesce(sum(o.returns) FILTER (WHERE o.day >= c.cutoff - INTERVAL 365 DAY), 0)
        AS returns_365d,
      coalesce(sum(o.returns), 0) AS returns_total,
      count(*) AS days_with_transactions
    FROM _dfx_occ o JOIN _dfx_cut c ON o.day < c.cutoff
    GROUP BY ALL
"""


def _in(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


_INTERACTIONS = f"""
    SELECT e.customer_id, c.cutoff,
      count(*) FILTER (WHERE e.type IN ({_in(COMPLAINT_TYPES)})
                       AND e.occurred_at >= c.cutoff - INTERVAL 30 DAY) AS complaints_30d,
      count(*) FILTER (WHERE e.type IN ({_in(COMPLAINT_TYPES)})
                       AND e.occurred_at >= c.cutoff - INTERVAL 90 DAY) AS complaints_90d,
      count(*) FILTER (WHERE e.type IN ({_in(SERVICE_TYPES)})
                       AND e.occurred_at >= c.cutoff - INTERVAL 90 DAY) AS service_contacts_90d,
      count(*) FILTER (WHERE e.channel = 'email' AND e.type IN ({_in(EMAIL_SENT)})
                       AND e.occurred_at >= c.cutoff - INTERVAL 90 DAY) AS emails_sent_90d,
      count(*) FILTER (WHERE e.channel = 'email' AND e.type IN ({_in(OPEN_TYPES)})
                       AND e.occurred_at >= c.cutoff - INTERVAL 90 DAY) AS email_opens_90d,
      count(*) FILTER (WHERE e.channel = 'email' AND e.type IN ({_in(EMAIL_SENT)})
                       AND e.occurred_at < c.cutoff - INTERVAL 90 DAY) AS emails_sent_prev,
      count(*) FILTER (WHERE e.channel = 'email' AND e.type IN ({_in(OPEN_TYPES)})
                       AND e.occurred_at < c.cutoff - INTERVAL 90 DAY) AS email_opens_prev,
      max(e.occurred_at) FILTER (WHERE e.channel = 'email' AND e.type IN ({_in(OPEN_TYPES)}))
        AS last_open,
      count(*) FILTER (WHERE e.type IN ('unsubscribe', 'unsubscribed', 'stop', 'optout'))
        AS unsubscribes_365d,
      count(*) FILTER (WHERE e.channel = 'sms' AND e.type IN ('click', 'clicked')
                       AND e.occurred_at >= c.cutoff - INTERVAL 90 DAY) AS sms_clicks_90d,
      count(*) FILTER (WHERE e.channel = 'sms' AND e.type IN ('stop', 'optout'))
        AS sms_stops_365d,
      count(*) FILTER (WHERE e.channel IN ({_in(WEB_CHANNELS)})
                       AND e.occurred_at >= c.cutoff - INTERVAL 30 DAY) AS web_visits_30d,
      count(*) FILTER (WHERE e.channel IN ({_in(WEB_CHANNELS)})
                       AND e.occurred_at >= c.cutoff - INTERVAL 90 DAY) AS web_visits_90d,
      count(*) FILTER (WHERE e.channel IN ({_in(WEB_CHANNELS)})
                       AND e.occurred_at >= c.cutoff - INTERVAL 180 DAY
                       AND e.occurred_at < c.cutoff - INTERVAL 90 DAY) AS web_visits_prev_90d
    FROM interactions e JOIN _dfx_cut c
      ON e.occurred_at < c.cutoff AND e.occurred_at >= c.cutoff - INTERVAL 365 DAY
    WHERE e.customer_id IS NOT NULL
    GROUP BY ALL
"""

_SOCIAL = """
    SELECT s.customer_id, c.cutoff, count(*) AS social_posts_180d,
      avg(s.sentiment) AS social_sentiment_180d,
      count(*) FILTER (WHERE s.sentiment < 0) AS negative_posts_180d
    FROM _dfx_posts s JOIN _dfx_cut c
      ON s.occurred_at < c.cutoff AND s.occurred_at >= c.cutoff - INTERVAL 180 DAY
    GROUP BY ALL
"""

_FEEDBACK = """
    SELECT f.customer_id, c.cutoff,
      arg_max(f.score, f.occurred_at) FILTER (WHERE f.kind = 'nps' AND f.score IS NOT NULL)
        AS last_nps,
      max(f.occurred_at) FILTER (WHERE f.kind = 'nps' AND f.score IS NOT NULL) AS last_nps_at,
      count(*) FILTER (WHERE f.occurred_at >= c.cutoff - INTERVAL 365 DAY
                       AND ((f.kind = 'nps' AND f.score <= 6)
                            OR (f.kind <> 'nps' AND f.score <= 2))) AS low_scores_365d
    FROM feedback f JOIN _dfx_cut c ON f.occurred_at < c.cutoff
    WHERE f.customer_id IS NOT NULL
    GROUP BY ALL
"""

_CONSENTS = """
    WITH latest AS (
      SELECT k.customer_id, c.cutoff, k.channel, coalesce(k.purpose, 'marketing') AS purpose,
             arg_max(k.granted, k.occurred_at) AS granted,
             count(*) FILTER (WHERE NOT k.granted
                              AND k.occurred_at >= c.cutoff - INTERVAL 180 DAY) AS w180,
             count(*) FILTER (WHERE NOT k.granted) AS wall
      FROM consents k JOIN _dfx_cut c ON k.occurred_at < c.cutoff
      WHERE k.customer_id IS NOT NULL
      GROUP BY ALL
    )
    SELECT customer_id, cutoff, sum(w180) AS consents_withdrawn_180d,
           sum(wall) AS consents_withdrawn_total,
           count(*) FILTER (WHERE granted) AS consents_active
    FROM latest GROUP BY ALL
"""

_CONTRACTS = """
    SELECT k.customer_id, c.cutoff,
      count(*) FILTER (WHERE k.ended_at IS NULL OR k.ended_at >= c.cutoff) AS contracts_active,
      max(date_diff('day', k.started_at, c.cutoff)) AS contract_tenure_days,
      count(*) FILTER (WHERE k.ended_at < c.cutoff
                       AND k.ended_at >= c.cutoff - INTERVAL 365 DAY) AS contracts_ended_365d,
      coalesce(sum(k.amount::DOUBLE) FILTER (WHERE k.ended_at IS NULL OR k.ended_at >= c.cutoff),
               0) AS contract_amount
    FROM contracts k JOIN _dfx_cut c ON k.started_at < c.cutoff
    WHERE k.customer_id IS NOT NULL
    GROUP BY ALL
"""


def compute_features(
    store: Any,
    cutoffs: Sequence[Any],
    *,
    exclude_statuses: Sequence[str] = ("cancelled", "canceled"),
    horizon_days: float = 90.0,
    population: str = "purchase",
    sentiment_words: dict[str, float] | None = None,
    occasions_built: bool = False,
) -> FeatureFrame:
    """Features of every customer at every cutoff (population: buyers, or contract holders).

    ``population = "purchase"``: customers with a purchase occasion before the cutoff;
    ``"contract"``: customers with a contract active at the cutoff. ``horizon_days`` is the
    period over which BTYD expected purchases are computed. ``occasions_built``: the
    ``_dfx_occ`` table of :func:`occasions_sql` is already built on this connection (by
    :func:`~._training.build_training_set`) and is read as it is.
    """
    con = connection(store)
    silos = present_silos(con)
    notes: list[str] = []
    if "transactions" not in silos and population == "purchase":
        raise ModelError("There is no transaction of an identified customer: defection from "
                         "purchases cannot be modelled.",
                         hint="Ingest transactions and run 'onetoone identify'.")
    if "contracts" not in silos and population == "contract":
        raise ModelError("There is no contract of an identified customer.",
                         hint="Ingest contracts or set [defection] kind = \"purchase\".")
    absent = [s for s in SILO_FEATURES if s not in silos]
    if absent:
        notes.append(f"Silos without identified rows, features skipped: {', '.join(absent)}.")
    _cutoff_table(store, cutoffs)
    if "transactions" in silos and not occasions_built:
        con.execute(occasions_sql(exclude_statuses))
    if population == "purchase":
        base_sql = ("SELECT DISTINCT o.customer_id, c.cutoff FROM _dfx_occ o "
                    "JOIN _dfx_cut c ON o.day < c.cutoff WHERE o.kept")
    else:
        base_sql = ("SELECT DISTINCT k.customer_id, c.cutoff FROM contracts k JOIN _dfx_cut c "
                    "ON k.started_at < c.cutoff AND (k.ended_at IS NULL OR k.ended_at >= c.cutoff)"
                    " WHERE k.customer_id IS NOT NULL")
    parts = {"transactions": _TX, "interactions": _INTERACTIONS, "social_posts": _SOCIAL,
             "feedback": _FEEDBACK, "consents": _CONSENTS, "contracts": _CONTRACTS}
    if "social_posts" in silos:
        posts = con.execute("SELECT customer_id, occurred_at, text FROM social_posts "
                            "WHERE customer_id IS NOT NULL AND occurred_at IS NOT NULL").df()
        posts["sentiment"] = sentiment_scores(posts["text"], sentiment_words)
        with frame_view(con, "_dfx_posts_df",
                        posts[["customer_id", "occurred_at", "sentiment"]]):
            con.execute("CREATE OR REPLACE TEMP TABLE _dfx_posts AS SELECT * FROM _dfx_posts_df")
    joins = "\n".join(
        f"LEFT JOIN ({parts[s]}) AS {s} USING (customer_id, cutoff)" for s in silos
    )
    frame = con.execute(f"SELECT * FROM ({base_sql}) AS base {joins}").df()
    out = _derive(frame, silos, population)
    if "transactions" in silos:
        _btyd(out, horizon_days)
    out = out.set_index(["customer_id", "cutoff"]).sort_index()
    columns = [c for s in silos for c in SILO_FEATURES[s]]
    return FeatureFrame(out[[*columns, *_KEEP]], silos, notes)


#: Columns kept next to the features for the reasons (dates) but not fed to the model.
_KEEP = ("last_day", "last_nps_at")


def _days(a: pd.Series, b: pd.Series) -> pd.Series:
    return (pd.to_datetime(a) - pd.to_datetime(b)).dt.total_seconds() / 86400.0


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    den = den.astype(float)
    return (num.astype(float) / den.where(den > 0)).astype(float)


def _derive(f: pd.DataFrame, silos: list[str], population: str) -> pd.DataFrame:
    """Ratios, trends and day counts from the aggregated columns (row-wise, no look-ahead)."""
    f = f.copy()
    f["cutoff"] = pd.to_datetime(f["cutoff"])
    for col in ("last_day", "last_nps_at"):
        if col not in f:
            f[col] = pd.NaT
    if "transactions" in silos:
        counts = ["purchases", "purchases_90d", "purchases_prev_90d", "returns_365d",
                  "returns_total", "spend_total", "spend_90d", "spend_prev_90d"]
        f[counts] = f[counts].fillna(0).astype(float)
        f["tenure_days"] = _days(f["cutoff"], f["first_day"])
        f["days_since_last_purchase"] = _days(f["cutoff"], f["last_day"])
        span = _days(f["last_day"], f["first_day"])
        f["mean_gap_days"] = _ratio(span, f["purchases"] - 1)
        f["last_gap_days"] = f["last_gap_days"].astype(float)
        f["gap_ratio"] = _ratio(f["days_since_last_purchase"], f["mean_gap_days"])
        f["rhythm_trend"] = _ratio(f["last_gap_days"], f["mean_gap_days"])
        f["purchase_trend"] = f["purchases_90d"] - f["purchases_prev_90d"]
        f["spend_trend"] = _ratio(f["spend_90d"] - f["spend_prev_90d"],
                                  f["spend_90d"] + f["spend_prev_90d"])
        f["mean_basket"] = _ratio(f["spend_total"], f["purchases"])
        f["return_share"] = _ratio(f["returns_total"], f["days_with_transactions"])
        if population == "contract":  # contract holders without a purchase: tenure unknown
            f["tenure_days"] = f["tenure_days"].astype(float)
    if "interactions" in silos:
        counts = ["complaints_30d", "complaints_90d", "service_contacts_90d", "emails_sent_90d",
                  "unsubscribes_365d", "sms_clicks_90d", "sms_stops_365d", "web_visits_30d",
                  "web_visits_90d", "web_visits_prev_90d", "email_opens_90d", "emails_sent_prev",
                  "email_opens_prev"]
        f[counts] = f[counts].fillna(0).astype(float)
        f["email_open_rate_90d"] = _ratio(f["email_opens_90d"], f["emails_sent_90d"]).clip(0, 1)
        f["email_open_rate_prev"] = _ratio(f["email_opens_prev"], f["emails_sent_prev"]).clip(0, 1)
        f["email_engagement_trend"] = f["email_open_rate_90d"] - f["email_open_rate_prev"]
        f["days_since_email_open"] = _days(f["cutoff"], f["last_open"])
        f["web_visit_trend"] = f["web_visits_90d"] - f["web_visits_prev_90d"]
    if "social_posts" in silos:
        for col in ("social_posts_180d", "negative_posts_180d"):
            f[col] = f[col].fillna(0).astype(float)
        f["social_sentiment_180d"] = f["social_sentiment_180d"].astype(float)
    if "feedback" in silos:
        f["last_nps"] = f["last_nps"].astype(float)
        f["nps_detractor"] = (f["last_nps"] <= 6).astype(float).where(f["last_nps"].notna())
        f["days_since_nps"] = _days(f["cutoff"], f["last_nps_at"])
        f["low_scores_365d"] = f["low_scores_365d"].fillna(0).astype(float)
    if "consents" in silos:
        for col in ("consents_withdrawn_180d", "consents_withdrawn_total", "consents_active"):
            f[col] = f[col].fillna(0).astype(float)
    if "contracts" in silos:
        for col in ("contracts_active", "contracts_ended_365d", "contract_amount"):
            f[col] = f[col].fillna(0).astype(float)
        f["contract_tenure_days"] = f["contract_tenure_days"].astype(float)
    return f


def _btyd(f: pd.DataFrame, horizon_days: float) -> None:
    """P(alive) and expected purchases over the horizon, BG/NBD fitted per cutoff (in weeks).

    Each cutoff's fit reads only that cutoff's recency-frequency columns, so the scores stay
    point-in-time. A cutoff where BG/NBD cannot be fitted gets empty values (the gradient
    boosting handles them), never a guess.
    """
    from onetoone.differentiate.btyd import BGNBD

    f["p_alive"] = np.nan
    f["expected_purchases"] = np.nan
    for _cutoff, rows in f.groupby("cutoff").groups.items():
        part = f.loc[rows]
        buyers = part["purchases"] > 0
        x = (part.loc[buyers, "purchases"] - 1).to_numpy(float)
        t_x = (_days(part.loc[buyers, "last_day"], part.loc[buyers, "first_day"])
               .to_numpy(float) / 7.0)
        big_t = part.loc[buyers, "tenure_days"].to_numpy(float) / 7.0
        if len(x) < 30 or (x > 0).sum() < 10 or big_t.max() <= 0:
            continue
        try:
            model = BGNBD().fit(x, t_x, big_t)
            idx = part.index[buyers]
            f.loc[idx, "p_alive"] = np.asarray(model.p_alive(x, t_x, big_t), float)
            f.loc[idx, "expected_purchases"] = np.asarray(
                model.expected_purchases(horizon_days / 7.0, x, t_x, big_t), float)
        except (ModelError, ValueError, FloatingPointError):
            continue
