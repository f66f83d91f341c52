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
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from onetoone.customize.profile import Profile
from onetoone.store import Connection, OutOfMemory, drop_frame, engine_settings, show_frame

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


def _filter(column: str, ids: list[str] | None) -> tuple[str, list[Any]]:
    if ids is None:
        return "true", []
    return f"{column} IN (SELECT unnest(?::VARCHAR[]))", [ids]


def _age(birth: Any, today: date) -> int | None:
    if not isinstance(birth, date):
        return None
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def _profile_queries(
    ids: list[str] | None, now: datetime, contact_days: int, outbound: Iterable[str],
    scores_structure: str | None = None, exempt: Iterable[str] = (),
) -> dict[str, tuple[str, list[Any]]]:
    """The SQL of each part of the profiles of ``ids`` (every customer when None).

    ``customers``: the golden record, the latest score row (``_scored`` tells whether there is
    one) and its ``scores`` JSON as text, or as a typed struct of the keys of
    ``scores_structure`` (``json_group_structure``: a fraction of the memory of the text);
    ``consents``: the latest state per channel and purpose;
    ``bounces``: the addresses whose message bounced for good;
    ``contacts``: outbound contacts in the longest cap window (but those of ``exempt``
    actions, transactional messages exempt from caps, and those whose message failed for
    good); ``ignores``: consecutive ignores
    of each action since the last positive response. Nothing is sorted: a sort would hold
    every row twice.
    """
    where, params = _filter("customer_id", ids)
    golden_where, _ = _filter("c.customer_id", ids)
    cols = ", ".join(f'"{c}"' for c in _SCORE_COLUMNS)
    skip = ", ".join(sorted(_GOLDEN_SKIP))
    since = now - timedelta(days=contact_days)
    channels = list(outbound)
    scores = ("scores::VARCHAR" if scores_structure is None else
              f"json_transform(scores, '{scores_structure.replace(chr(39), chr(39) * 2)}')")
    return {
        "customers": (
            f"""
            WITH s AS (
              SELECT customer_id, true AS _scored, {cols}, {scores} AS _scores
              FROM customer_scores WHERE {where}
              QUALIFY row_number() OVER (PARTITION BY customer_id
                                         ORDER BY as_of DESC, scored_at DESC NULLS LAST) = 1)
            SELECT c.* EXCLUDE ({skip}), coalesce(s._scored, false) AS _scored,
                   s.* EXCLUDE (customer_id, _scored)
            FROM customers c LEFT JOIN s USING (customer_id)
            WHERE {golden_where}
            """,
            params + params,
        ),
        "consents": (
            f"""
            SELECT customer_id, channel, coalesce(purpose, 'marketing') AS purpose,
                   arg_max(granted, (coalesce(received_at, occurred_at), rowid)) AS granted,
                   max(coalesce(received_at, occurred_at)) AS last_at
            FROM consents WHERE customer_id IS NOT NULL AND granted IS NOT NULL
              AND channel IS NOT NULL AND {where} GROUP BY ALL
            """,
            params,
        ),
        "contacts": (
            f"""
            SELECT customer_id, min(decided_at) AS contacted_at, any_value(channel) AS channel
            FROM decisions
            WHERE action_id IS NOT NULL AND control_group IS NULL AND decided_at > ?
              AND channel IN (SELECT unnest(?::VARCHAR[])) AND {where}
              AND action_id NOT IN (SELECT unnest(?::VARCHAR[]))
              AND decision_id NOT IN (SELECT decision_id FROM deliveries
                                      WHERE status IN ('failed', 'bounced', 'dead'))
            GROUP BY decision_id, customer_id
            UNION ALL
            SELECT customer_id, occurred_at, channel FROM interactions
            WHERE direction = 'outbound' AND decision_id IS NULL AND occurred_at > ?
              AND channel IN (SELECT unnest(?::VARCHAR[])) AND customer_id IS NOT NULL
              AND {where}
            """,
            [since, channels, *params, list(exempt), since, channels, *params],
        ),
        "bounces": (
            f"""
            SELECT DISTINCT customer_id, lower(address) AS address FROM outbound
            WHERE address IS NOT NULL AND {where} AND decision_id IN (
              SELECT decision_id FROM deliveries WHERE status = 'bounced')
            """,
            params,
        ),
        "ignores": (
            f"""
            WITH r AS (SELECT customer_id, action_id, response, occurred_at FROM responses
                       WHERE action_id IS NOT NULL AND {where}
                         AND response IN ('ignore', 'click', 'accept', 'conversion')),
            pos AS (SELECT customer_id, action_id, max(occurred_at) AS t FROM r
                    WHERE response <> 'ignore' GROUP BY ALL)
            SELECT r.customer_id, r.action_id, count(*) AS n, max(r.occurred_at) AS last
            FROM r LEFT JOIN pos p USING (customer_id, action_id)
            WHERE r.response = 'ignore' AND (p.t IS NULL OR r.occurred_at > p.t)
            GROUP BY ALL
            """,
            params,
        ),
    }


def _attributes(values: dict[str, Any], today: date) -> dict[str, Any]:
    """A profile's attributes from one row of the ``customers`` part (a dict it takes over).

    The golden record first (and the age it implies); keys of the ``scores`` JSON that the
    golden record does not hold; then the score columns of the latest score row, if any.
    """
    scored = values.pop("_scored")
    extra = values.pop("_scores")
    score_values = [values.pop(c) for c in _SCORE_COLUMNS]
    attrs = values
    attrs["age"] = _age(attrs.get("birth_date"), today)
    if scored:
        if isinstance(extra, str):
            extra = json.loads(extra)
        elif isinstance(extra, dict):  # a typed struct: a key without a value is no key
            extra = {k: v for k, v in extra.items() if v is not None}
        if isinstance(extra, dict):
            for key, value in extra.items():
                if isinstance(key, str) and key not in attrs:
                    attrs[key] = value
        attrs.update(zip(_SCORE_COLUMNS, score_values, strict=True))
    return attrs


def _scores_structure(cur: Connection) -> str | None:
    """The keys and types of every ``scores`` JSON, when each key has one type (else None:
    the scores are then held as text).

    Merged from the few distinct structures of the rows (DuckDB's ``json_group_structure``
    held 4 GB for a million rows).
    """
    merged: Any = "NULL"
    for (text,) in cur.execute("SELECT DISTINCT json_structure(scores) FROM customer_scores "
                               "WHERE scores IS NOT NULL").fetchall():
        merged = _merge_structure(merged, json.loads(text))
        if merged is None:
            return None
    if not isinstance(merged, dict) or not merged:
        return None
    return json.dumps(_null_as_text(merged))


_INTEGERS = ("UBIGINT", "BIGINT")


def _merge_structure(a: Any, b: Any) -> Any:
    """One structure that reads values of structures ``a`` and ``b``, or None."""
    if "JSON" in (a, b):
        return None
    if a == "NULL" or a == b:
        return b
    if b == "NULL":
        return a
    if isinstance(a, str) and isinstance(b, str):
        if {a, b} <= {*_INTEGERS, "DOUBLE"}:
            return "DOUBLE" if "DOUBLE" in (a, b) else "BIGINT"
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b) == 1:
        inner = _merge_structure(a[0], b[0])
        return None if inner is None else [inner]
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for key, value in b.items():
            out[key] = _merge_structure(out.get(key, "NULL"), value)
            if out[key] is None:
                return None
        return out
    return None


def _null_as_text(structure: Any) -> Any:
    if structure == "NULL":
        return "VARCHAR"
    if isinstance(structure, list):
        return [_null_as_text(v) for v in structure]
    if isinstance(structure, dict):
        return {k: _null_as_text(v) for k, v in structure.items()}
    return structure


def _arrow(cur: Connection, sql: str, params: list[Any]) -> pa.Table:
    return cur.sql(sql, params=params).to_arrow_table()


#: the parts of a profile read beside its golden record and scores
PARTS = ("consents", "contacts", "ignores", "bounces")


def _fill(profile: Profile, part: str, row: tuple[Any, ...]) -> None:
    """Add one row of a part of :data:`PARTS` (customer id first)."""
    if part == "bounces":
        profile.bounced.add(row[1])
    elif part == "consents":
        _cid, channel, purpose, granted, when = row
        profile.consents[(channel, purpose)] = (bool(granted), when)
    elif part == "contacts":
        profile.contacts.append((row[1], row[2]))
    else:
        profile.ignores[row[1]] = (int(row[2]), row[3])


def load_profiles(
    cur: Connection,
    ids: list[str] | None,
    now: datetime,
    contact_days: int,
    outbound: Iterable[str],
    exempt: Iterable[str] = (),
) -> dict[str, Profile]:
    """Profiles of ``ids`` (every customer when None), as of ``now`` (naive UTC), as objects.

    For a few customers; every customer at once is held more compactly by :class:`ProfileStore`.
    """
    queries = _profile_queries(ids, now, contact_days, outbound, exempt=exempt)
    profiles: dict[str, Profile] = {}
    res = cur.execute(*queries["customers"])
    names = [d[0] for d in res.description]
    for row in res.fetchall():
        profiles[row[0]] = Profile(row[0], _attributes(dict(zip(names, row, strict=True)),
                                                       now.date()))
    if ids is not None:
        for cid in ids:
            profiles.setdefault(cid, Profile(cid, {"customer_id": cid}))
    for part in PARTS:
        for row in cur.execute(*queries[part]).fetchall():
            if row[0] in profiles:
                _fill(profiles[row[0]], part, row)
    for profile in profiles.values():
        profile.contacts.sort()
    return profiles


#: DuckDB's memory while it reads every profile (1.13 M profiles: the service's peak
#: 1.99 -> 1.31 GiB).
LOAD_MEMORY_LIMIT = "512MB"


class ProfileStore:
    """Every customer's profile in memory, compactly: Arrow columns read at once from the
    tables, each made a :class:`Profile` on first use and kept as that object from then on.

    A million profiles as Python objects took 3.9 GB and most of a minute to build; as columns
    they take a fraction of that, and one profile is made in microseconds when first asked
    for. Profiles made (or added with :meth:`setdefault`) hold every later change; the columns
    are the state of the tables at :meth:`load` time and are never changed.
    """

    def __init__(self) -> None:
        self._made: dict[str, Profile] = {}
        self._lock = threading.Lock()
        self._index: pd.Index = pd.Index([], dtype=object)
        self._base: pa.Table = pa.table({"customer_id": pa.array([], pa.string())})
        self._parts: dict[str, tuple[np.ndarray, pa.Table]] = {}
        self._today = date.today()

    @classmethod
    def load(
        cls,
        cur: Connection,
        now: datetime,
        contact_days: int,
        outbound: Iterable[str],
        exempt: Iterable[str] = (),
    ) -> ProfileStore:
        """Every customer's profile as of ``now`` (naive UTC), read in one pass per part.

        DuckDB reads them within :data:`LOAD_MEMORY_LIMIT` (spilling to disk past it), so
        that its buffers do not double the service's memory at start; a base too large for
        that is read without the limit.
        """
        store = cls()
        store._today = now.date()
        try:
            with engine_settings(cur, memory_limit=LOAD_MEMORY_LIMIT):
                store._read(cur, now, contact_days, outbound, exempt)
        except OutOfMemory:
            store._read(cur, now, contact_days, outbound, exempt)
        return store

    def _read(self, cur: Connection, now: datetime, contact_days: int,
              outbound: Iterable[str], exempt: Iterable[str] = ()) -> None:
        queries = _profile_queries(None, now, contact_days, outbound, _scores_structure(cur),
                                   exempt)
        base = _arrow(cur, *queries["customers"])
        unique = ~pd.Index(base.column(0).to_numpy(zero_copy_only=False)).duplicated()
        if not unique.all():  # one golden record per customer; never trust it blindly
            base = base.filter(pa.array(unique))
        # one chunk per column: taking a row of many chunks costs a pass over all of them
        # (9 ms a profile at 200,000 customers), of one chunk a few microseconds
        base = self._base = base.combine_chunks()
        self._index = pd.Index(base.column(0).to_numpy(zero_copy_only=False), dtype=object)
        # each part's rows are told their customer's row by a join in DuckDB (mapping millions
        # of ids through Python strings cost more memory than the part itself)
        show_frame(cur, "_profile_rows", pa.table({
            "customer_id": base.column(0),
            "_row": pa.array(np.arange(base.num_rows, dtype=np.int64))}))
        try:
            for part in PARTS:
                sql, params = queries[part]
                table = _arrow(cur, f"SELECT r._row, p.* FROM ({sql}) p JOIN _profile_rows r "
                               "USING (customer_id) ORDER BY r._row", params)
                self._parts[part] = (table.column(0).to_numpy(),
                                     table.drop_columns("_row").combine_chunks())
        finally:
            drop_frame(cur, "_profile_rows")

    def __len__(self) -> int:
        return len(self._index) + sum(1 for c in self._made if c not in self._index)

    def __contains__(self, customer_id: object) -> bool:
        return customer_id in self._made or customer_id in self._index

    def ids(self) -> list[str]:
        """Every customer id held, sorted."""
        return sorted({*self._index.tolist(), *self._made})

    def get(self, customer_id: str) -> Profile | None:
        """The customer's profile (made from the columns on first use), or None if unknown."""
        found = self._made.get(customer_id)
        if found is not None:
            return found
        profile = self.peek(customer_id)
        if profile is None:
            return None
        with self._lock:
            return self._made.setdefault(customer_id, profile)

    def made_profiles(self) -> list[Profile]:
        """The profiles in use (made from the columns, or added)."""
        with self._lock:
            return list(self._made.values())

    def made(self, customer_id: str) -> Profile | None:
        """The customer's profile if it was made already (it may hold changes), else None."""
        return self._made.get(customer_id)

    def peek(self, customer_id: str) -> Profile | None:
        """The customer's profile as held, without keeping a newly made one (a campaign reads
        every customer: only those it changes are kept, by :meth:`setdefault`)."""
        found = self._made.get(customer_id)
        if found is not None:
            return found
        try:
            row = self._index.get_loc(customer_id)
        except KeyError:
            return None
        return self._make(np.array([row], dtype=np.int64))[0]

    def setdefault(self, customer_id: str, profile: Profile) -> Profile:
        with self._lock:
            return self._made.setdefault(customer_id, profile)

    def profiles(self, chunk: int = 20_000) -> Iterator[Profile]:
        """Every profile held in the columns, by customer id, made a chunk of customers at a
        time and not kept (profiles made earlier are not consulted)."""
        order = np.argsort(self._index.to_numpy(), kind="stable")
        for start in range(0, len(order), chunk):
            yield from self._make(order[start:start + chunk])

    def _make(self, rows: np.ndarray) -> list[Profile]:
        """Profiles of these rows: each part converted once for all of them, in bulk."""
        profiles = [Profile(values["customer_id"], _attributes(values, self._today))
                    for values in self._base.take(pa.array(rows)).to_pylist()]
        for part, (part_rows, table) in self._parts.items():
            lo = np.searchsorted(part_rows, rows, "left")
            counts = np.searchsorted(part_rows, rows, "right") - lo
            total = int(counts.sum())
            if not total:
                continue
            owner = np.repeat(np.arange(len(rows)), counts)
            first = np.repeat(np.cumsum(counts) - counts, counts)
            picked = table.take(pa.array(np.repeat(lo, counts) + np.arange(total) - first))
            records = zip(*(c.to_pylist() for c in picked.columns), strict=True)
            for i, record in zip(owner.tolist(), records, strict=True):
                _fill(profiles[i], part, record)
        for profile in profiles:
            profile.contacts.sort()
        return profiles
