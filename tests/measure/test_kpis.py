"""KPIs by month, computed by hand on a few customers (and by the CLI, the API's table)."""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import pytest

from onetoone.measure.kpis import compute_kpis, kpi_table
from onetoone.schema import TABLES


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for name in ("transactions", "customer_scores", "feedback"):
        con.execute(TABLES[name].ddl())
    rows = [  # customer, UTC time, amount, status
        ("A", datetime(2024, 1, 15, 10), 30.0, None), ("A", datetime(2024, 6, 10, 10), 20.0,
                                                        "paid"),
        ("A", datetime(2025, 1, 20, 10), 25.0, None), ("B", datetime(2024, 1, 20, 10), 10.0, None),
        ("C", datetime(2024, 12, 31, 23, 30), 15.0, None),  # January 2025 in Paris
        ("D", datetime(2024, 3, 1, 10), 40.0, "Cancelled"),  # not a purchase
        ("E", datetime(2024, 2, 1, 10), -5.0, None),  # a return is not a purchase
    ]
    for cid, when, amount, status in rows:
        con.execute("INSERT INTO transactions (customer_id, occurred_at, amount, status) "
                    "VALUES (?, ?, ?, ?)", [cid, when, amount, status])
    for score in (10, 9, 7, 3):
        con.execute("INSERT INTO feedback (customer_id, occurred_at, kind, score) VALUES "
                    "('A', ?, 'NPS', ?)", [datetime(2025, 1, 10), score])
    for as_of, cid, clv, tier in [
        (date(2025, 1, 15), "A", 10.0, "rest"),  # an earlier scoring of the month: ignored
        (date(2025, 1, 31), "A", 80.0, "top"), (date(2025, 1, 31), "C", 20.0, "rest"),
        (date(2025, 1, 31), "B", -5.0, "below_zero"),
    ]:
        con.execute("INSERT INTO customer_scores (customer_id, as_of, clv, value_tier) VALUES "
                    "(?, ?, ?, ?)", [cid, as_of, clv, tier])
    return con


def test_every_kpi_by_hand(con: duckdb.DuckDBPyConnection) -> None:
    frame = compute_kpis(con, ["cancelled", "canceled"], "Europe/Paris")
    got = {(f"{m:%Y-%m}", k): (v, b) for m, k, v, b in frame.itertuples(index=False)}
    # 13 months 2024-01..2025-01; a twelve-month window is whole from 2024-12 on
    assert ("2024-11", "active_customers") not in got
    assert got[("2024-12", "active_customers")][0] == 2  # A and B
    assert got[("2025-01", "active_customers")][0] == 2  # A and C; B's purchase is 12 months old
    assert got[("2025-01", "defection_rate")] == (pytest.approx(0.5), 2)  # B lapsed of A, B
    assert ("2025-01", "retention_12m") not in got  # a year earlier had no whole window
    assert got[("2024-01", "new_customers")][0] == 2
    assert got[("2025-01", "new_customers")][0] == 1  # C, in Paris time
    assert got[("2025-01", "buyers")][0] == 2
    assert got[("2025-01", "repeat_rate")] == (pytest.approx(0.5), 2)  # A had bought before
    assert got[("2025-01", "nps")] == (pytest.approx(25.0), 4)  # (2 - 1) / 4 responses
    assert got[("2025-01", "top_tier_value_share")] == (pytest.approx(0.8), 3)
    assert ("2024-03", "buyers") not in got or got[("2024-03", "buyers")][0] == 0
    wide = kpi_table(frame, 2)
    assert [f"{m:%Y-%m}" for m in wide.index] == ["2024-12", "2025-01"]
    assert wide.columns[0] == "active_customers"


def test_no_purchase_no_kpi() -> None:
    con = duckdb.connect()
    for name in ("transactions", "customer_scores", "feedback"):
        con.execute(TABLES[name].ddl())
    frame = compute_kpis(con, ["cancelled"], "UTC")
    assert frame.empty and kpi_table(frame).empty
