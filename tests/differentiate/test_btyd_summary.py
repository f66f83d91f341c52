"""summary_from_transactions: CDNOW reproduction and edge cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _btyd_data import cdnow_dir, cdnow_summary

from onetoone.differentiate.btyd import summary_from_transactions
from onetoone.errors import ModelError


def test_cdnow_reproduces_published_summaries() -> None:
    ours = cdnow_summary()
    published = pd.read_csv(cdnow_dir() / "cdnow_customers_summary.csv", index_col="ID")
    with_tx = pd.read_csv(
        cdnow_dir() / "cdnow_customers_summary_with_transactions.csv", index_col="ID"
    )
    assert len(ours) == len(published) == 2357
    ours = ours.reindex(published.index)
    assert (ours["frequency"] == published["frequency"]).all()
    # The published file rounds weeks to 2 decimals.
    assert np.abs(ours["recency"] - published["recency"]).max() <= 0.005
    assert np.abs(ours["T"] - published["T"]).max() <= 0.005
    assert np.abs(ours["monetary_value"] - with_tx["zbar"]).max() <= 0.005 + 1e-9


def test_cdnow_calibration_and_holdout_repeat_transactions() -> None:
    s = cdnow_summary()
    assert s["frequency"].sum() == 2457  # weeks 1-39
    assert s["frequency_holdout"].sum() == 1882  # weeks 40-78
    assert s["duration_holdout"].iloc[0] == pytest.approx(273 / 7)


def _tx(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer", "when", "amount"])


def test_same_day_merged_returns_netted_and_t_zero() -> None:
    tx = _tx(
        [
            ("a", "2024-01-01 09:00", 10.0),
            ("a", "2024-01-01 17:00", 5.0),  # same day: one occasion
            ("a", "2024-01-08", 20.0),
            ("a", "2024-01-08", -20.0),  # fully returned: not an occasion
            ("a", "2024-01-15", 30.0),
            ("a", "2024-01-15", -10.0),  # partly returned: occasion worth 20
            ("b", "2024-01-15", 7.0),  # acquired on the last day: T = 0
        ]
    )
    s = summary_from_transactions(tx, "customer", "when", "amount", time_unit="D")
    assert s.loc["a", "frequency"] == 1
    assert s.loc["a", "recency"] == 14
    assert s.loc["a", "T"] == 14
    assert s.loc["a", "monetary_value"] == 20
    assert s.loc["b", ["frequency", "recency", "T", "monetary_value"]].tolist() == [0, 0, 0, 0]
    assert s.attrs["excluded"]["non_positive_days"] == 1
    weeks = summary_from_transactions(tx, "customer", "when", time_unit="W")
    assert weeks.loc["a", "frequency"] == 2  # without amounts every day counts
    assert weeks.loc["a", "T"] == pytest.approx(2.0)


def test_dates_after_observation_end_raise() -> None:
    tx = _tx([("a", "2024-01-01", 1.0), ("a", "2024-02-01", 1.0)])
    with pytest.raises(ModelError, match="after observation_period_end"):
        summary_from_transactions(
            tx, "customer", "when", "amount", observation_period_end="2024-01-15"
        )


def test_customers_acquired_after_calibration_are_excluded() -> None:
    tx = _tx([("a", "2024-01-01", 1.0), ("a", "2024-03-01", 2.0), ("b", "2024-02-15", 1.0)])
    s = summary_from_transactions(
        tx, "customer", "when", "amount", calibration_period_end="2024-01-31"
    )
    assert list(s.index) == ["a"]
    assert s.attrs["excluded"]["customers_first_purchase_after_calibration"] == 1
    assert s.loc["a", "frequency_holdout"] == 1
    assert s.loc["a", "monetary_value_holdout"] == 2.0


def test_holdout_longer_than_data_and_bad_inputs_raise() -> None:
    tx = _tx([("a", "2024-01-10", 1.0), ("a", "2024-01-20", 1.0)])
    with pytest.raises(ModelError, match="longer than the data"):
        summary_from_transactions(tx, "customer", "when", calibration_period_end="2024-01-01")
    with pytest.raises(ModelError, match="no holdout"):
        summary_from_transactions(tx, "customer", "when", calibration_period_end="2024-01-20")
    with pytest.raises(ModelError, match="not in the transactions"):
        summary_from_transactions(tx, "customer", "nope")
    with pytest.raises(ModelError, match="Unknown time unit"):
        summary_from_transactions(tx, "customer", "when", time_unit="fortnight")
