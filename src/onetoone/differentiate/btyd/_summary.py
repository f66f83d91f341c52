"""Transactions to the recency-frequency summaries that the buy-till-you-die models read.

The conventions are the papers' (Fader, Hardie & Lee 2005, "Counting your customers the easy
way", section 3; the CDNOW summaries published on B. Hardie's site):

* one purchase *occasion* per customer and calendar day: purchases made the same day are merged;
* ``frequency`` (x) = number of repeat occasions, i.e. occasions after the first one;
* ``recency`` (t_x) = time from the first to the last occasion; ``T`` = time from the first
  occasion to the end of the (calibration) period; so ``0 <= recency <= T`` and a customer
  acquired on the last day has ``T = 0``;
* ``monetary_value`` = mean net amount of the *repeat* occasions (0 when ``frequency == 0``), the
  input of the Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV").

Returns and cancellations (negative amounts) are netted against the purchases of their own
customer and day; a day whose net amount is negative, or zero because of a return, is not a
purchase occasion (a day with only zero-amount lines, a free order, is one). A return made on a
later day cannot be matched to its purchase and is dropped with its day. Customers left
without any occasion are not in the result; the counts of everything left out are in
``result.attrs["excluded"]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from onetoone.errors import ModelError

_UNIT_DAYS: dict[str, float] = {"D": 1.0, "W": 7.0, "M": 365.25 / 12.0}
_UNIT_ALIASES: dict[str, str] = {
    "d": "D",
    "day": "D",
    "days": "D",
    "w": "W",
    "week": "W",
    "weeks": "W",
    "m": "M",
    "month": "M",
    "months": "M",
}


def unit_days(time_unit: str) -> float:
    """Length in days of ``time_unit`` ("D"/"day", "W"/"week", "M"/"month" = 365.25/12 days)."""
    key = _UNIT_ALIASES.get(str(time_unit).lower())
    if key is None:
        raise ModelError(
            f"Unknown time unit {time_unit!r}.", hint="Use 'D' (days), 'W' (weeks) or 'M' (months)."
        )
    return _UNIT_DAYS[key]


def _to_day(value: Any, name: str, tz: Any) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ModelError(
            f"{name} {value!r} is not a date.", hint="Pass a date, e.g. '1997-09-30'."
        ) from exc
    if tz is not None and ts.tzinfo is None:
        ts = ts.tz_localize(tz)
    return ts.normalize()


def summary_from_transactions(
    transactions: pd.DataFrame,
    customer_id_col: str,
    datetime_col: str,
    monetary_value_col: str | None = None,
    observation_period_end: Any = None,
    calibration_period_end: Any = None,
    time_unit: str = "W",
    datetime_format: str | None = None,
) -> pd.DataFrame:
    """Summarise a transaction log into one row per customer (see the module docstring).

    Parameters
    ----------
    transactions:
        One row per transaction (or line), with a customer id and a date or datetime column.
    monetary_value_col:
        Net amount of the transaction; when given, same-day amounts are summed, days netting to
        < 0 (or to 0 through a return) are not purchase occasions and ``monetary_value`` columns
        are returned.
    observation_period_end:
        Last day observed (inclusive); defaults to the last transaction day. Transactions dated
        after it raise a :class:`~onetoone.errors.ModelError` (never silently dropped).
    calibration_period_end:
        When given, ``frequency``/``recency``/``T``/``monetary_value`` describe the calibration
        period (up to this day, inclusive) and ``frequency_holdout``, ``monetary_value_holdout``
        and ``duration_holdout`` the days after it up to ``observation_period_end``. Customers
        whose first occasion is after it are excluded (counted in ``attrs["excluded"]``).
    time_unit:
        "D", "W" (7 days) or "M" (365.25/12 days): the unit of recency, T and durations.

    Returns
    -------
    pandas.DataFrame indexed by customer id, sorted.
    """
    days_per_unit = unit_days(time_unit)
    frame, day = _transaction_days(transactions, customer_id_col, datetime_col,
                                   monetary_value_col, datetime_format)
    tz = day.dt.tz
    obs_end = (
        day.max()
        if observation_period_end is None
        else _to_day(observation_period_end, "observation_period_end", tz)
    )
    late = int((frame["day"] > obs_end).sum())
    if late:
        raise ModelError(
            f"{late} transactions are dated after observation_period_end {obs_end.date()}.",
            hint="Filter them out or move observation_period_end to the last day observed.",
        )

    occasions, dropped_days = _occasions(frame, monetary_value_col is not None)
    n_customers_in = int(frame["customer"].nunique())
    cal_end = (obs_end if calibration_period_end is None else
               _calibration_end(calibration_period_end, obs_end, occasions, tz))
    cal = occasions[occasions["day"] <= cal_end]
    grouped = cal.groupby("customer", sort=True)
    first = grouped["day"].min()
    last = grouped["day"].max()
    count = grouped["day"].size()
    total = grouped["amount"].sum()
    first_amount = cal.drop_duplicates("customer").set_index("customer")["amount"]
    first_amount = first_amount.reindex(first.index)
    frequency = (count - 1).astype(np.int64)
    out = pd.DataFrame(
        {
            "frequency": frequency,
            "recency": (last - first).dt.days.astype(float) / days_per_unit,
            "T": (cal_end - first).dt.days.astype(float) / days_per_unit,
        }
    )
    if monetary_value_col is not None:
        repeat_total = (total - first_amount).to_numpy()
        n = frequency.to_numpy()
        out["monetary_value"] = np.divide(
            repeat_total, n, out=np.zeros(len(n), dtype=float), where=n > 0
        )
    excluded = {
        "non_positive_days": dropped_days,
        "customers_without_occasion": n_customers_in - int(occasions["customer"].nunique()),
        "customers_first_purchase_after_calibration": 0,
    }
    if calibration_period_end is not None:
        hold = occasions[occasions["day"] > cal_end]
        # pandas' isin hashes; np.setdiff1d on object ids compares them pairwise (quadratic)
        in_cal = hold["customer"].isin(out.index)
        excluded["customers_first_purchase_after_calibration"] = int(
            hold.loc[~in_cal, "customer"].nunique()
        )
        hold = hold[in_cal]
        h = hold.groupby("customer")["amount"].agg(["size", "mean"])
        out["frequency_holdout"] = h["size"].reindex(out.index, fill_value=0).astype(np.int64)
        if monetary_value_col is not None:
            out["monetary_value_holdout"] = h["mean"].reindex(out.index, fill_value=0.0)
        out["duration_holdout"] = (obs_end - cal_end).days / days_per_unit
    out.index.name = customer_id_col
    out.attrs["excluded"] = excluded
    out.attrs["observation_period_end"] = obs_end
    out.attrs["calibration_period_end"] = cal_end
    out.attrs["time_unit_days"] = days_per_unit
    return out


def _transaction_days(transactions: pd.DataFrame, customer_id_col: str, datetime_col: str,
                      monetary_value_col: str | None, datetime_format: str | None
                      ) -> tuple[pd.DataFrame, pd.Series]:
    """Checked input: ``customer``, ``day`` and ``amount`` (1.0 without a monetary column),
    and the days as read; a missing column, id, date or amount is a :class:`ModelError`."""
    for col in (customer_id_col, datetime_col, monetary_value_col):
        if col is not None and col not in transactions.columns:
            raise ModelError(
                f"Column {col!r} is not in the transactions.",
                hint=f"Available columns: {', '.join(map(str, transactions.columns))}.",
            )
    if len(transactions) == 0:
        raise ModelError("There are no transactions to summarise.")
    ids = transactions[customer_id_col]
    if ids.isna().any():
        raise ModelError(
            f"{int(ids.isna().sum())} transactions have no {customer_id_col!r}.",
            hint="Drop or resolve them before summarising.",
        )
    try:
        try:
            when = pd.to_datetime(transactions[datetime_col], format=datetime_format)
        except ValueError:
            if datetime_format is not None:
                raise
            when = pd.to_datetime(transactions[datetime_col], format="mixed")
    except (TypeError, ValueError) as exc:
        raise ModelError(
            f"Column {datetime_col!r} cannot be read as dates: {exc}.",
            hint="Pass datetime_format, e.g. '%Y%m%d'.",
        ) from exc
    if when.isna().any():
        raise ModelError(
            f"{int(when.isna().sum())} transactions have no {datetime_col!r}.",
            hint="Drop or fix them before summarising.",
        )
    day = when.dt.normalize()
    frame = pd.DataFrame({"customer": ids.to_numpy(), "day": day.to_numpy()})
    if monetary_value_col is not None:
        amount = pd.to_numeric(transactions[monetary_value_col], errors="coerce")
        if amount.isna().any():
            raise ModelError(
                f"{int(amount.isna().sum())} transactions have no numeric {monetary_value_col!r}.",
                hint="Drop or fix them before summarising.",
            )
        frame["amount"] = amount.to_numpy(dtype=float)
    else:
        frame["amount"] = 1.0
    return frame, day


def _occasions(frame: pd.DataFrame, monetary: bool) -> tuple[pd.DataFrame, int]:
    """Purchase occasions (one per customer and day, amounts summed) and how many days were
    not one."""
    frame["negative"] = frame["amount"] < 0
    by_day = frame.groupby(["customer", "day"], sort=True, observed=True)
    occasions = by_day.agg(amount=("amount", "sum"), negative=("negative", "any")).reset_index()
    dropped_days = 0
    if monetary:
        # A day counts when the customer kept something: a positive net amount, or a free order
        # (zero amount without any return line; CDNOW has 8 such first purchases).
        kept = (occasions["amount"] > 0) | ((occasions["amount"] == 0) & ~occasions["negative"])
        dropped_days = int((~kept).sum())
        occasions = occasions[kept]
    occasions = occasions.drop(columns="negative")
    if len(occasions) == 0:
        raise ModelError("No day has a positive net amount: there is no purchase occasion.")
    return occasions, dropped_days


def _calibration_end(calibration_period_end: Any, obs_end: pd.Timestamp,
                     occasions: pd.DataFrame, tz: Any) -> pd.Timestamp:
    """The last calibration day, checked to leave a holdout and a calibration purchase."""
    cal_end = _to_day(calibration_period_end, "calibration_period_end", tz)
    if cal_end >= obs_end:
        raise ModelError(
            f"calibration_period_end {cal_end.date()} is not before observation_period_end "
            f"{obs_end.date()}: there is no holdout period.",
            hint="Choose a calibration end inside the observed period.",
        )
    if cal_end < occasions["day"].min():
        raise ModelError(
            f"The holdout period ({cal_end.date()} to {obs_end.date()}) is longer than the "
            "data: no purchase falls in the calibration period.",
            hint="Move calibration_period_end after the first transaction.",
        )
    return cal_end
