"""Mass-defection monitor: value at risk per value tier and needs segment, over time.

At-risk value of a group = sum over its customers of CLV x defection risk (the lifetime value
expected to be lost), next to the group's total positive CLV and the customers whose risk is at
or above ``alert_threshold``. One set of rows per as-of date in ``defection_monitor``
(``needs_segment = "all"`` holds the tier totals). The alert fires when the at-risk share of the
``top`` tier's value rises by more than ``monitor_margin`` since the previous as-of date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from onetoone.clock import utcnow
from onetoone.differentiate.defection._features import connection
from onetoone.schema import TABLES
from onetoone.store import frame_view, has_table

TOP_TIER = "top"


@dataclass
class MonitorResult:
    as_of: pd.Timestamp
    table: pd.DataFrame
    top_share: float | None
    previous_share: float | None
    previous_as_of: Any
    alert: str | None
    notes: list[str] = field(default_factory=list)


def update_monitor(store: Any, as_of: Any, settings: Any) -> MonitorResult:
    """Recompute the monitor rows of ``as_of`` from customer_scores and check the alert."""
    con = connection(store)
    con.execute(TABLES["defection_monitor"].ddl())
    day = pd.Timestamp(as_of).date()
    threshold = float(settings.alert_threshold)
    sql = """
        WITH s AS (
          SELECT coalesce(value_tier, 'unscored') AS value_tier,
                 coalesce(scores->>'needs_segment', 'unsegmented') AS needs_segment,
                 greatest(coalesce(clv, 0), 0) AS value,
                 TRY_CAST(scores->>'defection_risk' AS DOUBLE) AS risk
          FROM customer_scores WHERE as_of = ?
        )
        SELECT value_tier, needs_segment, count(*) AS customers,
               count(*) FILTER (WHERE risk >= ?) AS at_risk_customers,
               sum(value) AS value, sum(value * coalesce(risk, 0)) AS at_risk_value
        FROM s GROUP BY GROUPING SETS ((value_tier, needs_segment), (value_tier))
    """
    table = con.execute(sql, [day, threshold]).df()
    table["needs_segment"] = table["needs_segment"].fillna("all")
    table["at_risk_share"] = (table["at_risk_value"] / table["value"].where(table["value"] > 0)
                              ).fillna(0.0)
    now = utcnow()
    rows = table.assign(as_of=day, computed_at=now)
    with frame_view(con, "_dfx_monitor", rows):
        con.execute("DELETE FROM defection_monitor WHERE as_of = ?", [day])
        con.execute("INSERT INTO defection_monitor SELECT as_of, value_tier, needs_segment, "
                    "customers, at_risk_customers, value, at_risk_value, at_risk_share, "
                    "computed_at FROM _dfx_monitor")
    result = check_alert(con, day, settings.monitor_margin)
    result.table = table
    return result


def _has_monitor(con: Any) -> bool:
    return has_table(con, "defection_monitor")


def monitor_history(store: Any) -> pd.DataFrame:
    """Every row of ``defection_monitor``, oldest as-of date first (empty when never run);
    reads only, so it works on a read-only workspace."""
    con = connection(store)
    columns = ["as_of", "value_tier", "needs_segment", "customers", "at_risk_customers",
               "value", "at_risk_value", "at_risk_share"]
    if not _has_monitor(con):
        return pd.DataFrame(columns=columns)
    return con.execute(f"SELECT {', '.join(columns)} FROM defection_monitor "
                       "ORDER BY as_of, value_tier, needs_segment").df()


def check_alert(store: Any, as_of: Any = None, margin: float = 0.05) -> MonitorResult:
    """Compare the top tier's at-risk share with the previous as-of date of the monitor
    (reads only: no alert and no share when the monitor never ran)."""
    con = connection(store)
    if not _has_monitor(con):
        day = pd.Timestamp(as_of or "today")
        return MonitorResult(as_of=day, table=pd.DataFrame(), top_share=None,
                             previous_share=None, previous_as_of=None, alert=None)
    rows = con.execute(
        "SELECT as_of, at_risk_share FROM defection_monitor WHERE value_tier = ? AND "
        "needs_segment = 'all' AND (? IS NULL OR as_of <= ?) ORDER BY as_of DESC LIMIT 2",
        [TOP_TIER, as_of, as_of]).fetchall()
    day = pd.Timestamp(rows[0][0]) if rows else pd.Timestamp(as_of or "today")
    share = float(rows[0][1]) if rows else None
    prev = float(rows[1][1]) if len(rows) > 1 else None
    prev_day = rows[1][0] if len(rows) > 1 else None
    alert = None
    if share is not None and prev is not None and share - prev > margin:
        alert = (f"Mass-defection alert: {share:.0%} of the top tier's value is at risk on "
                 f"{day.date()}, up from {prev:.0%} on {prev_day} (margin {margin:.0%}).")
    notes = [alert] if alert else []
    if share is not None:
        notes.append(f"Top tier value at risk: {share:.0%}"
                     + (f" (previous {prev:.0%} on {prev_day})." if prev is not None else "."))
    return MonitorResult(as_of=day, table=pd.DataFrame(), top_share=share, previous_share=prev,
                         previous_as_of=prev_day, alert=alert, notes=notes)
