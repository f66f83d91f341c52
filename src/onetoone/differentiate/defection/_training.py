"""Defection definitions, horizons, cutoffs and stacked point-in-time training sets.

* **Non-contractual** (``kind = "purchase"``): a customer who bought before the cutoff has
  defected when no purchase occasion follows within the horizon. The horizon comes from the
  data: the ``horizon_percentile`` of the gaps between consecutive purchase occasions (90 %:
  nine customers in ten who do come back come back sooner), clipped to
  [``min_horizon_days``, ``max_horizon_days``], unless ``horizon_days`` fixes it.
* **Contractual** (``kind = "contract"``): a customer with a contract active at the cutoff has
  defected when every contract active then has ended (cancellation) within the horizon and no
  contract is active at its end.

Training cutoffs end ``horizon`` before the scoring cutoff, so labels are observed before the
scoring date, and go back by ``cutoff_step_days``; each cutoff's features read only rows before
it (see :mod:`._features`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from onetoone.differentiate.defection._features import (
    FeatureFrame,
    compute_features,
    connection,
    occasions_sql,
)
from onetoone.errors import ModelError
from onetoone.store import frame_view


class DefectionError(ModelError):
    """Defection cannot be modelled as asked (too little history, one class, no data)."""

    http_status = 422


class InsufficientHistoryError(DefectionError):
    """The history is too short for the horizon: no cutoff has both a past and a future."""


class SingleClassError(DefectionError):
    """The labels hold one class only: nobody (or everybody) defected."""


@dataclass
class TrainingSet:
    """Stacked features (index customer_id, cutoff), labels and how they were defined."""

    X: pd.DataFrame
    y: pd.Series
    kind: str
    horizon_days: int
    cutoffs: list[pd.Timestamp]
    features: list[str]
    context: pd.DataFrame  # non-model columns kept for reasons (last purchase day...)
    notes: list[str] = field(default_factory=list)


def resolve_kind(store: Any, kind: str = "auto") -> str:
    """``purchase`` or ``contract``; ``auto`` = contract when identified contracts exist."""
    if kind != "auto":
        return kind
    con = connection(store)
    row = con.execute("SELECT count(*) FROM contracts WHERE customer_id IS NOT NULL").fetchall()[0]
    return "contract" if row and row[0] else "purchase"


def data_end(store: Any, kind: str) -> pd.Timestamp:
    """The day after the last dated row of the defining silo (the first day not observed)."""
    con = connection(store)
    if kind == "contract":
        sql = ("SELECT greatest(max(started_at), max(ended_at)) FROM contracts "
               "WHERE customer_id IS NOT NULL")
    else:
        sql = "SELECT max(occurred_at) FROM transactions WHERE customer_id IS NOT NULL"
    value = con.execute(sql).fetchall()[0][0]
    if value is None:
        raise DefectionError(f"No dated {'contract' if kind == 'contract' else 'purchase'} of an "
                             "identified customer.",
                             hint="Ingest transactions (or contracts), then run identify.")
    return pd.Timestamp(value).normalize() + pd.Timedelta(days=1)


def data_start(store: Any, kind: str) -> pd.Timestamp:
    con = connection(store)
    table, col = ("contracts", "started_at") if kind == "contract" else ("transactions",
                                                                         "occurred_at")
    value = con.execute(f"SELECT min({col}) FROM {table} WHERE customer_id IS NOT NULL"
                        ).fetchall()[0][0]
    return pd.Timestamp(value).normalize()


def purchase_horizon(store: Any, settings: Any, before: Any = None, *,
                     occasions_built: bool = False) -> int:
    """Horizon in days from the gaps between purchase occasions (dated before ``before``).

    ``occasions_built``: the ``_dfx_occ`` table of :func:`~._features.occasions_sql` is already
    built on this connection (by :func:`build_training_set`) and is read as it is; this and the
    functions below build it themselves by default.
    """
    if settings.horizon_days:
        return int(settings.horizon_days)
    con = connection(store)
    if not occasions_built:
        con.execute(occasions_sql(settings.exclude_statuses))
    where = "" if before is None else "AND day < ?"
    params = [] if before is None else [pd.Timestamp(before).to_pydatetime()]
    row = con.execute(
        f"SELECT quantile_cont(date_diff('day', prev_day, day), ?), count(*) FROM _dfx_occ "
        f"WHERE kept AND prev_day IS NOT NULL {where}",
        [settings.horizon_percentile, *params],
    ).fetchall()[0]
    gap, n = row if row else (None, 0)
    if gap is None or n < 10:
        return int(settings.max_horizon_days if settings.max_horizon_days < 180 else 90)
    return int(np.clip(round(float(gap)), settings.min_horizon_days, settings.max_horizon_days))


def training_cutoffs(first: pd.Timestamp, score_cutoff: pd.Timestamp, horizon: int,
                     settings: Any, population: int | None = None) -> list[pd.Timestamp]:
    """Training cutoffs, oldest first: the last one a horizon before ``score_cutoff``.

    ``cutoffs`` cutoffs every ``cutoff_step_days`` (default half the horizon, at least 14)
    when ``population`` (customers at the latest cutoff) times ``cutoffs`` reaches
    ``min_training_rows``; a smaller base gets denser cutoffs (every horizon / 8 days, at least
    7) up to ``max_cutoffs``, as many as that many rows need.
    """
    count = int(settings.cutoffs)
    step = int(settings.cutoff_step_days or max(14, horizon // 2))
    wanted = int(getattr(settings, "min_training_rows", 0) or 0)
    if population and population * count < wanted:
        count = int(np.clip(-(-wanted // population), count, max(count, settings.max_cutoffs)))
        step = int(settings.cutoff_step_days or max(7, horizon // 8))
    latest = score_cutoff - pd.Timedelta(days=horizon)
    earliest = first + pd.Timedelta(days=max(settings.min_history_days, 1))
    if latest < earliest:
        raise InsufficientHistoryError(
            f"The history ({first.date()} to {(score_cutoff - pd.Timedelta(days=1)).date()}) is "
            f"too short for a {horizon}-day defection horizon after "
            f"{settings.min_history_days} days of history.",
            hint="Set a shorter [defection] horizon_days or min_history_days, or score later.",
        )
    cuts = [latest - pd.Timedelta(days=step * i) for i in range(count)]
    return sorted(c for c in cuts if c >= earliest)


def population_size(store: Any, kind: str, cutoff: pd.Timestamp, exclude_statuses: Any, *,
                    occasions_built: bool = False) -> int:
    """Customers in the population at ``cutoff`` (buyers before it, or contract holders)."""
    con = connection(store)
    if kind == "contract":
        sql = ("SELECT count(DISTINCT customer_id) FROM contracts WHERE customer_id IS NOT NULL "
               "AND started_at < ? AND (ended_at IS NULL OR ended_at >= ?)")
        params = [cutoff.to_pydatetime()] * 2
    else:
        if not occasions_built:
            con.execute(occasions_sql(exclude_statuses))
        sql = "SELECT count(DISTINCT customer_id) FROM _dfx_occ WHERE kept AND day < ?"
        params = [cutoff.to_pydatetime()]
    return int(con.execute(sql, params).fetchall()[0][0])


def labels(store: Any, kind: str, cutoffs: list[pd.Timestamp], horizon: int,
           exclude_statuses: Any, *, occasions_built: bool = False) -> pd.Series:
    """1 = defected within ``horizon`` days after the cutoff, for the population at each cutoff."""
    con = connection(store)
    if kind == "contract":
        sql = f"""
            WITH active AS (
              SELECT DISTINCT k.customer_id, c.cutoff FROM contracts k JOIN _dfx_lab_cut c
                ON k.started_at < c.cutoff AND (k.ended_at IS NULL OR k.ended_at >= c.cutoff)
              WHERE k.customer_id IS NOT NULL
            ), later AS (
              SELECT DISTINCT k.customer_id, c.cutoff FROM contracts k JOIN _dfx_lab_cut c
                ON k.started_at < c.cutoff + INTERVAL {horizon} DAY
               AND (k.ended_at IS NULL OR k.ended_at >= c.cutoff + INTERVAL {horizon} DAY)
              WHERE k.customer_id IS NOT NULL
            )
            SELECT a.customer_id, a.cutoff, (l.customer_id IS NULL)::INTEGER AS defected
            FROM active a LEFT JOIN later l USING (customer_id, cutoff)
        """
    else:
        if not occasions_built:
            con.execute(occasions_sql(exclude_statuses))
        sql = f"""
            WITH pop AS (
              SELECT DISTINCT o.customer_id, c.cutoff FROM _dfx_occ o JOIN _dfx_lab_cut c
                ON o.day < c.cutoff WHERE o.kept
            ), back AS (
              SELECT DISTINCT o.customer_id, c.cutoff FROM _dfx_occ o JOIN _dfx_lab_cut c
                ON o.day >= c.cutoff AND o.day < c.cutoff + INTERVAL {horizon} DAY WHERE o.kept
            )
            SELECT p.customer_id, p.cutoff, (b.customer_id IS NULL)::INTEGER AS defected
            FROM pop p LEFT JOIN back b USING (customer_id, cutoff)
        """
    with frame_view(con, "_dfx_lab_cut", pd.DataFrame({"cutoff": cutoffs})):
        frame = con.execute(sql).df()
    frame["cutoff"] = pd.to_datetime(frame["cutoff"])
    return frame.set_index(["customer_id", "cutoff"])["defected"].sort_index()


def build_training_set(store: Any, settings: Any, score_cutoff: Any = None) -> TrainingSet:
    """Features at several cutoffs stacked with their labels (see the module docstring).

    ``score_cutoff``: the first day not usable (default: the day after the last row). Every
    feature and every label reads only rows dated before it. The purchase occasions
    (``_dfx_occ``) are built once here and read by the horizon, the population, the features
    and the labels.
    """
    kind = resolve_kind(store, settings.kind)
    end = data_end(store, kind)
    cut = end if score_cutoff is None else min(pd.Timestamp(score_cutoff).normalize(), end)
    first = data_start(store, kind)
    if cut <= first:
        raise InsufficientHistoryError(
            f"Nothing is dated before {cut.date()} (the history starts {first.date()}).",
            hint="Score at a later date.")
    connection(store).execute(occasions_sql(settings.exclude_statuses))
    horizon = (purchase_horizon(store, settings, before=cut, occasions_built=True)
               if kind == "purchase" else int(settings.horizon_days or 90))
    cutoffs = training_cutoffs(first, cut, horizon, settings,
                               population_size(store, kind, cut - pd.Timedelta(days=horizon),
                                               settings.exclude_statuses, occasions_built=True))
    feats = feature_frame(store, cutoffs, settings, horizon, kind, occasions_built=True)
    y = labels(store, kind, cutoffs, horizon, settings.exclude_statuses, occasions_built=True)
    y = y.reindex(feats.features.index).fillna(0).astype(int)
    notes = list(feats.notes)
    if len(cutoffs) < settings.cutoffs:
        notes.append(f"Only {len(cutoffs)} training cutoff(s) fit in the history "
                     f"({settings.cutoffs} asked).")
    cols = feats.columns
    return TrainingSet(X=feats.features[cols], y=y, kind=kind, horizon_days=horizon,
                       cutoffs=cutoffs, features=cols,
                       context=feats.features.drop(columns=cols), notes=notes)


def feature_frame(store: Any, cutoffs: list[pd.Timestamp], settings: Any, horizon: int,
                  kind: str, *, occasions_built: bool = False) -> FeatureFrame:
    return compute_features(store, cutoffs, exclude_statuses=settings.exclude_statuses,
                            horizon_days=horizon, population=kind,
                            sentiment_words=settings.sentiment_words,
                            occasions_built=occasions_built)
