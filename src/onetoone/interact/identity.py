"""Customers named by events and API calls: normalized identifiers → customer id, at once.

Identifiers are normalized by the very SQL that ingestion uses
(:meth:`onetoone.ingest._normalize.Normalizer.identifier`), so ``Marie@Exemple.fr`` sent to the API
finds the customer that the CRM export gave as ``marie@exemple.fr``.

An identifier that no customer carries creates a *reference* customer record (``origin =
'reference'``, source ``api``) with its identifiers, a singleton link and a new customer id, so
that decisions work from the first event. ``onetoone identify`` later treats that record like
any other: when an export brings a profile with the same e-mail, the two are stitched and the
older id (the API's) survives.

The service keeps an :class:`IdentifierIndex` of the whole base in memory (64-bit hashes of the
identifiers, sorted, beside the customer ids), read at start and after each batch step: a
decision for an e-mail costs a binary search, not a scan of ``identifiers``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from onetoone.clock import utcnow
from onetoone.errors import InvalidInputError, NotFoundError
from onetoone.identify.resolver import customer_id_sql
from onetoone.identify.settings import IdentifySettings
from onetoone.ingest._normalize import Normalizer
from onetoone.ingest.settings import SourceConfig
from onetoone.settings import WorkspaceSettings
from onetoone.store import Connection, OutOfMemory, engine_settings

Cursor = Callable[[], Connection]
#: normalized values kept in memory (the cache starts over beyond)
NORMALIZED_KEPT = 1_000_000
Submit = Callable[[Callable[[Any], Any]], Any]


@dataclass
class Resolved:
    customer_id: str
    record_key: str | None
    created: bool = False
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def identifier_hash(key: str) -> int:
    """The index's hash of ``TYPE:VALUE``: the first 8 bytes of its MD5, little-endian (what
    DuckDB's ``md5_number_upper`` gives, so the base is hashed in SQL)."""
    return int.from_bytes(hashlib.md5(key.encode()).digest()[:8], "little")


class IdentifierIndex:
    """Every identifier of the base and every customer id, in memory, read in one pass.

    Identifiers are kept as sorted 64-bit hashes pointing into the sorted customer ids (about
    16 bytes an identifier and 30 a customer); two different identifiers share a hash with a
    probability of about one in 10^13 at ten million identifiers. An identifier carried by
    records of several customers points to the smallest id, as the SQL look-up did; merged-away
    ids lead to their survivor.
    """

    def __init__(self, hashes: np.ndarray, positions: np.ndarray, ids: np.ndarray,
                 record_keys: pa.Array, merged: dict[str, str]) -> None:
        self.hashes, self.positions, self.ids = hashes, positions, ids
        self.record_keys, self.merged = record_keys, merged

    @classmethod
    def empty(cls) -> IdentifierIndex:
        return cls(np.zeros(0, np.uint64), np.zeros(0, np.int32), np.zeros(0, "S1"),
                   pa.array([], pa.string()), {})

    @classmethod
    def load(cls, con: Connection) -> IdentifierIndex:
        """The index of the base as ``con`` sees it, read within 256 MB of DuckDB's memory
        (spilling past it; without the limit for a base too large for it), so that its buffers
        do not stay in the service's memory (they kept some 300 MB at 200,000 customers)."""
        try:
            with engine_settings(con, memory_limit="256MB"):
                return cls._read(con)
        except OutOfMemory:  # a base too large to read within it
            return cls._read(con)

    @classmethod
    def _read(cls, con: Connection) -> IdentifierIndex:
        customers = con.sql("""
            SELECT c.customer_id, l.record_key,
                   (row_number() OVER (ORDER BY c.customer_id) - 1)::INTEGER AS pos
            FROM customers c LEFT JOIN (SELECT customer_id, min(record_key) AS record_key
                                        FROM customer_links GROUP BY ALL) l USING (customer_id)
            ORDER BY pos""").to_arrow_table()
        idents = con.sql("""
            WITH ids AS (SELECT md5_number_upper(i.type || ':' || i.value) AS h,
                                min(l.customer_id) AS customer_id
                         FROM identifiers i JOIN customer_links l USING (record_key)
                         GROUP BY i.type, i.value),
            pos AS (SELECT customer_id, (row_number() OVER (ORDER BY customer_id) - 1)::INTEGER
                           AS pos FROM customers)
            SELECT ids.h, pos.pos FROM ids JOIN pos USING (customer_id)
            ORDER BY ids.h""").to_arrow_table()
        merged = dict(con.execute(
            "SELECT customer_id, merged_into FROM customer_ids WHERE merged_into IS NOT NULL"
        ).fetchall())
        ids = np.array([v.encode() for v in customers.column("customer_id").to_pylist()]
                       or [b""])[: customers.num_rows]
        positions = idents.column("pos").to_numpy().astype(np.int32)
        record_keys = customers.column("record_key").combine_chunks()
        if len(ids) > 1 and not bool(np.all(ids[:-1] <= ids[1:])):  # another collation
            order = np.argsort(ids, kind="stable")
            ids, record_keys = ids[order], record_keys.take(pa.array(order))
            positions = np.argsort(order).astype(np.int32)[positions]
        hashes = idents.column("h").to_numpy().astype(np.uint64)
        return cls(hashes, positions, ids, record_keys, merged)

    def __len__(self) -> int:
        return len(self.hashes)

    def _at(self, pos: int) -> tuple[str, str | None]:
        return self.ids[pos].decode(), self.record_keys[pos].as_py()

    def find(self, key: str) -> tuple[str, str | None] | None:
        """(customer id, record key) of ``TYPE:VALUE``; None when no customer carries it."""
        h = np.uint64(identifier_hash(key))
        i = int(np.searchsorted(self.hashes, h))
        if i < len(self.hashes) and self.hashes[i] == h:
            return self._at(int(self.positions[i]))
        return None

    def customer(self, customer_id: str) -> tuple[str, str | None] | None:
        """(customer id, one of its record keys), following merges; None when unknown."""
        for _ in range(10):
            if customer_id not in self.merged:
                break
            customer_id = self.merged[customer_id]
        key = customer_id.encode()
        i = int(np.searchsorted(self.ids, key))
        if i < len(self.ids) and self.ids[i] == key:
            return self._at(i)
        return None


class CustomerResolver:
    """Finds (or creates) the customer of an API reference.

    The base is looked up in an :class:`IdentifierIndex` (read on first use, and again by
    :meth:`reload` after a batch step); customers the service creates meanwhile are kept beside
    it until the next index holds them.
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
        self._base: IdentifierIndex | None = None
        #: how many times the index was read again (a customer found before may have moved)
        self.generation = 0
        # customers created by the service since the index was read
        self._index: dict[str, tuple[str, str]] = {}
        self._customers: dict[str, tuple[str, str | None]] = {}
        self._lock = threading.RLock()

    # -- normalization ------------------------------------------------------------------
    def normalize(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
        """Normalized values of (type, raw) pairs: e-mails in Python, the other unknown ones
        by one query per type."""
        missing: dict[str, list[str]] = {}
        if len(self._norm) > NORMALIZED_KEPT:
            self._norm = {}
        for kind, raw in pairs:
            if (kind, raw) in self._norm:
                continue
            value = Normalizer.email_value(raw) if kind == "email" else False
            if value is False:  # a query (the SQL of ingestion) for the others
                missing.setdefault(kind, []).append(raw)
            else:
                self._norm[(kind, raw)] = value  # type: ignore[assignment]
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

    # -- the index ----------------------------------------------------------------------
    @property
    def base(self) -> IdentifierIndex:
        """The index of the base, read on first use."""
        if self._base is None:
            with self._lock:
                if self._base is None:
                    self._base = IdentifierIndex.load(self.cursor())
        return self._base

    def reload(self, con: Connection) -> None:
        """Read the index again on ``con`` (after a batch step: links, merges, new customers)
        while look-ups use the old one, then swap it in. Call it after the service's writes
        so far are committed; the customers created while it reads are kept."""
        fresh = IdentifierIndex.load(con)
        with self._lock:
            self._base = fresh
            self.generation += 1
            self._index = {k: v for k, v in self._index.items() if fresh.find(k) is None}
            self._customers = {k: v for k, v in self._customers.items()
                               if fresh.customer(k) is None}

    # -- look-ups -----------------------------------------------------------------------
    def customer(self, customer_id: str) -> tuple[str, str | None] | None:
        """(customer id, one of its record keys), following merges; None when unknown."""
        found = self._customers.get(customer_id)
        return found if found is not None else self.base.customer(customer_id)

    def _find_key(self, key: str) -> tuple[str, str | None] | None:
        found = self._index.get(key)
        return found if found is not None else self.base.find(key)

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
        return self._hit(self.identifiers(ref))

    def _hit(self, ids: list[tuple[str, str]]) -> Resolved | None:
        """The customer of the first identifier (strongest first) in the index, if any."""
        for t, v in ids:
            hit = self._find_key(f"{t}:{v}")
            if hit is not None:
                return Resolved(hit[0], hit[1])
        return None

    def find_cached(self, ref: Mapping[str, str]) -> Resolved | None:
        """:meth:`find` from memory alone: None whenever a database read (normalizing a value
        not seen yet, reading the index), an error or a new customer would be needed."""
        if self._base is None:
            return None
        if "customer_id" in ref:
            hit = self.customer(ref["customer_id"])
            return Resolved(hit[0], hit[1]) if hit is not None else None
        known = []
        for kind, raw in ref.items():
            value = self._norm.get((kind, raw))
            if value is None:
                return None
            known.append((self.rank.get(kind, len(self.rank)), kind, value))
        return self._hit([(kind, value) for _, kind, value in sorted(known)])

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
            if cid in taken or self.customer(cid) is not None:
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
            if not taken and self.customer(cid) is None:
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
