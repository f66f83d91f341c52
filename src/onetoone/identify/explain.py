"""One customer as a person reads it: golden record, source records, and why they are one."""

from __future__ import annotations

import json
from typing import Any

from onetoone.config import IdentifySettings
from onetoone.errors import NotFoundError
from onetoone.identify._edges import garbage_predicate
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


def _word(kind: str) -> str:
    return _WORDS.get(kind, kind.replace("_", " "))


def _rows(store: Store, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = store.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def customer_view(store: Store, settings: IdentifySettings, customer_id: str,
                  why: bool = False) -> dict[str, Any]:
    """``{"customer": golden row, "records": [...], "evidence": [sentences]}``."""
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
        view["evidence"] = evidence(store, settings, customer_id)
    return view


def evidence(store: Store, settings: IdentifySettings, customer_id: str) -> list[str]:
    """Why these records are one customer (and what was refused), in a marketer's words."""
    lines: list[str] = []
    keys = "(SELECT record_key FROM customer_links WHERE customer_id = ?)"
    for kind, value, members in store.fetchall(f"""
            SELECT type, value, list(DISTINCT record_key ORDER BY record_key)
            FROM identifiers WHERE record_key IN {keys}
              AND NOT {garbage_predicate(settings)}
            GROUP BY ALL HAVING count(DISTINCT record_key) >= 2 ORDER BY type, value""",
            [customer_id]):
        lines.append(f"{_join(members)} share the {_word(kind)} {value}.")
    for left, right, prob, detail, status in store.fetchall(f"""
            SELECT record_key_l, record_key_r, match_probability, evidence, status
            FROM identity_review WHERE status IN ('linked', 'accepted')
              AND record_key_l IN {keys} AND record_key_r IN {keys}
            ORDER BY match_probability DESC""", [customer_id, customer_id]):
        agree = _describe_levels(detail)
        who = "a person accepted the match" if status == "accepted" else "matched"
        lines.append(f"{left} and {right} look like the same person ({who}, probability "
                     f"{prob:.2f}){': ' + agree if agree else ''}.")
    for left, right, reason, at in store.fetchall(f"""
            SELECT record_key, other_record_key, reason, created_at FROM identity_overrides
            WHERE kind = 'link' AND record_key IN {keys}""", [customer_id]):
        lines.append(f"A person linked {left} and {right} on {at:%Y-%m-%d}: {reason}.")
    for kind, value in store.fetchall(f"""
            SELECT DISTINCT type, value FROM identifiers WHERE record_key IN {keys}
              AND {garbage_predicate(settings)} ORDER BY ALL""", [customer_id]):
        lines.append(f"The {_word(kind)} '{value}' was ignored: it looks like a placeholder "
                     "or a generic address, not a person's.")
    for kind, value, names in store.fetchall(f"""
            SELECT i.type, i.value, list(DISTINCT lower(r.first_name))
            FROM identifiers i JOIN customer_records r USING (record_key)
            WHERE (i.type, i.value) IN (SELECT (type, value) FROM identifiers
                                        WHERE record_key IN {keys})
            GROUP BY ALL HAVING count(DISTINCT lower(r.first_name)) >= 2 ORDER BY ALL""",
            [customer_id]):
        lines.append(f"The {_word(kind)} {value} is shared by people with different first "
                     f"names ({', '.join(sorted(n for n in names if n))}): it only joins "
                     "records of the same first name.")
    for event, other, reason, at in store.fetchall("""
            SELECT event, other_customer_id, reason, "at" FROM identity_events
            WHERE customer_id = ? ORDER BY "at" """, [customer_id]):
        verb = "absorbed" if event.endswith("merge") else "split off"
        lines.append(f"On {at:%Y-%m-%d} it {verb} {other}: {reason}.")
    if not lines:
        lines.append("A single record, matched with no other.")
    return lines


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _describe_levels(detail: Any) -> str:
    if not detail:
        return ""
    data = json.loads(detail) if isinstance(detail, str) else detail
    parts = [f"{_LEVELS.get(k, k)} {v}" for k, v in data.items()]
    return ", ".join(parts)
