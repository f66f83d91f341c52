"""One customer as a person reads it: golden record, source records, why they are one, and
why some records that look related are not part of it.

Everything is read from what the identify run stored (review pairs, manual decisions, events)
or recomputed for this customer's identifier values with the run's own rules
(:func:`._edges.garbage_predicate`, ``max_records_per_value``, ``household_types``).
"""

from __future__ import annotations

import json
from typing import Any

from onetoone.errors import NotFoundError
from onetoone.identify._edges import first_name_sql, garbage_predicate
from onetoone.identify.settings import IdentifySettings
from onetoone.store import Store

_WORDS = {
    "email": "e-mail", "phone": "phone number", "loyalty_card": "loyalty card",
    "customer_number": "customer number", "social_handle": "social handle",
    "device_id": "device", "cookie_id": "cookie",
}
_LEVELS = {
    "first_name": "first name", "surname": "last name", "last_name": "last name",
    "birth_date": "birth date", "postcode": "postcode", "city": "city", "address": "address",
    "full_name": "name",
}


#: This customer's record keys, given as one list parameter (read once, not per query).
_KEYS = "(SELECT unnest(?::VARCHAR[]))"


def _word(kind: str) -> str:
    return _WORDS.get(kind, kind.replace("_", " "))


def _rows(store: Store, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = store.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def identity_view(store: Store, settings: IdentifySettings, customer_id: str,
                  why: bool = False) -> dict[str, Any]:
    """``{"customer": golden row, "records": [...]}``; with ``why``, also ``"evidence"`` (why
    these records are one) and ``"refused"`` (why related records or values are not), as
    sentences."""
    golden = _rows(store, "SELECT * FROM customers WHERE customer_id = ?", [customer_id])
    if not golden:
        merged = store.scalar("SELECT merged_into FROM customer_ids WHERE customer_id = ?",
                              [customer_id])
        raise NotFoundError(
            f"No customer {customer_id}.",
            hint=f"It was merged into {merged}." if merged else
            "Run 'onetoone identify' first, or check the id.")
    records = _rows(store, """
        SELECT r.record_key, r.source, r.origin, r.first_name, r.last_name, r.email, r.phone,
               r.birth_date, r.postcode, r.city, l.method, l.match_probability, l.linked_at
        FROM customer_links l JOIN customer_records r USING (record_key)
        WHERE l.customer_id = ? ORDER BY r.record_key""", [customer_id])
    view: dict[str, Any] = {"customer": golden[0], "records": records}
    if why:
        mine = [str(r["record_key"]) for r in records]
        view["evidence"] = evidence(store, settings, customer_id, mine)
        view["refused"] = refused(store, settings, customer_id, mine)
    return view


def evidence(store: Store, settings: IdentifySettings, customer_id: str,
             mine: list[str]) -> list[str]:
    """Why these records are one customer, in a marketer's words (``mine``: its record
    keys)."""
    lines: list[str] = []
    for kind, value, members in store.fetchall(f"""
            SELECT type, value, list(DISTINCT record_key ORDER BY record_key)
            FROM identifiers WHERE record_key IN {_KEYS}
              AND NOT {garbage_predicate(settings)}
            GROUP BY ALL HAVING count(DISTINCT record_key) >= 2 ORDER BY type, value""",
            [mine]):
        lines.append(f"{_join(members)} share the {_word(kind)} {value}.")
    for left, right, prob, detail, status in store.fetchall(f"""
            SELECT record_key_l, record_key_r, match_probability, evidence, status
            FROM identity_review WHERE status IN ('linked', 'accepted')
              AND record_key_l IN {_KEYS} AND record_key_r IN {_KEYS}
            ORDER BY match_probability DESC""", [mine, mine]):
        agree = _describe_levels(detail)
        who = "a person accepted the match" if status == "accepted" else "matched"
        lines.append(f"{left} and {right} look like the same person ({who}, probability "
                     f"{prob:.2f}){': ' + agree if agree else ''}.")
    for left, right, reason, at in store.fetchall(f"""
            SELECT record_key, other_record_key, reason, created_at FROM identity_overrides
            WHERE kind = 'link' AND record_key IN {_KEYS}""", [mine]):
        lines.append(f"A person linked {left} and {right} on {at:%Y-%m-%d}: {reason}.")
    for other, reason, at in store.fetchall("""
            SELECT other_customer_id, reason, "at" FROM identity_events
            WHERE customer_id = ? AND event LIKE '%merge' ORDER BY "at" """, [customer_id]):
        lines.append(f"On {at:%Y-%m-%d} it absorbed {other}: {reason}.")
    if not lines:
        lines.append("A single record, matched with no other.")
    return lines


def refused(store: Store, settings: IdentifySettings, customer_id: str,
            mine: list[str]) -> list[str]:
    """Why records or values that look related are not part of this customer: pairs a person
    rejected or has yet to review, records a person set apart, splits, and identifier values
    the identify run does not use to join (its rules, applied to this customer's values;
    ``mine``: its record keys)."""
    lines = _refused_pairs(store, mine)
    for key, reason, at in store.fetchall(f"""
            SELECT record_key, reason, created_at FROM identity_overrides
            WHERE kind = 'separate' AND record_key IN {_KEYS} ORDER BY ALL""", [mine]):
        lines.append(f"On {at:%Y-%m-%d} a person set {key} apart from other records: {reason}.")
    for key, other, reason, at in store.fetchall(f"""
            SELECT DISTINCT o.record_key, l.customer_id, o.reason, o.created_at
            FROM identity_overrides o JOIN identifiers i USING (record_key)
            LEFT JOIN customer_links l USING (record_key)
            WHERE o.kind = 'separate' AND o.record_key NOT IN {_KEYS}
              AND (i.type, i.value) IN (SELECT (type, value) FROM identifiers
                                        WHERE record_key IN {_KEYS})
            ORDER BY ALL""", [mine, mine]):
        lines.append(f"{key}{_as_customer(other)} shares details with this customer, but on "
                     f"{at:%Y-%m-%d} a person set it apart: {reason}.")
    for cid, other, reason, at, records in store.fetchall("""
            SELECT e.customer_id, e.other_customer_id, e.reason, e."at",
                   (SELECT list(record_key ORDER BY record_key) FROM customer_links l
                    WHERE l.customer_id = e.other_customer_id)
            FROM identity_events e
            WHERE e.event LIKE '%split' AND ? IN (e.customer_id, e.other_customer_id)
            ORDER BY e."at", e.other_customer_id""", [customer_id]):
        if cid == customer_id:
            held = f" ({_join(records[:3])}{', ...' if len(records) > 3 else ''})" \
                if records else ""
            lines.append(f"On {at:%Y-%m-%d} records were split off into customer "
                         f"{other}{held}: {reason}.")
        else:
            lines.append(f"On {at:%Y-%m-%d} this customer was split off from {cid}: {reason}.")
    lines.extend(_unused_values(store, settings, mine, customer_id))
    return lines


def _as_customer(customer_id: str | None) -> str:
    return f" (customer {customer_id})" if customer_id else ""


def _refused_pairs(store: Store, mine: list[str]) -> list[str]:
    """Pairs of the review list a person rejected, or that wait for a person's review."""
    lines: list[str] = []
    here = set(mine)
    for left, right, status, prob, at, other_left, other_right in store.fetchall(f"""
            SELECT p.record_key_l, p.record_key_r, p.status, p.match_probability,
                   p.decided_at, ll.customer_id, lr.customer_id
            FROM identity_review p
            LEFT JOIN customer_links ll ON ll.record_key = p.record_key_l
            LEFT JOIN customer_links lr ON lr.record_key = p.record_key_r
            WHERE p.status IN ('rejected', 'pending')
              AND (p.record_key_l IN {_KEYS} OR p.record_key_r IN {_KEYS})
            ORDER BY p.status DESC, p.match_probability DESC, p.record_key_l, p.record_key_r""",
            [mine, mine]):
        ours, other = (left, right) if left in here else (right, left)
        together = other in here
        elsewhere = "" if together else _as_customer(
            other_right if other == right else other_left)
        if status == "rejected":
            when = f" on {at:%Y-%m-%d}" if at else ""
            tail = ", yet the evidence above joins them" if together else ""
            lines.append(f"A person said{when} that {ours} and {other}{elsewhere} are not the "
                         f"same person{tail}.")
        elif not together:
            lines.append(f"{ours} and {other}{elsewhere} may be the same person (probability "
                         f"{prob:.2f}): waiting for a person's review.")
    return lines


def _unused_values(store: Store, settings: IdentifySettings, mine: list[str],
                   customer_id: str) -> list[str]:
    """This customer's identifier values that join no one, or only some records, and why, by
    the identify run's rules (:func:`._edges.build_identifier_edges`)."""
    first = first_name_sql("r")
    ignored = {t.lower() for t in settings.ignore_types}  # as the run compares them
    household = {t.lower() for t in settings.household_types}
    lines: list[str] = []
    for kind, value, garbage, n, many_fn, many_bd, names, others in store.fetchall(f"""
            WITH mine AS (SELECT DISTINCT type, value FROM identifiers
                          WHERE record_key IN {_KEYS}),
            carriers AS (SELECT DISTINCT i.record_key, i.type, i.value
                         FROM identifiers i JOIN mine USING (type, value))
            SELECT c.type, c.value, {garbage_predicate(settings, 'c.type', 'c.value')},
                   count(*), min({first}) <> max({first}), min(r.birth_date) <> max(r.birth_date),
                   list(DISTINCT r.first_name ORDER BY r.first_name)
                       FILTER (WHERE r.first_name IS NOT NULL),
                   count(DISTINCT l.customer_id) FILTER (WHERE l.customer_id <> ?)
            FROM carriers c JOIN customer_records r USING (record_key)
            LEFT JOIN customer_links l USING (record_key)
            GROUP BY c.type, c.value ORDER BY c.type, c.value""", [mine, customer_id]):
        word = _word(kind)
        if kind in ignored:
            if n >= 2:
                lines.append(f"The {word} {value} is not used: this workspace does not join "
                             f"records by {word}.")
        elif garbage:
            generic = " or a generic address" if kind == "email" else ""
            lines.append(f"The {word} '{value}' was ignored: it looks like a placeholder"
                         f"{generic}, not a person's.")
        elif n > settings.max_records_per_value:
            lines.append(f"The {word} {value} is shared by {n} records, like a shop's {word}: "
                         "not used to join anyone.")
        elif (others and n >= settings.shared_min_records and kind in household
              and (many_fn or many_bd)):
            shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
            differ = f"other first names ({shown})" if many_fn else "other birth dates"
            lines.append(f"The {word} {value} is also on records with {differ}, like a "
                         f"family's: it only joins records that may be one person; "
                         f"{others} other customer{'s' if others > 1 else ''} carr"
                         f"{'y' if others > 1 else 'ies'} it.")
    return lines


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _describe_levels(detail: Any) -> str:
    if not detail:
        return ""
    data = json.loads(detail) if isinstance(detail, str) else detail
    parts = [f"{_LEVELS.get(k, k)} {v}" for k, v in data.items()]
    return ", ".join(parts)
