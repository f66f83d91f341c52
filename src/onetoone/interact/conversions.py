"""Conversions attributed to the message that preceded them (docs/campaigns.md#conversions).

A purchase (a row of ``transactions``, from a batch export or a ``purchase`` event of the API)
made within ``[control_groups] window_days`` after a message was sent to the same customer is a
``conversion`` response of that message's decision, worth the purchase's amount: the last
message before the purchase takes it (last touch), and a decision converts once (its first
purchase in the window), so the adaptive propensities learn one outcome per decision and a
decision already reported converted by its id (``POST /v1/decisions/{id}/responses``) is
left as it is. Cancelled orders (``[value] exclude_statuses``), refunds and returns convert
nothing. Lift (:mod:`onetoone.measure.lift`) counts the purchases of the treated and the
control group alike over the same window; attribution is what the campaign's status and the
propensities see.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from onetoone.clock import utcnow

if TYPE_CHECKING:
    from onetoone.store import Connection

#: delivery states of a message that reached the customer's provider
REACHED = ("sent", "delivered")


def attributable(cur: Connection, window_days: int, *, now: datetime | None = None,
                 customers: Iterable[str] | None = None,
                 exclude_statuses: Iterable[str] = ("cancelled", "canceled"),
                 ) -> list[tuple[str, float, datetime]]:
    """``(decision_id, amount, occurred_at)`` of each decision a purchase converts and that
    holds no conversion yet (of ``customers`` only, when given)."""
    now = now or utcnow()
    since = now - timedelta(days=window_days)
    ids = sorted(set(customers)) if customers is not None else None
    if ids == []:
        return []
    only = "AND customer_id IN (SELECT unnest(?::VARCHAR[]))" if ids is not None else ""
    excluded = [s.lower() for s in exclude_statuses]
    params: list[Any] = [since, *([ids] if ids is not None else []), since, now,
                         excluded, *([ids] if ids is not None else []), window_days]
    rows = cur.execute(f"""
        WITH sent AS (
            SELECT decision_id, customer_id, sent_at FROM deliveries
            WHERE status IN {REACHED} AND sent_at IS NOT NULL AND sent_at >= ? {only}
        ), bought AS (  -- loaded purchases are the customer's before identify has run
            SELECT * FROM (
                SELECT coalesce(t.customer_id, l.customer_id) AS customer_id, t.occurred_at,
                       t.amount::DOUBLE AS amount, t.record_key
                FROM transactions t LEFT JOIN customer_links l
                  ON t.customer_id IS NULL AND l.record_key = t.customer_record_key
                WHERE t.occurred_at >= ? AND t.occurred_at <= ? AND t.amount > 0
                  AND coalesce(lower(t.status), '') NOT IN (SELECT unnest(?::VARCHAR[])))
            WHERE customer_id IS NOT NULL {only}
        ), touched AS (  -- each purchase to the last message before it, within the window
            SELECT b.*, s.decision_id,
                   row_number() OVER (PARTITION BY b.customer_id, b.record_key
                                      ORDER BY s.sent_at DESC, s.decision_id) AS nth
            FROM bought b JOIN sent s ON s.customer_id = b.customer_id
             AND b.occurred_at >= s.sent_at AND b.occurred_at < s.sent_at + to_days(?)
        )
        SELECT decision_id, arg_min(amount, occurred_at), min(occurred_at) FROM touched
        WHERE nth = 1 AND decision_id NOT IN (
            SELECT decision_id FROM responses
            WHERE response = 'conversion' AND decision_id IS NOT NULL)
        GROUP BY decision_id ORDER BY min(occurred_at), decision_id""", params).fetchall()
    return [(str(d), float(a), t) for d, a, t in rows]
