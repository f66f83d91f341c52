"""Key figures of the customer base, month by month, in the ``kpis`` table.

Months are calendar months in the workspace's time zone. A customer is *active* at the end of a
month when they bought (a transaction with a positive amount whose status is not excluded) in the
twelve months ending with it, the usual horizon of non-contractual retail (Fader & Hardie 2009
discuss the choice of such windows); months whose twelve-month window starts before the first
transaction get no active-customer figures (they would be undercounted).

* ``active_customers``: customers active at the month's end;
* ``new_customers``: customers whose first purchase is in the month;
* ``buyers``: customers who bought in the month;
* ``repeat_rate``: share of the month's buyers who had bought before (base: buyers);
* ``retention_12m``: share of the customers active a year earlier who still are (base: those);
* ``defection_rate``: share of the customers active at the previous month's end who are not
  any more, their last purchase twelve months old (base: those);
* ``top_tier_value_share``: share of positive CLV held by the ``top`` tier at the month's last
  scoring date (base: scored customers);
* ``nps``: Net Promoter Score, % promoters (9-10) - % detractors (0-6) of the month's ``nps``
  feedback (Reichheld 2003; base: responses).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from onetoone.clock import utcnow
from onetoone.store import Connection, drop_frame, show_frame

KPIS = (
    "active_customers",
    "new_customers",
    "buyers",
    "repeat_rate",
    "retention_12m",
    "defection_rate",
    "top_tier_value_share",
    "nps",
)


def kpis_sql(exclude_statuses: Sequence[str]) -> str:
    """The query of every KPI by month (parameters: time zone, time zone, time zone)."""
    statuses = ", ".join("'" + s.lower().replace("'", "''") + "'" for s in exclude_statuses)
    kept = f"(status IS NULL OR lower(status) NOT IN ({statuses}))" if statuses else "true"
    return f"""
    WITH buys AS (
      SELECT DISTINCT customer_id, date_trunc('month',
             (occurred_at AT TIME ZONE 'UTC') AT TIME ZONE $tz)::DATE AS month
      FROM transactions
      WHERE customer_id IS NOT NULL AND occurred_at IS NOT NULL AND amount > 0
        AND {kept}
    ), first AS (
      SELECT customer_id, min(month) AS first_month FROM buys GROUP BY customer_id
    ), months AS (
      SELECT unnest(generate_series(lo, hi, INTERVAL 1 MONTH))::DATE AS month, lo AS start
      FROM (SELECT min(month) AS lo, max(month) AS hi FROM buys) WHERE lo IS NOT NULL
    ), full_months AS (
      SELECT month FROM months WHERE month >= (start + INTERVAL 11 MONTH)::DATE
    ), active AS (
      SELECT m.month, b.customer_id FROM full_months m
      JOIN buys b ON b.month > (m.month - INTERVAL 12 MONTH)::DATE AND b.month <= m.month
      GROUP BY ALL
    ), counts AS (
      SELECT m.month,
        (SELECT count(*) FROM active a WHERE a.month = m.month) AS active_customers,
        (SELECT count(*) FROM first f WHERE f.first_month = m.month) AS new_customers,
        (SELECT count(*) FROM buys b WHERE b.month = m.month) AS buyers,
        (SELECT count(*) FROM buys b JOIN first f USING (customer_id)
          WHERE b.month = m.month AND f.first_month < m.month) AS returning_buyers
      FROM months m
    ), kept AS (
      SELECT a.month, count(*) AS base, count(n.customer_id) AS still
      FROM active a LEFT JOIN active n
        ON n.customer_id = a.customer_id AND n.month = (a.month + INTERVAL 12 MONTH)::DATE
      GROUP BY a.month
    ), lapsed AS (
      SELECT a.month, count(*) AS base, count(n.customer_id) AS still
      FROM active a LEFT JOIN active n
        ON n.customer_id = a.customer_id AND n.month = (a.month + INTERVAL 1 MONTH)::DATE
      GROUP BY a.month
    ), scored AS (
      SELECT date_trunc('month', as_of)::DATE AS month, max(as_of) AS as_of
      FROM customer_scores GROUP BY 1
    ), tiers AS (
      SELECT s.month, count(*) AS base,
             sum(greatest(c.clv, 0)) FILTER (WHERE c.value_tier = 'top')
               / nullif(sum(greatest(c.clv, 0)), 0) AS share
      FROM scored s JOIN customer_scores c ON c.as_of = s.as_of
      WHERE c.clv IS NOT NULL GROUP BY s.month
    ), nps AS (
      SELECT date_trunc('month', (occurred_at AT TIME ZONE 'UTC') AT TIME ZONE $tz)::DATE
               AS month, count(*) AS base,
             100.0 * (count(*) FILTER (WHERE score >= 9) - count(*) FILTER (WHERE score <= 6))
               / count(*) AS nps
      FROM feedback
      WHERE lower(kind) = 'nps' AND score BETWEEN 0 AND 10 AND occurred_at IS NOT NULL
      GROUP BY 1
    ), wide AS (
      SELECT c.month,
        CASE WHEN c.month IN (SELECT month FROM full_months) THEN c.active_customers END
          AS active_customers,
        c.new_customers, c.buyers, c.returning_buyers,
        k.base AS retained_base, k.still AS retained,
        l.base AS lapsed_base, l.still AS not_lapsed,
        t.base AS tier_base, t.share AS tier_share, p.base AS nps_base, p.nps
      FROM counts c
      LEFT JOIN kept k ON k.month = (c.month - INTERVAL 12 MONTH)::DATE
      LEFT JOIN lapsed l ON l.month = (c.month - INTERVAL 1 MONTH)::DATE
      LEFT JOIN tiers t ON t.month = c.month
      LEFT JOIN nps p ON p.month = c.month
    )
    SELECT * FROM (
      SELECT month, 'active_customers' AS kpi, active_customers::DOUBLE AS value,
             NULL::BIGINT AS base FROM wide
      UNION ALL SELECT month, 'new_customers', new_customers, NULL FROM wide
      UNION ALL SELECT month, 'buyers', buyers, NULL FROM wide
      UNION ALL SELECT month, 'repeat_rate', returning_buyers / nullif(buyers, 0), buyers
        FROM wide
      UNION ALL SELECT month, 'retention_12m', retained / retained_base, retained_base
        FROM wide
      UNION ALL SELECT month, 'defection_rate', 1 - not_lapsed / lapsed_base, lapsed_base
        FROM wide
      UNION ALL SELECT month, 'top_tier_value_share', tier_share, tier_base FROM wide
      UNION ALL SELECT month, 'nps', nps, nps_base FROM wide
    ) WHERE value IS NOT NULL
    ORDER BY month, kpi
    """


def compute_kpis(con: Any, exclude_statuses: Sequence[str], timezone: str) -> pd.DataFrame:
    """Every KPI of every month: columns ``month``, ``kpi``, ``value``, ``base``."""
    return con.execute(kpis_sql(exclude_statuses), {"tz": timezone}).df()


def write_kpis(con: Any, frame: pd.DataFrame) -> int:
    """Replace the ``kpis`` table's rows with ``frame`` (every month is recomputed)."""
    rows = frame.assign(computed_at=utcnow())
    show_frame(con, "_kpi_rows", rows)
    try:
        con.execute("DELETE FROM kpis")
        con.execute("INSERT INTO kpis SELECT month, kpi, value, base, computed_at FROM _kpi_rows")
    finally:
        drop_frame(con, "_kpi_rows")
    return len(rows)


def stored_kpis(con: Connection) -> pd.DataFrame:
    """The ``kpis`` table as written by the last ``onetoone score``."""
    return con.execute("SELECT month, kpi, value, base FROM kpis").df()


def kpi_table(frame: pd.DataFrame, months: int | None = None) -> pd.DataFrame:
    """Months as rows (latest last), KPIs as columns, for people to read."""
    if frame.empty:
        return pd.DataFrame(columns=list(KPIS))
    wide = frame.pivot_table(index="month", columns="kpi", values="value", aggfunc="first")
    wide = wide.reindex(columns=[k for k in KPIS if k in wide.columns])
    return wide.tail(months) if months else wide
