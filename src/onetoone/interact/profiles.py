"""Customer profiles for decisions: golden record, latest scores, consents, contact counters.

A :class:`Profile` is what rules, templates and the contact policy read. :class:`ProfileStore`
loads profiles from the workspace (one customer on first use in the service, every customer at
once for a campaign run) and then keeps them in memory: the service owns the database, so every
later change (event, consent, decision, response) is applied to the in-memory profile at once and
written to the tables by the group commit.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import duckdb

_SCORE_COLUMNS = (
    "as_of",
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "p_alive",
    "clv",
    "value_tier",
)
_GOLDEN_SKIP = {"field_sources", "resolved_at"}


@dataclass
class Profile:
    """What the decision engine knows of one customer."""

    customer_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    #: (channel, purpose) -> (granted, when)
    consents: dict[tuple[str, str], tuple[bool, datetime]] = field(default_factory=dict)
    #: outbound contacts in the longest cap window: (when, channel)
    contacts: list[tuple[datetime, str]] = field(default_factory=list)
    #: action -> (consecutive ignores, last ignore)
    ignores: dict[str, tuple[int, datetime | None]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def set_consent(self, channel: str, purpose: str, granted: bool, when: datetime) -> None:
        current = self.consents.get((channel, purpose))
        if current is None or when >= current[1]:
            self.consents[(channel, purpose)] = (granted, when)

    def record_response(self, action_id: str, response: str, when: datetime) -> None:
        count, _last = self.ignores.get(action_id, (0, None))
        if response == "ignore":
            self.ignores[action_id] = (count + 1, when)
        elif response in ("click", "accept", "conversion"):
            self.ignores.pop(action_id, None)


def _filter(column: str, ids: list[str] | None) -> tuple[str, list[Any]]:
    if ids is None:
        return "true", []
    return f"{column} IN (SELECT unnest(?::VARCHAR[]))", [ids]


def _age(birth: Any, today: date) -> int | None:
    if not isinstance(birth, date):
        return None
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def load_profiles(
    cur: duckdb.DuckDBPyConnection,
    ids: list[str] | None,
    now: datetime,
    contact_days: int,
    outbound: Iterable[str],
) -> dict[str, Profile]:
    """Profiles of ``ids`` (every customer when None), as of ``now`` (naive UTC)."""
    where, params = _filter("customer_id", ids)
    profiles: dict[str, Profile] = {}
    res = cur.execute(f"SELECT * FROM customers WHERE {where}", params)
    names = [d[0] for d in res.description]
    for row in res.fetchall():
        attrs = {n: v for n, v in zip(names, row, strict=True) if n not in _GOLDEN_SKIP}
        attrs["age"] = _age(attrs.get("birth_date"), now.date())
        profiles[row[0]] = Profile(row[0], attrs)
    if ids is not None:
        for cid in ids:
            profiles.setdefault(cid, Profile(cid, {"customer_id": cid}))
    cols = ", ".join(f'"{c}"' for c in _SCORE_COLUMNS)
    for row in cur.execute(
        f"""
        SELECT customer_id, {cols}, scores::VARCHAR FROM customer_scores WHERE {where}
        QUALIFY row_number() OVER (PARTITION BY customer_id
                                   ORDER BY as_of DESC, scored_at DESC NULLS LAST) = 1
    """,
        params,
    ).fetchall():
        profile = profiles.get(row[0])
        if profile is None:
            continue
        extra = json.loads(row[-1]) if row[-1] else {}
        if isinstance(extra, dict):
            for key, value in extra.items():
                if isinstance(key, str) and key not in profile.attributes:
                    profile.attributes[key] = value
        profile.attributes.update(dict(zip(_SCORE_COLUMNS, row[1:-1], strict=True)))
    for cid, channel, purpose, granted, when in cur.execute(
        f"""
        SELECT customer_id, channel, coalesce(purpose, 'marketing'),
               arg_max(granted, (occurred_at, rowid)), max(occurred_at)
        FROM consents WHERE customer_id IS NOT NULL AND granted IS NOT NULL
          AND channel IS NOT NULL AND {where} GROUP BY ALL
    """,
        params,
    ).fetchall():
        if cid in profiles:
            profiles[cid].consents[(channel, purpose)] = (bool(granted), when)
    since = now - timedelta(days=contact_days)
    channels = list(outbound)
    for cid, when, channel in cur.execute(
        f"""
        SELECT customer_id, min(decided_at), any_value(channel) FROM decisions
        WHERE action_id IS NOT NULL AND control_group IS NULL AND decided_at > ?
          AND channel IN (SELECT unnest(?::VARCHAR[])) AND {where}
        GROUP BY decision_id, customer_id
        UNION ALL
        SELECT customer_id, occurred_at, channel FROM interactions
        WHERE direction = 'outbound' AND decision_id IS NULL AND occurred_at > ?
          AND channel IN (SELECT unnest(?::VARCHAR[])) AND customer_id IS NOT NULL AND {where}
    """,
        [since, channels, *params, since, channels, *params],
    ).fetchall():
        if cid in profiles:
            profiles[cid].contacts.append((when, channel))
    for cid, action, count, last in cur.execute(
        f"""
        WITH r AS (SELECT customer_id, action_id, response, occurred_at FROM responses
                   WHERE action_id IS NOT NULL AND {where}
                     AND response IN ('ignore', 'click', 'accept', 'conversion')),
        pos AS (SELECT customer_id, action_id, max(occurred_at) AS t FROM r
                WHERE response <> 'ignore' GROUP BY ALL)
        SELECT r.customer_id, r.action_id, count(*), max(r.occurred_at)
        FROM r LEFT JOIN pos p USING (customer_id, action_id)
        WHERE r.response = 'ignore' AND (p.t IS NULL OR r.occurred_at > p.t) GROUP BY ALL
    """,
        params,
    ).fetchall():
        if cid in profiles:
            profiles[cid].ignores[action] = (int(count), last)
    for profile in profiles.values():
        profile.contacts.sort()
    return profiles
