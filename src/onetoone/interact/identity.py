"""Customers named by events and API calls: normalized identifiers → customer id, at once.

Identifiers are normalized by the very SQL that ingestion uses
(:meth:`onetoone.ingest._normalize.Normalizer.identifier`), so ``Marie@Exemple.fr`` sent to the API
finds the customer that the CRM export gave as ``marie@exemple.fr``.

An identifier that no customer carries creates a *reference* customer record (``origin =
'reference'``, source ``api``) with its identifiers, a singleton link and a new customer id, so
that decisions work from the first event. ``onetoone identify`` later treats that record like
any other: when an export brings a profile with the same e-mail, the two are stitched and the
older id (the API's) survives.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from onetoone.clock import utcnow
from onetoone.errors import InvalidInputError, NotFoundError
from onetoone.identify.resolver import customer_id_sql
from onetoone.identify.settings import IdentifySettings
from onetoone.ingest._normalize import Normalizer
from onetoone.ingest.settings import SourceConfig
from onetoone.settings import WorkspaceSettings
from onetoone.store import Connection

Cursor = Callable[[], Connection]
Submit = Callable[[Callable[[Any], Any]], Any]


@dataclass
class Resolved:
    customer_id: str
    record_key: str | None
    created: bool = False
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)



class CustomerResolver:
    """Finds (or creates) the customer of an API reference; caches what it learns.

    The service owns the database, so the caches are exact between batch steps; after one
    (identify links, merges), :meth:`forget` empties them.
    """

    def __init__(self, workspace: WorkspaceSettings, identify: IdentifySettings,
                 cursor: Cursor) -> None:
        self.cursor = cursor
        self.normalizer = Normalizer(
            SourceConfig.model_validate({"entity": "customers", "path": "api"}), workspace
        )
        priority = identify.identifier_priority
        self.rank = {t: i for i, t in enumerate(priority)}
        self._norm: dict[tuple[str, str], str | None] = {}
        self._index: dict[str, tuple[str, str] | None] = {}
        self._customers: dict[str, tuple[str, str | None] | None] = {}
        self._lock = threading.RLock()

    # -- normalization ------------------------------------------------------------------
    def normalize(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
        """Normalized values of (type, raw) pairs, one query per type for the unknown ones."""
        missing: dict[str, list[str]] = {}
        for kind, raw in pairs:
            if (kind, raw) not in self._norm:
                missing.setdefault(kind, []).append(raw)
        if missing:
            cur = self.cursor()
            for kind, raws in missing.items():
                expr = self.normalizer.identifier("v", kind)
                for raw, value in cur.execute(
                    f"SELECT v, {expr} FROM (SELECT unnest(?::VARCHAR[]) AS v)",
                    [list(dict.fromkeys(raws))],
                ).fetchall():
                    self._norm[(kind, raw)] = value
        return {p: self._norm.get(p) for p in pairs}

    def forget(self) -> None:
        """Forget which identifier and id lead to which customer (normalization stays)."""
        with self._lock:
            self._index.clear()
            self._customers.clear()

    # -- look-ups -----------------------------------------------------------------------
    def customer(self, customer_id: str) -> tuple[str, str | None] | None:
        """(customer id, one of its record keys), following merges; None when unknown."""
        if customer_id in self._customers:
            return self._customers[customer_id]
        cur = self.cursor()
        current, found = customer_id, None
        for _ in range(10):
            row = cur.execute(
                "SELECT c.customer_id, (SELECT min(record_key) FROM customer_links l "
                "WHERE l.customer_id = c.customer_id) FROM customers c WHERE customer_id = ?",
                [current],
            ).fetchone()
            if row:
                found = (row[0], row[1])
                break
            merged = cur.execute(
                "SELECT merged_into FROM customer_ids WHERE customer_id = ?", [current]
            ).fetchone()
            if not merged or not merged[0]:
                break
            current = merged[0]
        with self._lock:
            self._customers[customer_id] = found
        return found

    def _lookup(self, keys: list[str]) -> None:
        unknown = [k for k in keys if k not in self._index]
        if not unknown:
            return
        rows = (
            self.cursor()
            .execute(
                """
            SELECT i.type || ':' || i.value, min(l.customer_id), min(l.record_key)
            FROM identifiers i JOIN customer_links l USING (record_key)
            WHERE i.type || ':' || i.value IN (SELECT unnest(?::VARCHAR[]))
            GROUP BY ALL
        """,
                [unknown],
            )
            .fetchall()
        )
        with self._lock:
            for key in unknown:
                self._index.setdefault(key, None)
            for key, cid, rk in rows:
                self._index[key] = (cid, rk)

    def identifiers(self, ref: dict[str, str]) -> list[tuple[str, str]]:
        """(type, normalized value) of a reference, strongest type first; 422 if invalid."""
        pairs = [(k, v) for k, v in ref.items() if k != "customer_id"]
        values = self.normalize(pairs)
        out = []
        for kind, raw in pairs:
            value = values[(kind, raw)]
            if value is None:
                raise InvalidInputError(f"customer.{kind} is not a valid {kind} identifier.")
            out.append((kind, value))
        out.sort(key=lambda p: (self.rank.get(p[0], len(self.rank)), p[0]))
        return out

    def find(self, ref: dict[str, str]) -> Resolved | None:
        """The customer of a reference, or None when no customer carries its identifiers."""
        if "customer_id" in ref:
            found = self.customer(ref["customer_id"])
            if found is None:
                raise NotFoundError(f"No customer {ref['customer_id']}.")
            return Resolved(found[0], found[1])
        ids = self.identifiers(ref)
        self._lookup([f"{t}:{v}" for t, v in ids])
        return self._hit(ids)

    def _hit(self, ids: list[tuple[str, str]]) -> Resolved | None:
        """The customer of the first identifier (strongest first) in the index, if any."""
        for t, v in ids:
            hit = self._index.get(f"{t}:{v}")
            if hit is not None:
                return Resolved(hit[0], hit[1])
        return None

    def find_cached(self, ref: Mapping[str, str]) -> Resolved | None:
        """:meth:`find` from the caches alone: None whenever a database read (or an error, or
        a new customer) would be needed."""
        if "customer_id" in ref:
            hit = self._customers.get(ref["customer_id"])
            return Resolved(hit[0], hit[1]) if hit is not None else None
        known = []
        for kind, raw in ref.items():
            value = self._norm.get((kind, raw))
            if value is None:
                return None
            known.append((self.rank.get(kind, len(self.rank)), kind, value))
        for _, kind, value in sorted(known):
            key = f"{kind}:{value}"
            if key not in self._index:
                return None
            found = self._index[key]
            if found is not None:
                return Resolved(found[0], found[1])
        return None

    def resolve(self, ref: dict[str, str], submit: Submit) -> Resolved:
        """Find the customer, or create a reference customer (its rows written through
        ``submit`` before anything that uses the new id)."""
        return self.resolve_many([ref], submit)[0]

    def resolve_many(self, refs: list[dict[str, str]], submit: Submit) -> list[Resolved]:
        """:meth:`resolve` for many references: one look-up, one write for the new ones."""
        self.normalize([(k, v) for ref in refs for k, v in ref.items() if k != "customer_id"])
        idents = {
            i: self.identifiers(ref) for i, ref in enumerate(refs) if "customer_id" not in ref
        }
        self._lookup(list(dict.fromkeys(f"{t}:{v}" for ids in idents.values() for t, v in ids)))
        out: list[Resolved | None] = [
            self._hit(idents[i]) if i in idents else self.find(ref) for i, ref in enumerate(refs)
        ]
        if all(r is not None for r in out):
            return out  # type: ignore[return-value]
        with self._lock:
            new: dict[str, list[tuple[str, str]]] = {}
            for i, r in enumerate(out):
                if r is None:
                    out[i] = self._hit(idents[i])  # another request may just have created it
                if out[i] is None:
                    ids = idents[i]
                    new.setdefault(f"api~{ids[0][0]}:{ids[0][1]}", ids)
            if new:
                now = utcnow()
                ids_of = self._new_ids(list(new))
                created = {
                    record_key: self._reference_rows(record_key, ids_of[record_key], ids, now)
                    for record_key, ids in new.items()
                }
                rows: dict[str, list[dict[str, Any]]] = {}
                for record_key, ids in new.items():
                    customer_id = ids_of[record_key]
                    for table, table_rows in created[record_key].items():
                        rows.setdefault(table, []).extend(table_rows)
                    for t, v in ids:
                        self._index[f"{t}:{v}"] = (customer_id, record_key)
                    self._customers[customer_id] = (customer_id, record_key)

                def write(txn: Any) -> None:
                    for table, table_rows in rows.items():
                        txn.insert(table, table_rows)

                submit(write)
                for i, r in enumerate(out):
                    if r is None:
                        found = self._hit(idents[i])
                        assert found is not None and found.record_key is not None
                        out[i] = Resolved(
                            found.customer_id,
                            found.record_key,
                            created=True,
                            rows=created[found.record_key],
                        )
        return out  # type: ignore[return-value]

    def _new_ids(self, record_keys: list[str]) -> dict[str, str]:
        """New customer ids (identify's scheme), unique among every id ever given."""
        cur = self.cursor()
        rows = cur.execute(
            f"SELECT k, {customer_id_sql('k')} FROM (SELECT unnest(?::VARCHAR[]) AS k)",
            [record_keys],
        ).fetchall()
        wanted = [cid for _, cid in rows]
        taken = {
            r[0]
            for r in cur.execute(
                "SELECT customer_id FROM customer_ids WHERE customer_id IN "
                "(SELECT unnest(?::VARCHAR[]))",
                [wanted],
            ).fetchall()
        }
        out: dict[str, str] = {}
        for record_key, cid in rows:
            if cid in taken or cid in self._customers:
                cid = self._new_id(record_key)
            taken.add(cid)
            out[record_key] = str(cid)
        return out

    def _new_id(self, record_key: str) -> str:
        cur = self.cursor()
        salt = 1
        while True:
            cid = cur.execute(
                f"SELECT {customer_id_sql('$1', str(salt))}", [record_key]
            ).fetchone()[0]  # type: ignore[index]
            taken = cur.execute(
                "SELECT count(*) FROM customer_ids WHERE customer_id = ?", [cid]
            ).fetchone()[0]  # type: ignore[index]
            if not taken and cid not in self._customers:
                return str(cid)
            salt += 1

    @staticmethod
    def _reference_rows(
        record_key: str, customer_id: str, ids: list[tuple[str, str]], now: datetime
    ) -> dict[str, list[dict[str, Any]]]:
        first = dict(reversed(ids))
        return {
            "customer_records": [
                {
                    "record_key": record_key,
                    "source": "api",
                    "source_id": record_key.split("~", 1)[1],
                    "email": first.get("email"),
                    "phone": first.get("phone"),
                    "origin": "reference",
                    "created_at": now,
                }
            ],
            "identifiers": [
                {"record_key": record_key, "type": t, "value": v, "source": "api"} for t, v in ids
            ],
            "customer_links": [
                {
                    "record_key": record_key,
                    "customer_id": customer_id,
                    "method": "singleton",
                    "match_probability": 1.0,
                    "linked_at": now,
                }
            ],
            "customer_ids": [{"customer_id": customer_id, "created_at": now}],
            "customers": [
                {
                    "customer_id": customer_id,
                    "email": first.get("email"),
                    "phone": first.get("phone"),
                    "record_count": 1,
                    "sources": ["api"],
                    "first_seen_at": now,
                    "resolved_at": now,
                }
            ],
        }
