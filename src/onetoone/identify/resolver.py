"""Identity resolution: records from every silo → one customer, with stable ids.

One run (:meth:`IdentityResolver.run`):

1. build the guarded identifier graph (:mod:`._edges`), add probabilistic pairs above the
   match threshold and manual decisions;
2. find customers as connected components, rebuilding edge by edge only those that break a
   cardinality guard or hold records a probabilistic pair (or a guessed group) must not join,
   the pairwise vetoes held for the customer (:mod:`._components`);
3. give each customer a stable id: a customer keeps the id of the oldest customer whose records
   it mostly holds (the older id survives a merge, the larger part keeps the id after a split);
   merges and splits are written to ``identity_events``;
4. write ``customer_links``, the golden records (:mod:`._golden`) and the ``customer_id`` of every
   event table.

An incremental run rewrites only the customers that new records (or manual decisions) touch; a
customer untouched keeps its links, which is what a full run would compute for it too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from onetoone.errors import NotFoundError, OneToOneError
from onetoone.identify._components import components, guarded_components
from onetoone.identify._edges import (
    births_compatible,
    build_identifier_edges,
    build_records,
    garbage_parts,
    garbage_predicate,
    names_differ,
)
from onetoone.identify._golden import rebuild_golden
from onetoone.identify.settings import IdentifySettings
from onetoone.ingest._normalize import ident, q
from onetoone.schema import ENTITIES
from onetoone.store import Connection, Store
from onetoone.store.duckdb import duckdb_settings

Progress = Callable[[str], None]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base 32
#: DuckDB memory of the store during a run, spilling to disk beyond (the Splink connection
#: has its own cap): the default, 80 % of RAM, let a 1 M-customer full run hold 18 GiB. The
#: golden records, whose per-customer lists cannot spill, are built in parts (:mod:`._golden`).
MEMORY_LIMIT = "3GB"
#: Share of the linked records that must change customer for every event row to be looked up
#: anew, not only those of the records that changed (:meth:`IdentityResolver._update_events`).
ATTACH_ALL_SHARE = 0.3


@dataclass
class IdentifyResult:
    """What a run did, in numbers a marketer reads."""

    mode: str
    records: int = 0
    #: Records whose customers the run rebuilt: every record in a full run, the components
    #: that new or changed records reach in an incremental one.
    records_rebuilt: int = 0
    customers: int = 0
    records_relinked: int = 0
    customers_new: int = 0
    merges: int = 0
    splits: int = 0
    probabilistic_links: int = 0
    pending_reviews: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _cause(error: Exception) -> str:
    """An error's type and the first line of its message, for a run's notes."""
    return f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:160]}"


def customer_id_sql(expr: str, salt: str = "") -> str:
    """SQL of a customer id derived from a string: ``C`` + 10 Crockford base-32 characters."""
    h = f"md5_number_lower({expr}{' || ' + q(salt) if salt else ''})"
    chars = " || ".join(
        f"substr({q(_ALPHABET)}, (({h} >> {5 * i}) & 31)::INTEGER + 1, 1)" for i in range(10)
    )
    return f"('C' || {chars})"


class IdentityResolver:
    """Links the records of one store into customers, as ``[identify]`` configures."""

    def __init__(self, store: Store, settings: IdentifySettings) -> None:
        self._every_comp = True  # a full run rewrites every component (:meth:`_run`)
        self.store = store
        self.con: Connection = store.con
        self.settings = settings

    # -- the run ------------------------------------------------------------------------
    def run(self, *, full: bool = False, progress: Progress | None = None,
            touched: list[str] | None = None, event_prefix: str = "",
            reason: str | None = None) -> IdentifyResult:
        """Link records into customers; incremental unless ``full`` or the first run."""
        started = time.perf_counter()
        say = progress or (lambda _msg: None)
        con = self.con
        last = con.execute(
            "SELECT max_ingestion_id FROM identity_runs ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
        has_links = bool(self.store.scalar("SELECT count(*) > 0 FROM customer_links"))
        has_graph = bool(self.store.scalar("SELECT count(*) > 0 FROM identity_graph"))
        mode = "full" if full or last is None or not has_links or not has_graph \
            else "incremental"
        last_ingestion = int(last[0]) if last and last[0] is not None else -1
        result = IdentifyResult(mode)
        # Every read that needs an order says it (ORDER BY): tables are made in parallel.
        with duckdb_settings(con, memory_limit=MEMORY_LIMIT, preserve_insertion_order=False):
            self._run(result, mode, last_ingestion, touched, event_prefix, reason, say)
        result.seconds = time.perf_counter() - started
        return result

    def _run(self, result: IdentifyResult, mode: str, last_ingestion: int,
             touched: list[str] | None, event_prefix: str, reason: str | None,
             say: Progress) -> None:
        started = time.perf_counter()
        con = self.con
        with self.store.transaction():
            say("reading records")
            self._changes(last_ingestion)
            scored: pd.DataFrame | None = None
            if mode == "incremental" and self.settings.probabilistic:
                say("probabilistic matching of the new records")
                scored = self._score_new(result, say)
                if scored is None:
                    say("  the saved model does not fit the records: a full run")
                    mode = result.mode = "full"
            scoped = mode == "incremental"
            self._every_comp = not scoped
            if scoped:
                self._scope(touched or [], scored)
            while True:  # again when a matched pair leaves the scope (it only grows)
                build_records(con, "_scope" if scoped else None)
                con.execute("CREATE OR REPLACE TEMP TABLE _new AS SELECT idx, record_key "
                            "FROM _rec WHERE record_key IN (SELECT record_key FROM _new_keys)")
                say("stitching identifiers")
                n_nodes = build_identifier_edges(con, self.settings, scoped=scoped)
                if self.settings.probabilistic:
                    if not scoped:
                        say("probabilistic matching")
                    self._probabilistic(result, say, scored)
                if not scoped or not self._widen_scope():
                    break
            n_records = int(self.store.scalar("SELECT count(*) FROM _rec"))
            result.records = int(self.store.scalar("SELECT count(*) FROM customer_records"))
            result.records_rebuilt = n_records
            self._all_edges(n_nodes)
            raw = self._components(n_records)
            self._write_graph(raw, n_records, scoped)
            say("guarding against over-merging")
            labels = self._apply_guards(raw, n_records,
                                        "_rec_ids" if scoped else "identifiers")
            self._write_labels(labels, n_records)
            self._affected()
            say("assigning stable customer ids")
            self._assign_ids(result, event_prefix, reason)
            self._write_links(result)
            say("building golden records")
            rebuild_golden(con, self.settings, "_affected_ids" if scoped else None,
                           "_links_new")
            if scoped:  # customers left without records (a full run rebuilt every one)
                con.execute("""
                    DELETE FROM customers WHERE customer_id IN (
                        SELECT customer_id FROM _unlinked EXCEPT SELECT customer_id
                        FROM customer_links
                        WHERE customer_id IN (SELECT customer_id FROM _unlinked))""")
            say("attaching events to customers")
            self._update_events()
            result.customers = int(self.store.scalar("SELECT count(*) FROM customers"))
            result.pending_reviews = int(self.store.scalar(
                "SELECT count(*) FROM identity_review WHERE status = 'pending'"))
            result.seconds = time.perf_counter() - started
            max_ing = self.store.scalar("SELECT max(ingestion_id) FROM ingestions")
            con.execute(
                "INSERT INTO identity_runs SELECT coalesce(max(run_id), 0) + 1, ?, ?, ?, ?, ?, ? "
                "FROM identity_runs",
                [mode, max_ing, result.records, result.customers, _now(), result.seconds],
            )

    # -- what a run reads ---------------------------------------------------------------
    def _changes(self, last_ingestion: int) -> None:
        """``_new_keys``: records loaded since the last run or never linked; ``_gone``:
        linked records that are no longer in the base."""
        self.con.execute("""
            CREATE OR REPLACE TEMP TABLE _delta AS
            SELECT coalesce(r.record_key, l.record_key) AS record_key,
                   r.record_key IS NULL AS gone
            FROM customer_records r FULL JOIN customer_links l USING (record_key)
            WHERE r.record_key IS NULL OR l.record_key IS NULL OR r.ingestion_id > ?
        """, [last_ingestion])
        self.con.execute("""
            CREATE OR REPLACE TEMP TABLE _new_keys AS
            SELECT record_key FROM _delta WHERE NOT gone;
            CREATE OR REPLACE TEMP TABLE _gone AS SELECT record_key FROM _delta WHERE gone
        """)

    def _score_new(self, result: IdentifyResult, say: Progress) -> pd.DataFrame | None:
        """The new records' scored pairs (empty when they cannot be scored, with a note);
        ``None`` when only a full run can score them."""
        try:
            from onetoone.identify._probabilistic import no_pairs, score_new_pairs
        except ImportError:  # the probabilistic step says so
            return pd.DataFrame({"unique_id_l": [], "unique_id_r": []})
        try:
            return score_new_pairs(self.store, self.settings, say)
        except Exception as error:
            result.notes.append("Probabilistic matching of the new records failed, so this "
                                f"run links them deterministically only ({_cause(error)}).")
            return no_pairs()

    def _scope(self, touched: list[str], scored: pd.DataFrame | None) -> None:
        """``_scope``: the records an incremental run rebuilds. Whole components of the
        last run's identity graph (``identity_graph``, where every record of a value held by
        few enough records to join any is in one component) that the new, removed and
        touched records reach: through their own component, an identifier value they share
        (held by few enough records before them) or a scored pair. A full run would find the
        same customers for these records, and leave the others as they are. It may list gone
        records: it is only read as a filter on ``customer_records``."""
        con = self.con
        most = self.settings.max_records_per_value
        con.register("_touched_view", pd.DataFrame({"record_key": pd.Series(
            touched, dtype="object")}))
        ends = scored[["unique_id_l", "unique_id_r"]] if scored is not None and \
            not scored.empty else pd.DataFrame({"unique_id_l": pd.Series(dtype="object"),
                                                "unique_id_r": pd.Series(dtype="object")})
        con.register("_ends_view", ends)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _seed AS
            SELECT record_key FROM _new_keys
            UNION SELECT record_key FROM _gone
            UNION SELECT record_key FROM _touched_view
            UNION SELECT unnest([unique_id_l, unique_id_r]) FROM _ends_view
            UNION SELECT record_key FROM (  -- the records of the new records' values
                SELECT *, sum(CASE WHEN new THEN 0 ELSE 1 END)
                          OVER (PARTITION BY type, value) AS old
                FROM (SELECT i.record_key, i.type, i.value,
                             i.record_key IN (SELECT record_key FROM _new_keys) AS new
                      FROM identifiers i
                      JOIN (SELECT DISTINCT type, value FROM identifiers
                            WHERE record_key IN (SELECT record_key FROM _new_keys)) v
                      USING (type, value)))
            WHERE old <= {most};
            CREATE OR REPLACE TEMP TABLE _scope AS
            SELECT record_key FROM identity_graph WHERE component IN
                (SELECT component FROM identity_graph
                 WHERE record_key IN (SELECT record_key FROM _seed))
            UNION SELECT record_key FROM _seed
        """).fetchall()
        con.unregister("_touched_view")
        con.unregister("_ends_view")

    def _widen_scope(self) -> bool:
        """Add to ``_scope`` the components of records outside it that a pair or a manual
        link joins to a record in it; whether there were any."""
        more = self.con.execute("""
            INSERT INTO _scope
            SELECT * FROM (
                WITH ends AS (
                    SELECT record_key_l AS l, record_key_r AS r FROM identity_review
                    WHERE status IN ('linked', 'accepted')
                    UNION ALL SELECT record_key, other_record_key FROM identity_overrides
                    WHERE kind = 'link'
                ), outside AS (
                    SELECT CASE WHEN l IN (SELECT record_key FROM _rec) THEN r ELSE l END AS key
                    FROM ends WHERE (l IN (SELECT record_key FROM _rec))
                                    <> (r IN (SELECT record_key FROM _rec))
                )
                SELECT record_key FROM identity_graph WHERE component IN
                    (SELECT component FROM identity_graph
                     WHERE record_key IN (SELECT key FROM outside))
                UNION SELECT key FROM outside)
            WHERE record_key NOT IN (SELECT record_key FROM _scope)
              AND record_key IN (SELECT record_key FROM customer_records)
            RETURNING 1
        """).fetchall()
        return bool(more)

    # -- graph --------------------------------------------------------------------------
    def _probabilistic(self, result: IdentifyResult, say: Progress,
                       scored: pd.DataFrame | None = None) -> None:
        try:
            from onetoone.identify._probabilistic import match_pairs
        except ImportError:
            result.notes.append("Probabilistic matching skipped: install 'onetoone[identify]' "
                                "for Splink.")
            return
        try:
            outcome = match_pairs(self.store, self.settings, say, scored=scored)
        except Exception as error:
            self.con.execute("DELETE FROM identity_review WHERE status IN ('linked', 'pending')")
            result.notes.append("Probabilistic matching failed, so this run links "
                                f"deterministically only ({_cause(error)}).")
            return
        result.probabilistic_links = outcome.links
        result.notes.extend(outcome.notes)

    def _all_edges(self, n_nodes: int) -> None:
        """``_edges(idx, nid, node, method, rank, prob, forced, soft)`` with integer node ids;
        ``soft`` edges (probabilistic pairs, records without a first name put in a shared
        value's largest group) must not join records the vetoes separate (:meth:`_cannot_link`)."""
        k = len(self.settings.identifier_priority) + 2
        self.con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _sep AS
            SELECT r.idx FROM identity_overrides o JOIN _rec r USING (record_key)
            WHERE o.kind = 'separate';
            CREATE OR REPLACE TEMP TABLE _sep_keys AS
            SELECT r.record_key FROM _sep JOIN _rec r USING (idx);
            CREATE OR REPLACE TEMP TABLE _other_edges AS
            SELECT * REPLACE ({n_nodes} + dense_rank() OVER (ORDER BY node) - 1 AS nid)
            FROM (
                SELECT r.idx, 'manual:' || o.record_key || '|' || o.other_record_key AS node,
                       'manual' AS method, 0 AS rank, 1.0::DOUBLE AS prob, true AS forced,
                       false AS soft, NULL::BIGINT AS nid
                FROM (SELECT *, unnest([record_key, other_record_key]) AS end_key
                      FROM identity_overrides WHERE kind = 'link') o
                JOIN _rec r ON r.record_key = o.end_key
                UNION ALL
                SELECT r.idx, 'pair:' || p.record_key_l || '|' || p.record_key_r,
                       CASE p.status WHEN 'accepted' THEN 'manual' ELSE 'probabilistic' END,
                       CASE p.status WHEN 'accepted' THEN 0 ELSE {k} END,
                       CASE p.status WHEN 'accepted' THEN 1.0 ELSE p.match_probability END,
                       p.status = 'accepted', p.status <> 'accepted', NULL
                FROM (SELECT *, unnest([record_key_l, record_key_r]) AS end_key
                      FROM identity_review
                      WHERE status = 'accepted' OR (status = 'linked'
                            AND record_key_l NOT IN (SELECT record_key FROM _sep_keys)
                            AND record_key_r NOT IN (SELECT record_key FROM _sep_keys))) p
                JOIN _rec r ON r.record_key = p.end_key);
            -- the id edges are read through, not copied: pair and manual nodes numbered after
            CREATE OR REPLACE TEMP VIEW _edges AS
            SELECT idx, node, 'deterministic:' || type AS method, rank, 1.0::DOUBLE AS prob,
                   false AS forced, guess AS soft, nid
            FROM _id_edges WHERE idx NOT IN (SELECT idx FROM _sep)
            UNION ALL
            SELECT * FROM _other_edges;
        """)

    def _components(self, n_records: int) -> np.ndarray:
        arrays = self.con.execute("SELECT idx, nid FROM _edges").fetchnumpy()
        rec = np.asarray(arrays["idx"], dtype=np.int64)
        nid = np.asarray(arrays["nid"], dtype=np.int64)
        return components(n_records, rec, nid)

    def _caps(self) -> dict[str, int]:
        caps = {f"u:{t}": 1 for t in self.settings.unique_per_person}
        caps["email"] = self.settings.max_emails_per_customer
        caps["bd"] = self.settings.max_birth_dates_per_customer
        return caps

    def _cannot_link(self) -> dict[str, set[tuple[int, int]]]:
        """Cannot-link pairs (``_cl(a, b, field)``) in the components that hold a
        probabilistic pair: two records the pairwise veto would keep apart (birth dates both
        known and more than a typo apart, first names clearly different), unless a
        probabilistic pair links the two directly (its veto was weighed, and maybe lifted)."""
        con = self.con
        if not self.settings.probabilistic_vetoes:
            con.execute("CREATE OR REPLACE TEMP TABLE _cl (a BIGINT, b BIGINT, field VARCHAR)")
            return {}
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _cl AS
            WITH prob AS (SELECT DISTINCT l.comp FROM _edges e JOIN _lab_view l USING (idx)
                          WHERE e.soft),
            recs AS (SELECT l.comp, r.idx, r.fn, r.ln, r.bd FROM _lab_view l
                     JOIN _rec r USING (idx) WHERE l.comp IN (SELECT comp FROM prob)
                       AND (r.fn IS NOT NULL OR r.bd IS NOT NULL)),
            direct AS (SELECT min(idx) AS a, max(idx) AS b FROM _other_edges
                       WHERE method = 'probabilistic' GROUP BY node HAVING count(*) = 2),
            pairs AS (SELECT x.idx AS a, y.idx AS b,
                             NOT {births_compatible('x.bd', 'y.bd')} AS bd,
                             coalesce({names_differ('x.fn', 'y.fn', 'x.ln', 'y.ln')}, false)
                             AS fn
                      FROM recs x JOIN recs y ON x.comp = y.comp AND x.idx < y.idx
                      WHERE x.bd <> y.bd OR x.fn <> y.fn)
            SELECT a, b, 'bd' AS field FROM pairs WHERE bd AND (a, b) NOT IN (FROM direct)
            UNION ALL
            SELECT a, b, 'fn' FROM pairs WHERE fn AND (a, b) NOT IN (FROM direct)
        """)
        cannot: dict[str, set[tuple[int, int]]] = {}
        for a, b, key in con.execute("SELECT a, b, field FROM _cl").fetchall():
            cannot.setdefault(str(key), set()).add((int(a), int(b)))
        return cannot

    def _apply_guards(self, labels: np.ndarray, n_records: int, ids: str) -> np.ndarray:
        """Rebuild, edge by edge, the components that hold too many values of a kind, or
        records a probabilistic pair must not put together (:meth:`_cannot_link`); ``ids``:
        a table of (at least) the run's records' identifiers."""
        con = self.con
        con.register("_lab_view", pd.DataFrame({"idx": np.arange(n_records),
                                                "comp": labels[:n_records]}))
        cannot = self._cannot_link()
        unique = ", ".join(q(t) for t in self.settings.unique_per_person) or "NULL"
        caps = self._caps()
        # Garbage values (test@test.com) count for no cap. Only a component over a cap with
        # them can be one without, so they are looked for there only: the test costs more
        # than reading every e-mail.
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _attr AS
            SELECT r.idx, i.type, CASE WHEN i.type = 'email' THEN 'email'
                                       ELSE 'u:' || i.type END AS key, i.value
            FROM {ids} i JOIN _rec r USING (record_key)
            WHERE i.type = 'email' OR i.type IN ({unique})
            UNION ALL
            SELECT idx, NULL, 'bd', bd::VARCHAR FROM _rec WHERE bd IS NOT NULL
        """)
        cap_case = " ".join(f"WHEN {q(k)} THEN {v}" for k, v in caps.items())

        def over_caps(among: str) -> str:
            return f"""
                SELECT DISTINCT comp FROM (
                    SELECT l.comp, a.key, count(DISTINCT a.value) AS n
                    FROM _attr a JOIN _lab_view l USING (idx) {among} GROUP BY ALL)
                WHERE n > CASE key {cap_case} ELSE 1000000 END
                UNION SELECT l.comp FROM _cl JOIN _lab_view l ON l.idx = _cl.a"""

        con.execute(f"CREATE OR REPLACE TEMP TABLE _maybe_bad AS {over_caps('')}")
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _maybe_values AS
            SELECT DISTINCT a.type, a.value FROM _attr a JOIN _lab_view l USING (idx)
            WHERE a.type IS NOT NULL AND l.comp IN (SELECT comp FROM _maybe_bad)""")
        con.execute(f"""
            DELETE FROM _attr WHERE (type, value) IN (
                SELECT (type, value) FROM (SELECT *, {garbage_parts()} FROM _maybe_values)
                WHERE {garbage_predicate(self.settings, parts=True)})""")
        bad = con.execute(over_caps("WHERE l.comp IN (SELECT comp FROM _maybe_bad)")
                          ).fetchnumpy()["comp"]
        if len(bad) == 0:
            con.unregister("_lab_view")
            return labels
        con.register("_bad", pd.DataFrame({"comp": np.asarray(bad, dtype=np.int64)}))
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _bad_rec AS
            SELECT idx, fn IS NOT NULL AS has_fn, bd IS NOT NULL AS has_bd FROM _rec
            WHERE idx IN (SELECT idx FROM _lab_view WHERE comp IN (SELECT comp FROM _bad))
        """)
        edges = con.execute("""
            SELECT e.idx, e.nid, e.forced, e.soft, e.method = 'probabilistic' FROM _edges e
            WHERE e.idx IN (SELECT idx FROM _bad_rec)
            ORDER BY e.forced DESC, e.soft, e.rank, e.prob DESC, e.node, e.idx
        """).fetchall()
        # A probabilistic pair is checked on every field; a record put in a shared value's
        # largest group for want of a first name, on first names (its group was a guess).
        checks: dict[tuple[bool, bool], bool | tuple[str, ...]] = {
            (True, True): True, (True, False): ("fn",)}
        known: dict[int, set[str]] = {}
        for idx, has_fn, has_bd in con.execute(
                "SELECT idx, has_fn, has_bd FROM _bad_rec ORDER BY idx").fetchall():
            known[int(idx)] = {k for k, v in (("fn", has_fn), ("bd", has_bd)) if v}
        values: dict[int, dict[str, set[str]]] = {}
        for idx, key, value in con.execute(
            "SELECT idx, key, value FROM _attr WHERE idx IN (SELECT idx FROM _bad_rec)"
        ).fetchall():
            values.setdefault(int(idx), {}).setdefault(str(key), set()).add(str(value))
        roots = guarded_components(
            np.fromiter(known, dtype=np.int64, count=len(known)),
            [(int(r), n_records + int(n), bool(f), checks.get((bool(s), bool(p)), False))
             for r, n, f, s, p in edges],
            values, caps, cannot, known,
        )
        con.unregister("_bad")
        con.unregister("_lab_view")
        labels = labels.copy()
        offset = int(labels.max()) + 1
        for item, root in roots.items():
            labels[item] = offset + root
        return labels

    def _write_labels(self, labels: np.ndarray, n_records: int) -> None:
        con = self.con
        frame = pd.DataFrame({"idx": np.arange(n_records, dtype=np.int64),
                              "comp": labels[:n_records]})
        con.register("_labels_view", frame)
        con.execute("CREATE OR REPLACE TEMP TABLE _comp AS SELECT * FROM _labels_view")
        con.unregister("_labels_view")
        nodes = pd.DataFrame({"nid": np.arange(len(labels) - n_records, dtype=np.int64),
                              "comp": labels[n_records:]})
        con.register("_nodes_view", nodes)
        con.execute("CREATE OR REPLACE TEMP TABLE _node_comp AS SELECT * FROM _nodes_view")
        con.unregister("_nodes_view")

    def _write_graph(self, raw: np.ndarray, n_records: int, scoped: bool) -> None:
        """``identity_graph``: each record's component before the guards (``raw``), the
        groups of a shared value (and the values of a record set apart by a person) joined,
        so that a value's records are all in one component; numbered by a hash of its
        smallest record key (``_rec`` is in record key order; DuckDB's string hash does
        collide, about once in 40,000 keys, and two components that collide are only rebuilt
        together)."""
        con = self.con
        whole = con.execute("""
            SELECT idx, vid AS node FROM _ids
            WHERE suspect OR idx IN (SELECT idx FROM _sep)""").fetchnumpy()
        labels = raw[:n_records]
        if len(whole["idx"]):
            labels = components(
                n_records, np.concatenate([np.arange(n_records), whole["idx"]]),
                np.concatenate([labels, int(labels.max()) + 1 + whole["node"]]))[:n_records]
        _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
        con.register("_graph_view", pd.DataFrame({"idx": np.arange(n_records, dtype=np.int64),
                                                  "first": first[inverse].astype(np.int64)}))
        if scoped:
            con.execute("DELETE FROM identity_graph WHERE record_key IN "
                        "(SELECT record_key FROM _rec UNION ALL SELECT record_key FROM _gone)")
        else:
            con.execute("DELETE FROM identity_graph")
        con.execute("""
            INSERT INTO identity_graph
            SELECT r.record_key, (hash(f.record_key) >> 1)::BIGINT FROM _graph_view g
            JOIN _rec r ON r.idx = g.idx JOIN _rec f ON f.idx = g.first
        """)
        con.unregister("_graph_view")

    # -- which customers change ---------------------------------------------------------
    def _affected(self) -> None:
        """``_old``: the run's records' links before it; in an incremental run, ``_aff(comp)``:
        the components to rewrite, those whose records changed customer and those holding a
        record the run started from (``_seed``: new, touched, sharing a value or a pair with
        a new record). A full run rewrites every one."""
        con = self.con
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _old AS
            SELECT r.idx, l.record_key, l.customer_id, l.linked_at FROM customer_links l
            JOIN _rec r USING (record_key)
        """)
        if self._every_comp:
            return
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _aff AS
            WITH per_comp AS (
                SELECT c.comp, count(*) AS n, count(DISTINCT o.customer_id) AS n_old,
                       count(o.customer_id) AS n_linked, any_value(o.customer_id) AS old_id
                FROM _comp c LEFT JOIN _old o USING (idx) GROUP BY c.comp
            ), old_size AS (  -- gone records counted: their customer changes
                SELECT customer_id, count(*) AS n FROM customer_links
                WHERE customer_id IN (SELECT customer_id FROM _old) GROUP BY ALL)
            SELECT p.comp FROM per_comp p LEFT JOIN old_size s ON s.customer_id = p.old_id
            WHERE NOT (p.n_old = 1 AND p.n_linked = p.n AND s.n = p.n)
               OR p.comp IN (SELECT c.comp FROM _comp c JOIN _rec r USING (idx)
                             WHERE r.record_key IN (SELECT record_key FROM _seed));
        """)

    def _affected_sql(self, comp: str) -> str:
        """SQL true for a component to rewrite (every one in a full run)."""
        return "true" if self._every_comp else f"{comp} IN (SELECT comp FROM _aff)"

    # -- stable ids ---------------------------------------------------------------------
    def _assign_ids(self, result: IdentifyResult, event_prefix: str,
                    reason: str | None) -> None:
        con = self.con
        now = _now()
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _share AS
            SELECT o.customer_id AS old_id, c.comp, count(*) AS n, min(c.idx) AS m
            FROM _old o JOIN _comp c USING (idx)
            WHERE {self._affected_sql('c.comp')} GROUP BY ALL;
            CREATE OR REPLACE TEMP TABLE _heir AS
            SELECT old_id, arg_max(comp, (n, -m)) AS comp FROM _share GROUP BY old_id;
            CREATE OR REPLACE TEMP TABLE _cid AS
            SELECT h.comp, arg_min(h.old_id, (coalesce(ci.created_at, TIMESTAMP '1900-01-01'),
                                              h.old_id)) AS customer_id
            FROM _heir h LEFT JOIN customer_ids ci ON ci.customer_id = h.old_id
            GROUP BY h.comp;
        """)
        # Components that inherit no id get a new one, derived from their first record.
        salt = 0
        while True:
            con.execute(f"""
                INSERT INTO _cid
                SELECT c.comp, {customer_id_sql('min(r.record_key)', str(salt) if salt else '')}
                FROM _comp c JOIN _rec r USING (idx)
                WHERE {self._affected_sql('c.comp')}
                  AND c.comp NOT IN (SELECT comp FROM _cid)
                GROUP BY c.comp
            """)
            clash = con.execute("""
                SELECT comp FROM (
                    SELECT comp, customer_id,
                           comp > min(comp) OVER (PARTITION BY customer_id) AS taken
                    FROM _cid) n
                WHERE n.comp NOT IN (SELECT comp FROM _heir) AND (
                    n.taken OR n.customer_id IN (SELECT customer_id FROM customer_ids))
            """).fetchall()
            if not clash:
                break
            con.execute("DELETE FROM _cid WHERE comp IN (" +
                        ", ".join(str(int(c[0])) for c in clash) + ")")
            salt += 1
        result.customers_new = int(self.store.scalar(
            "SELECT count(*) FROM _cid WHERE customer_id NOT IN "
            "(SELECT customer_id FROM customer_ids)"))
        con.execute("INSERT INTO customer_ids SELECT customer_id, ?, NULL, NULL FROM _cid "
                    "WHERE customer_id NOT IN (SELECT customer_id FROM customer_ids)", [now])
        merge_reason = reason or ("their records were found to be one person "
                                  "(see 'onetoone customer ID --why')")
        split_reason = reason or ("a guard or a manual decision separated records that "
                                  "were one customer")
        merges = con.execute(f"""
            INSERT INTO identity_events
            SELECT {q(event_prefix + 'merge')}, c.customer_id, h.old_id, ?, ?
            FROM _heir h JOIN _cid c USING (comp) WHERE h.old_id <> c.customer_id
            RETURNING other_customer_id, customer_id
        """, [merge_reason, now]).fetchall()
        result.merges = len(merges)
        if merges:
            con.executemany("UPDATE customer_ids SET retired_at = ?, merged_into = ? "
                            "WHERE customer_id = ?", [[now, s, o] for o, s in merges])
        splits = con.execute(f"""
            INSERT INTO identity_events
            SELECT DISTINCT {q(event_prefix + 'split')}, s.old_id, c.customer_id, ?, ?
            FROM _share s JOIN _heir h USING (old_id) JOIN _cid c ON c.comp = s.comp
            WHERE s.comp <> h.comp
            RETURNING 1
        """, [split_reason, now]).fetchall()
        result.splits = len(splits)
        con.execute("""CREATE OR REPLACE TEMP TABLE _affected_ids AS
                       SELECT customer_id FROM _cid UNION SELECT old_id FROM _heir""")

    # -- writing ------------------------------------------------------------------------
    def _write_links(self, result: IdentifyResult) -> None:
        """``customer_links`` of the components rewritten (every record's in a full run)."""
        con = self.con
        now = _now()
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _eff AS
            -- the strongest rank, then the likeliest: rank * 2 + (1 - prob) orders as
            -- (rank, -prob) does (prob within [0, 1]), without comparing structs
            SELECT e.idx, arg_min(e.method, e.rank * 2 + (1 - e.prob)) AS method,
                   max(e.prob) AS prob
            FROM _edges e JOIN _comp c USING (idx) JOIN _node_comp n USING (nid)
            WHERE c.comp = n.comp AND {self._affected_sql('c.comp')}
            GROUP BY e.idx
        """)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _links_new AS
            SELECT r.record_key, i.customer_id,
                   CASE WHEN s.size = 1 THEN 'singleton' ELSE coalesce(f.method, 'singleton')
                   END AS method,
                   CASE WHEN s.size = 1 THEN 1.0 ELSE coalesce(f.prob, 1.0) END AS prob,
                   o.customer_id AS old_id, o.linked_at AS old_linked_at
            FROM _comp c JOIN _rec r USING (idx) JOIN _cid i USING (comp)
            JOIN (SELECT comp, count(*) AS size FROM _comp GROUP BY comp) s USING (comp)
            LEFT JOIN _eff f USING (idx) LEFT JOIN _old o USING (idx)
            WHERE {self._affected_sql('c.comp')}
        """)
        result.records_relinked = int(self.store.scalar(
            "SELECT count(*) FROM _links_new WHERE old_id IS DISTINCT FROM customer_id"))
        # Records whose customer changes (or that are gone): the event rows to re-attach.
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _relinked AS
            SELECT record_key, customer_id FROM _links_new
            WHERE old_id IS DISTINCT FROM customer_id
            UNION ALL
            SELECT record_key, NULL FROM _gone
        """)
        if self._every_comp:
            con.execute("DELETE FROM customer_links")
        else:  # ``_unlinked``: the customers whose links are rewritten (some may be left none)
            unlinked = con.execute("""
                DELETE FROM customer_links WHERE record_key IN (SELECT record_key FROM _links_new)
                   OR record_key IN (SELECT record_key FROM _gone)
                RETURNING customer_id""").fetchnumpy()
            con.register("_unlinked_view", pd.DataFrame(unlinked))
            con.execute("CREATE OR REPLACE TEMP TABLE _unlinked AS "
                        "SELECT DISTINCT customer_id FROM _unlinked_view")
            con.unregister("_unlinked_view")
        con.execute("""
            INSERT INTO customer_links
            SELECT record_key, customer_id, method, prob,
                   CASE WHEN old_id = customer_id THEN coalesce(old_linked_at, ?) ELSE ? END
            FROM _links_new
        """, [now, now])

    def _update_events(self) -> None:
        """``customer_id`` of the event rows whose record changed customer in this run, and
        of the rows not attached yet (loaded since); the others already hold theirs.

        When most records changed customer (a first run), every row is looked up: each table's
        distinct customer records are joined to ``customer_links`` once, into a map no larger
        than the table, and the rows whose customer differs are updated in place. The table is
        then the join's probe side, so the rows are updated in row order; rewriting the table in
        row order (a sort of all its columns) took five times as long in a first run, and an
        update from a ``_relinked`` larger than the table (which the join then hashes, rows
        updated in hash order) ten times as long."""
        relinked = int(self.store.scalar("SELECT count(*) FROM _relinked"))
        linked = int(self.store.scalar("SELECT count(*) FROM customer_links"))
        for entity in ENTITIES.values():
            if not entity.is_event:
                continue
            table = ident(entity.table)
            if relinked > ATTACH_ALL_SHARE * linked:
                self.con.execute(f"""
                    CREATE OR REPLACE TEMP TABLE _event_links AS
                    SELECT k.record_key, l.customer_id
                    FROM (SELECT DISTINCT customer_record_key AS record_key FROM {table}
                          WHERE customer_record_key IS NOT NULL) k
                    LEFT JOIN customer_links l USING (record_key)
                """)
                self.con.execute(f"""
                    UPDATE {table} SET customer_id = m.customer_id FROM _event_links m
                    WHERE {table}.customer_record_key = m.record_key
                      AND {table}.customer_id IS DISTINCT FROM m.customer_id
                """)
                continue
            self.con.execute(f"""
                UPDATE {table} SET customer_id = c.customer_id FROM _relinked c
                WHERE {table}.customer_record_key = c.record_key
                  AND {table}.customer_id IS DISTINCT FROM c.customer_id
            """)
            self.con.execute(f"""
                UPDATE {table} SET customer_id = l.customer_id FROM customer_links l
                WHERE {table}.customer_id IS NULL
                  AND {table}.customer_record_key = l.record_key
            """)
        self.con.execute("DROP TABLE IF EXISTS _event_links")

    # -- manual decisions ---------------------------------------------------------------
    def _records_of(self, customer_id: str) -> list[str]:
        keys = [r[0] for r in self.con.execute(
            "SELECT record_key FROM customer_links WHERE customer_id = ? ORDER BY record_key",
            [customer_id]).fetchall()]
        if not keys:
            merged = self.store.scalar(
                "SELECT merged_into FROM customer_ids WHERE customer_id = ?", [customer_id])
            hint = (f"It was merged into {merged}." if merged
                    else "List customers with 'onetoone customer'.")
            raise NotFoundError(f"No customer {customer_id}.", hint=hint)
        return keys

    def merge(self, customer_a: str, customer_b: str, reason: str = "") -> IdentifyResult:
        """Make two customers one (the older id survives); remembered by later runs."""
        keys_a, keys_b = self._records_of(customer_a), self._records_of(customer_b)
        if customer_a == customer_b:
            raise OneToOneError(f"{customer_a} and {customer_b} are the same customer.")
        self.con.execute("INSERT INTO identity_overrides VALUES ('link', ?, ?, ?, ?)",
                         [keys_a[0], keys_b[0], reason or "merged by a person", _now()])
        self.con.execute("DELETE FROM identity_overrides WHERE kind = 'separate' "
                         "AND record_key IN (?, ?)", [keys_a[0], keys_b[0]])
        return self.run(touched=keys_a + keys_b, event_prefix="manual_",
                        reason=reason or "merged by a person")

    def unmerge(self, record_key: str, reason: str = "") -> IdentifyResult:
        """Take one record out of its customer, for good (it becomes its own customer)."""
        row = self.con.execute("SELECT customer_id FROM customer_links WHERE record_key = ?",
                               [record_key]).fetchone()
        if row is None:
            raise NotFoundError(f"No linked record {record_key}.",
                                hint="Record keys look like 'crm:1234'; run identify first.")
        keys = self._records_of(str(row[0]))
        self.con.execute("DELETE FROM identity_overrides WHERE kind = 'link' AND "
                         "(record_key = ? OR other_record_key = ?)", [record_key, record_key])
        self.con.execute("UPDATE identity_review SET status = 'rejected', decided_at = ? "
                         "WHERE status IN ('linked', 'accepted') AND ? IN "
                         "(record_key_l, record_key_r)", [_now(), record_key])
        self.con.execute("INSERT INTO identity_overrides VALUES ('separate', ?, NULL, ?, ?)",
                         [record_key, reason or "separated by a person", _now()])
        return self.run(touched=keys, event_prefix="manual_",
                        reason=reason or f"record {record_key} separated by a person")

    def decide(self, record_key_l: str, record_key_r: str, accept: bool) -> IdentifyResult:
        """A person's answer to a pair in the review band; remembered by later runs."""
        left, right = sorted((record_key_l, record_key_r))
        found = self.con.execute(
            "UPDATE identity_review SET status = ?, decided_at = ? "
            "WHERE record_key_l = ? AND record_key_r = ? RETURNING 1",
            ["accepted" if accept else "rejected", _now(), left, right]).fetchall()
        if not found:
            raise NotFoundError(f"No pair {left} / {right} in the review list.",
                                hint="See 'onetoone identify review'.")
        return self.run(touched=[left, right], event_prefix="review_",
                        reason="accepted by a person" if accept else "rejected by a person")
