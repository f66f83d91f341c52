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
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from onetoone.clock import utcnow
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
from onetoone.identify._run_tables import TABLES
from onetoone.identify.settings import IdentifySettings
from onetoone.ingest._normalize import ident, q
from onetoone.progress import Progress, silent, within
from onetoone.schema import ENTITIES
from onetoone.store import Connection, Store, drop_frame, engine_settings, show_frame

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

    def summary(self) -> dict[str, Any]:
        """As plain data (a job's result); ``IdentifyResult(**summary)`` reads it back."""
        return asdict(self)



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
        say = progress or silent
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
        with engine_settings(con, memory_limit=MEMORY_LIMIT, preserve_insertion_order=False):
            self._run(result, mode, last_ingestion, touched, event_prefix, reason, say)
        result.seconds = time.perf_counter() - started
        return result

    def _run(self, result: IdentifyResult, mode: str, last_ingestion: int,
             touched: list[str] | None, event_prefix: str, reason: str | None,
             say: Progress) -> None:
        started = time.perf_counter()
        con = self.con
        t = TABLES  # the steps' tables, named in each step's arguments and results
        with self.store.transaction():
            say("reading records", 0.0)
            new_keys, gone = self._changes(last_ingestion)
            scored: pd.DataFrame | None = None
            if mode == "incremental" and self.settings.probabilistic:
                say("probabilistic matching of the new records", 0.05)
                scored = self._score_new(result, within(say, 0.05, 0.1))
                if scored is None:
                    say("the saved model does not fit the records: a full run", 0.1)
                    mode = result.mode = "full"
            scoped = mode == "incremental"
            self._every_comp = not scoped
            seed, scope = t.seed, t.scope  # made and read in an incremental run only
            if scoped:
                seed, scope = self._scope(touched or [], scored, new_keys=new_keys, gone=gone)
            while True:  # again when a matched pair leaves the scope (it only grows)
                build_records(con, scope if scoped else None)  # writes t.rec
                con.execute(f"CREATE OR REPLACE TEMP TABLE {t.new} AS SELECT idx, record_key "
                            f"FROM {t.rec} WHERE record_key IN (SELECT record_key FROM "
                            f"{new_keys})")
                say("stitching identifiers", 0.1)
                # writes t.value_ids, t.id_edges (and t.rec_ids when scoped)
                n_nodes = build_identifier_edges(con, self.settings, scoped=scoped)
                if self.settings.probabilistic:
                    if not scoped:
                        say("probabilistic matching", 0.2)
                    self._probabilistic(result, within(say, 0.2, 0.6), scored)
                if not scoped or not self._widen_scope(rec=t.rec, scope=scope):
                    break
            n_records = int(self.store.scalar(f"SELECT count(*) FROM {t.rec}"))
            result.records = int(self.store.scalar("SELECT count(*) FROM customer_records"))
            result.records_rebuilt = n_records
            sep, other_edges, edges = self._all_edges(n_nodes, rec=t.rec, id_edges=t.id_edges)
            raw = self._components(n_records, edges=edges)
            self._write_graph(raw, n_records, scoped, rec=t.rec, value_ids=t.value_ids,
                              sep=sep, gone=gone)
            say("guarding against over-merging", 0.6)
            labels = self._apply_guards(raw, n_records, t.rec_ids if scoped else "identifiers",
                                        rec=t.rec, edges=edges, other_edges=other_edges)
            comp, node_comp = self._write_labels(labels, n_records)
            old, aff = self._affected(rec=t.rec, comp=comp, seed=seed)
            say("assigning stable customer ids", 0.7)
            cid, affected_ids = self._assign_ids(result, event_prefix, reason, rec=t.rec,
                                                 comp=comp, old=old, aff=aff)
            links_new, relinked, unlinked = self._write_links(
                result, rec=t.rec, edges=edges, comp=comp, node_comp=node_comp, cid=cid,
                old=old, gone=gone, aff=aff)
            say("building golden records", 0.85)
            rebuild_golden(con, self.settings, affected_ids if scoped else None, links_new)
            if scoped:  # customers left without records (a full run rebuilt every one)
                con.execute(f"""
                    DELETE FROM customers WHERE customer_id IN (
                        SELECT customer_id FROM {unlinked} EXCEPT SELECT customer_id
                        FROM customer_links
                        WHERE customer_id IN (SELECT customer_id FROM {unlinked}))""")
            say("attaching events to customers", 0.93)
            self._update_events(relinked=relinked)
            result.customers = int(self.store.scalar("SELECT count(*) FROM customers"))
            result.pending_reviews = int(self.store.scalar(
                "SELECT count(*) FROM identity_review WHERE status = 'pending'"))
            result.seconds = time.perf_counter() - started
            max_ing = self.store.scalar("SELECT max(ingestion_id) FROM ingestions")
            con.execute(
                "INSERT INTO identity_runs SELECT coalesce(max(run_id), 0) + 1, ?, ?, ?, ?, ?, ? "
                "FROM identity_runs",
                [mode, max_ing, result.records, result.customers, utcnow(), result.seconds],
            )

    # -- what a run reads ---------------------------------------------------------------
    def _changes(self, last_ingestion: int) -> tuple[str, str]:
        """Writes ``new_keys``: records loaded since the last run, never linked, or outside
        its graph (the service's own records made since, with their singleton links: one made
        while the last run's transaction was open, for an identifier of a record that run
        linked, is stitched to it now); ``gone``: linked records that are no longer in the
        base (returned in that order)."""
        t = TABLES
        self.con.execute("""
            CREATE OR REPLACE TEMP TABLE _delta AS
            SELECT coalesce(r.record_key, l.record_key) AS record_key,
                   r.record_key IS NULL AS gone
            FROM customer_records r FULL JOIN customer_links l USING (record_key)
            WHERE r.record_key IS NULL OR l.record_key IS NULL OR r.ingestion_id > ?
               OR r.record_key NOT IN (SELECT record_key FROM identity_graph)
        """, [last_ingestion])
        self.con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {t.new_keys} AS
            SELECT record_key FROM _delta WHERE NOT gone;
            CREATE OR REPLACE TEMP TABLE {t.gone} AS SELECT record_key FROM _delta WHERE gone
        """)
        return t.new_keys, t.gone

    def _score_new(self, result: IdentifyResult, say: Progress) -> pd.DataFrame | None:
        """The new records' scored pairs (empty when they cannot be scored, with a note);
        ``None`` when only a full run can score them. :func:`._probabilistic.score_new_pairs`
        reads ``new_keys`` and ``gone`` (:data:`._run_tables.TABLES`) by name."""
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

    def _scope(self, touched: list[str], scored: pd.DataFrame | None, *, new_keys: str,
               gone: str) -> tuple[str, str]:
        """Writes ``seed`` and ``scope`` (returned in that order); ``scope``: the records an
        incremental run rebuilds. Whole components of the
        last run's identity graph (``identity_graph``, where every record of a value held by
        few enough records to join any is in one component) that the new, removed and
        touched records reach: through their own component, an identifier value they share
        (held by few enough records before them) or a scored pair. A full run would find the
        same customers for these records, and leave the others as they are. It may list gone
        records: it is only read as a filter on ``customer_records``."""
        con = self.con
        seed, scope = TABLES.seed, TABLES.scope
        most = self.settings.max_records_per_value
        show_frame(con, "_touched_view", pd.DataFrame({"record_key": pd.Series(
            touched, dtype="object")}))
        ends = scored[["unique_id_l", "unique_id_r"]] if scored is not None and \
            not scored.empty else pd.DataFrame({"unique_id_l": pd.Series(dtype="object"),
                                                "unique_id_r": pd.Series(dtype="object")})
        show_frame(con, "_ends_view", ends)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {seed} AS
            SELECT record_key FROM {new_keys}
            UNION SELECT record_key FROM {gone}
            UNION SELECT record_key FROM _touched_view
            UNION SELECT unnest([unique_id_l, unique_id_r]) FROM _ends_view
            UNION SELECT record_key FROM (  -- the records of the new records' values
                SELECT *, sum(CASE WHEN new THEN 0 ELSE 1 END)
                          OVER (PARTITION BY type, value) AS old
                FROM (SELECT i.record_key, i.type, i.value,
                             i.record_key IN (SELECT record_key FROM {new_keys}) AS new
                      FROM identifiers i
                      JOIN (SELECT DISTINCT type, value FROM identifiers
                            WHERE record_key IN (SELECT record_key FROM {new_keys})) v
                      USING (type, value)))
            WHERE old <= {most};
            CREATE OR REPLACE TEMP TABLE {scope} AS
            SELECT record_key FROM identity_graph WHERE component IN
                (SELECT component FROM identity_graph
                 WHERE record_key IN (SELECT record_key FROM {seed}))
            UNION SELECT record_key FROM {seed}
        """).fetchall()
        drop_frame(con, "_touched_view")
        drop_frame(con, "_ends_view")
        return seed, scope

    def _widen_scope(self, *, rec: str, scope: str) -> bool:
        """Add to ``scope`` the components of records outside it (outside ``rec``) that a pair
        or a manual link joins to a record in it; whether there were any."""
        more = self.con.execute(f"""
            INSERT INTO {scope}
            SELECT * FROM (
                WITH ends AS (
                    SELECT record_key_l AS l, record_key_r AS r FROM identity_review
                    WHERE status IN ('linked', 'accepted')
                    UNION ALL SELECT record_key, other_record_key FROM identity_overrides
                    WHERE kind = 'link'
                ), outside AS (
                    SELECT CASE WHEN l IN (SELECT record_key FROM {rec}) THEN r ELSE l END AS key
                    FROM ends WHERE (l IN (SELECT record_key FROM {rec}))
                                    <> (r IN (SELECT record_key FROM {rec}))
                )
                SELECT record_key FROM identity_graph WHERE component IN
                    (SELECT component FROM identity_graph
                     WHERE record_key IN (SELECT key FROM outside))
                UNION SELECT key FROM outside)
            WHERE record_key NOT IN (SELECT record_key FROM {scope})
              AND record_key IN (SELECT record_key FROM customer_records)
            RETURNING 1
        """).fetchall()
        return bool(more)

    # -- graph --------------------------------------------------------------------------
    def _probabilistic(self, result: IdentifyResult, say: Progress,
                       scored: pd.DataFrame | None = None) -> None:
        """Probabilistic pairs into ``identity_review`` (:func:`._probabilistic.match_pairs`,
        which reads ``rec``, ``id_edges`` and ``new`` of :data:`._run_tables.TABLES` by
        name)."""
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

    def _all_edges(self, n_nodes: int, *, rec: str, id_edges: str) -> tuple[str, str, str]:
        """Writes ``edges(idx, nid, node, method, rank, prob, forced, soft)`` with integer node
        ids: the identifier edges (``id_edges``) and ``other_edges`` (manual links and
        probabilistic pairs), less the identifier edges of the records a person set apart
        (``sep``); returns ``sep``, ``other_edges``, ``edges``. ``soft`` edges (probabilistic
        pairs, records without a first name put in a shared value's largest group) must not
        join records the vetoes separate (:meth:`_cannot_link`)."""
        t = TABLES
        k = len(self.settings.identifier_priority) + 2
        self.con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {t.sep} AS
            SELECT r.idx FROM identity_overrides o JOIN {rec} r USING (record_key)
            WHERE o.kind = 'separate';
            CREATE OR REPLACE TEMP TABLE _sep_keys AS
            SELECT r.record_key FROM {t.sep} JOIN {rec} r USING (idx);
            CREATE OR REPLACE TEMP TABLE {t.other_edges} AS
            SELECT * REPLACE ({n_nodes} + dense_rank() OVER (ORDER BY node) - 1 AS nid)
            FROM (
                SELECT r.idx, 'manual:' || o.record_key || '|' || o.other_record_key AS node,
                       'manual' AS method, 0 AS rank, 1.0::DOUBLE AS prob, true AS forced,
                       false AS soft, NULL::BIGINT AS nid
                FROM (SELECT *, unnest([record_key, other_record_key]) AS end_key
                      FROM identity_overrides WHERE kind = 'link') o
                JOIN {rec} r ON r.record_key = o.end_key
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
                JOIN {rec} r ON r.record_key = p.end_key);
            -- the id edges are read through, not copied: pair and manual nodes numbered after
            CREATE OR REPLACE TEMP VIEW {t.edges} AS
            SELECT idx, node, 'deterministic:' || type AS method, rank, 1.0::DOUBLE AS prob,
                   false AS forced, guess AS soft, nid
            FROM {id_edges} WHERE idx NOT IN (SELECT idx FROM {t.sep})
            UNION ALL
            SELECT * FROM {t.other_edges};
        """)
        return t.sep, t.other_edges, t.edges

    def _components(self, n_records: int, *, edges: str) -> np.ndarray:
        """Each record's (then each node's) connected component over ``edges``."""
        arrays = self.con.execute(f"SELECT idx, nid FROM {edges}").fetchnumpy()
        rec = np.asarray(arrays["idx"], dtype=np.int64)
        nid = np.asarray(arrays["nid"], dtype=np.int64)
        return components(n_records, rec, nid)

    def _caps(self) -> dict[str, int]:
        caps = {f"u:{t}": 1 for t in self.settings.unique_per_person}
        caps["email"] = self.settings.max_emails_per_customer
        caps["bd"] = self.settings.max_birth_dates_per_customer
        return caps

    def _cannot_link(self, *, rec: str, edges: str, other_edges: str,
                     raw_labels: str) -> tuple[str, dict[str, set[tuple[int, int]]]]:
        """Writes the cannot-link pairs (``cannot_link(a, b, field)``) in the components
        (``raw_labels``) that hold a probabilistic pair: two records the pairwise veto would
        keep apart (birth dates both known and more than a typo apart, first names clearly
        different), unless a probabilistic pair links the two directly (its veto was weighed,
        and maybe lifted); returns the table and the pairs by field."""
        con = self.con
        cl = TABLES.cannot_link
        if not self.settings.probabilistic_vetoes:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {cl} (a BIGINT, b BIGINT, field VARCHAR)")
            return cl, {}
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {cl} AS
            WITH prob AS (SELECT DISTINCT l.comp FROM {edges} e JOIN {raw_labels} l USING (idx)
                          WHERE e.soft),
            recs AS (SELECT l.comp, r.idx, r.fn, r.ln, r.bd FROM {raw_labels} l
                     JOIN {rec} r USING (idx) WHERE l.comp IN (SELECT comp FROM prob)
                       AND (r.fn IS NOT NULL OR r.bd IS NOT NULL)),
            direct AS (SELECT min(idx) AS a, max(idx) AS b FROM {other_edges}
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
        for a, b, key in con.execute(f"SELECT a, b, field FROM {cl}").fetchall():
            cannot.setdefault(str(key), set()).add((int(a), int(b)))
        return cl, cannot

    def _apply_guards(self, labels: np.ndarray, n_records: int, ids: str, *, rec: str,
                      edges: str, other_edges: str) -> np.ndarray:
        """Rebuild, edge by edge (``edges``), the components that hold too many values of a
        kind, or records a probabilistic pair must not put together (:meth:`_cannot_link`);
        ``ids``: a table of (at least) the run's records' identifiers. Writes ``raw_labels``
        (``labels``, while it runs) and ``cannot_link``."""
        con = self.con
        lab = TABLES.raw_labels
        show_frame(con, lab, pd.DataFrame({"idx": np.arange(n_records),
                                        "comp": labels[:n_records]}))
        cl, cannot = self._cannot_link(rec=rec, edges=edges, other_edges=other_edges,
                                       raw_labels=lab)
        unique = ", ".join(q(t) for t in self.settings.unique_per_person) or "NULL"
        caps = self._caps()
        # Garbage values (test@test.com) count for no cap. Only a component over a cap with
        # them can be one without, so they are looked for there only: the test costs more
        # than reading every e-mail.
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _attr AS
            SELECT r.idx, i.type, CASE WHEN i.type = 'email' THEN 'email'
                                       ELSE 'u:' || i.type END AS key, i.value
            FROM {ids} i JOIN {rec} r USING (record_key)
            WHERE i.type = 'email' OR i.type IN ({unique})
            UNION ALL
            SELECT idx, NULL, 'bd', bd::VARCHAR FROM {rec} WHERE bd IS NOT NULL
        """)
        cap_case = " ".join(f"WHEN {q(k)} THEN {v}" for k, v in caps.items())

        def over_caps(among: str) -> str:
            return f"""
                SELECT DISTINCT comp FROM (
                    SELECT l.comp, a.key, count(DISTINCT a.value) AS n
                    FROM _attr a JOIN {lab} l USING (idx) {among} GROUP BY ALL)
                WHERE n > CASE key {cap_case} ELSE 1000000 END
                UNION SELECT l.comp FROM {cl} JOIN {lab} l ON l.idx = {cl}.a"""

        con.execute(f"CREATE OR REPLACE TEMP TABLE _maybe_bad AS {over_caps('')}")
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _maybe_values AS
            SELECT DISTINCT a.type, a.value FROM _attr a JOIN {lab} l USING (idx)
            WHERE a.type IS NOT NULL AND l.comp IN (SELECT comp FROM _maybe_bad)""")
        con.execute(f"""
            DELETE FROM _attr WHERE (type, value) IN (
                SELECT (type, value) FROM (SELECT *, {garbage_parts()} FROM _maybe_values)
                WHERE {garbage_predicate(self.settings, parts=True)})""")
        bad = con.execute(over_caps("WHERE l.comp IN (SELECT comp FROM _maybe_bad)")
                          ).fetchnumpy()["comp"]
        if len(bad) == 0:
            drop_frame(con, lab)
            return labels
        show_frame(con, "_bad", pd.DataFrame({"comp": np.asarray(bad, dtype=np.int64)}))
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _bad_rec AS
            SELECT idx, fn IS NOT NULL AS has_fn, bd IS NOT NULL AS has_bd FROM {rec}
            WHERE idx IN (SELECT idx FROM {lab} WHERE comp IN (SELECT comp FROM _bad))
        """)
        edge_rows = con.execute(f"""
            SELECT e.idx, e.nid, e.forced, e.soft, e.method = 'probabilistic' FROM {edges} e
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
             for r, n, f, s, p in edge_rows],
            values, caps, cannot, known,
        )
        drop_frame(con, "_bad")
        drop_frame(con, lab)
        labels = labels.copy()
        offset = int(labels.max()) + 1
        for item, root in roots.items():
            labels[item] = offset + root
        return labels

    def _write_labels(self, labels: np.ndarray, n_records: int) -> tuple[str, str]:
        """Writes the records' components (``comp``) and the nodes' (``node_comp``) after
        the guards, from ``labels``; returns the two tables."""
        con = self.con
        t = TABLES
        frame = pd.DataFrame({"idx": np.arange(n_records, dtype=np.int64),
                              "comp": labels[:n_records]})
        show_frame(con, "_labels_view", frame)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {t.comp} AS SELECT * FROM _labels_view")
        drop_frame(con, "_labels_view")
        nodes = pd.DataFrame({"nid": np.arange(len(labels) - n_records, dtype=np.int64),
                              "comp": labels[n_records:]})
        show_frame(con, "_nodes_view", nodes)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {t.node_comp} AS SELECT * FROM _nodes_view")
        drop_frame(con, "_nodes_view")
        return t.comp, t.node_comp

    def _write_graph(self, raw: np.ndarray, n_records: int, scoped: bool, *, rec: str,
                     value_ids: str, sep: str, gone: str) -> None:
        """``identity_graph``: each record's component before the guards (``raw``), the
        groups of a shared value (``value_ids``; and the values of a record set apart by a
        person, ``sep``) joined,
        so that a value's records are all in one component; numbered by a hash of its
        smallest record key (``rec`` is in record key order; DuckDB's string hash does
        collide, about once in 40,000 keys, and two components that collide are only rebuilt
        together). A scoped run replaces the rows of ``rec`` and ``gone``."""
        con = self.con
        whole = con.execute(f"""
            SELECT idx, vid AS node FROM {value_ids}
            WHERE suspect OR idx IN (SELECT idx FROM {sep})""").fetchnumpy()
        labels = raw[:n_records]
        if len(whole["idx"]):
            labels = components(
                n_records, np.concatenate([np.arange(n_records), whole["idx"]]),
                np.concatenate([labels, int(labels.max()) + 1 + whole["node"]]))[:n_records]
        _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
        show_frame(con, "_graph_view", pd.DataFrame({"idx": np.arange(n_records, dtype=np.int64),
                                                  "first": first[inverse].astype(np.int64)}))
        if scoped:
            con.execute("DELETE FROM identity_graph WHERE record_key IN "
                        f"(SELECT record_key FROM {rec} UNION ALL SELECT record_key FROM {gone})")
        else:
            con.execute("DELETE FROM identity_graph")
        con.execute(f"""
            INSERT INTO identity_graph
            SELECT r.record_key, (hash(f.record_key) >> 1)::BIGINT FROM _graph_view g
            JOIN {rec} r ON r.idx = g.idx JOIN {rec} f ON f.idx = g.first
        """)
        drop_frame(con, "_graph_view")

    # -- which customers change ---------------------------------------------------------
    def _affected(self, *, rec: str, comp: str, seed: str) -> tuple[str, str]:
        """Writes ``old``: the run's records' links before it; in an incremental run,
        ``aff(comp)``: the components to rewrite, those whose records changed customer and
        those holding a record the run started from (``seed``: new, touched, sharing a value
        or a pair with a new record). A full run rewrites every one (``aff`` is not made).
        Returns ``old``, ``aff``."""
        con = self.con
        old, aff = TABLES.old, TABLES.aff
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {old} AS
            SELECT r.idx, l.record_key, l.customer_id, l.linked_at FROM customer_links l
            JOIN {rec} r USING (record_key)
        """)
        if self._every_comp:
            return old, aff
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {aff} AS
            WITH per_comp AS (
                SELECT c.comp, count(*) AS n, count(DISTINCT o.customer_id) AS n_old,
                       count(o.customer_id) AS n_linked, any_value(o.customer_id) AS old_id
                FROM {comp} c LEFT JOIN {old} o USING (idx) GROUP BY c.comp
            ), old_size AS (  -- gone records counted: their customer changes
                SELECT customer_id, count(*) AS n FROM customer_links
                WHERE customer_id IN (SELECT customer_id FROM {old}) GROUP BY ALL)
            SELECT p.comp FROM per_comp p LEFT JOIN old_size s ON s.customer_id = p.old_id
            WHERE NOT (p.n_old = 1 AND p.n_linked = p.n AND s.n = p.n)
               OR p.comp IN (SELECT c.comp FROM {comp} c JOIN {rec} r USING (idx)
                             WHERE r.record_key IN (SELECT record_key FROM {seed}));
        """)
        return old, aff

    def _affected_sql(self, comp: str, aff: str) -> str:
        """SQL true for a component (column ``comp``) to rewrite: one in ``aff``, every one in
        a full run."""
        return "true" if self._every_comp else f"{comp} IN (SELECT comp FROM {aff})"

    # -- stable ids ---------------------------------------------------------------------
    def _assign_ids(self, result: IdentifyResult, event_prefix: str, reason: str | None, *,
                    rec: str, comp: str, old: str, aff: str) -> tuple[str, str]:
        """Writes ``cid``: each rewritten component's (``comp``, in ``aff``) stable customer
        id, inherited from the old customers (``old``) whose records it mostly holds, else
        new; the merges and splits (``identity_events``, ``customer_ids``); and
        ``affected_ids``: the customers old and new of the components rewritten. Returns
        ``cid``, ``affected_ids``."""
        con = self.con
        cid, affected_ids = TABLES.cid, TABLES.affected_ids
        now = utcnow()
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _share AS
            SELECT o.customer_id AS old_id, c.comp, count(*) AS n, min(c.idx) AS m
            FROM {old} o JOIN {comp} c USING (idx)
            WHERE {self._affected_sql('c.comp', aff)} GROUP BY ALL;
            CREATE OR REPLACE TEMP TABLE _heir AS
            SELECT old_id, arg_max(comp, (n, -m)) AS comp FROM _share GROUP BY old_id;
            CREATE OR REPLACE TEMP TABLE {cid} AS
            SELECT h.comp, arg_min(h.old_id, (coalesce(ci.created_at, TIMESTAMP '1900-01-01'),
                                              h.old_id)) AS customer_id
            FROM _heir h LEFT JOIN customer_ids ci ON ci.customer_id = h.old_id
            GROUP BY h.comp;
        """)
        # Components that inherit no id get a new one, derived from their first record.
        salt = 0
        while True:
            con.execute(f"""
                INSERT INTO {cid}
                SELECT c.comp, {customer_id_sql('min(r.record_key)', str(salt) if salt else '')}
                FROM {comp} c JOIN {rec} r USING (idx)
                WHERE {self._affected_sql('c.comp', aff)}
                  AND c.comp NOT IN (SELECT comp FROM {cid})
                GROUP BY c.comp
            """)
            clash = con.execute(f"""
                SELECT comp FROM (
                    SELECT comp, customer_id,
                           comp > min(comp) OVER (PARTITION BY customer_id) AS taken
                    FROM {cid}) n
                WHERE n.comp NOT IN (SELECT comp FROM _heir) AND (
                    n.taken OR n.customer_id IN (SELECT customer_id FROM customer_ids))
            """).fetchall()
            if not clash:
                break
            con.execute(f"DELETE FROM {cid} WHERE comp IN (" +
                        ", ".join(str(int(c[0])) for c in clash) + ")")
            salt += 1
        result.customers_new = int(self.store.scalar(
            f"SELECT count(*) FROM {cid} WHERE customer_id NOT IN "
            "(SELECT customer_id FROM customer_ids)"))
        con.execute(f"INSERT INTO customer_ids SELECT customer_id, ?, NULL, NULL FROM {cid} "
                    "WHERE customer_id NOT IN (SELECT customer_id FROM customer_ids)", [now])
        merge_reason = reason or ("their records were found to be one person "
                                  "(see 'onetoone customer ID --why')")
        split_reason = reason or ("a guard or a manual decision separated records that "
                                  "were one customer")
        merges = con.execute(f"""
            INSERT INTO identity_events
            SELECT {q(event_prefix + 'merge')}, c.customer_id, h.old_id, ?, ?
            FROM _heir h JOIN {cid} c USING (comp) WHERE h.old_id <> c.customer_id
            RETURNING other_customer_id, customer_id
        """, [merge_reason, now]).fetchall()
        result.merges = len(merges)
        if merges:
            con.executemany("UPDATE customer_ids SET retired_at = ?, merged_into = ? "
                            "WHERE customer_id = ?", [[now, s, o] for o, s in merges])
        splits = con.execute(f"""
            INSERT INTO identity_events
            SELECT DISTINCT {q(event_prefix + 'split')}, s.old_id, c.customer_id, ?, ?
            FROM _share s JOIN _heir h USING (old_id) JOIN {cid} c ON c.comp = s.comp
            WHERE s.comp <> h.comp
            RETURNING 1
        """, [split_reason, now]).fetchall()
        result.splits = len(splits)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE {affected_ids} AS
                       SELECT customer_id FROM {cid} UNION SELECT old_id FROM _heir""")
        return cid, affected_ids

    # -- writing ------------------------------------------------------------------------
    def _write_links(self, result: IdentifyResult, *, rec: str, edges: str, comp: str,
                     node_comp: str, cid: str, old: str, gone: str,
                     aff: str) -> tuple[str, str, str]:
        """``customer_links`` of the components rewritten (every record's in a full run), each
        record's method and probability those of its strongest edge (``edges``) within its
        component. Writes ``links_new`` (the new links), ``relinked`` (records whose customer
        changed, or ``gone``) and, in an incremental run, ``unlinked`` (the customers whose
        links were rewritten); returns the three."""
        con = self.con
        t = TABLES
        links_new = t.links_new
        now = utcnow()
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _eff AS
            -- the strongest rank, then the likeliest: rank * 2 + (1 - prob) orders as
            -- (rank, -prob) does (prob within [0, 1]), without comparing structs
            SELECT e.idx, arg_min(e.method, e.rank * 2 + (1 - e.prob)) AS method,
                   max(e.prob) AS prob
            FROM {edges} e JOIN {comp} c USING (idx) JOIN {node_comp} n USING (nid)
            WHERE c.comp = n.comp AND {self._affected_sql('c.comp', aff)}
            GROUP BY e.idx
        """)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {t.links_new} AS
            SELECT r.record_key, i.customer_id,
                   CASE WHEN s.size = 1 THEN 'singleton' ELSE coalesce(f.method, 'singleton')
                   END AS method,
                   CASE WHEN s.size = 1 THEN 1.0 ELSE coalesce(f.prob, 1.0) END AS prob,
                   o.customer_id AS old_id, o.linked_at AS old_linked_at
            FROM {comp} c JOIN {rec} r USING (idx) JOIN {cid} i USING (comp)
            JOIN (SELECT comp, count(*) AS size FROM {comp} GROUP BY comp) s USING (comp)
            LEFT JOIN _eff f USING (idx) LEFT JOIN {old} o USING (idx)
            WHERE {self._affected_sql('c.comp', aff)}
        """)
        result.records_relinked = int(self.store.scalar(
            f"SELECT count(*) FROM {t.links_new} WHERE old_id IS DISTINCT FROM customer_id"))
        # Records whose customer changes (or that are gone): the event rows to re-attach.
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {t.relinked} AS
            SELECT record_key, customer_id FROM {t.links_new}
            WHERE old_id IS DISTINCT FROM customer_id
            UNION ALL
            SELECT record_key, NULL FROM {gone}
        """)
        if self._every_comp:
            con.execute("DELETE FROM customer_links")
        else:  # ``unlinked``: the customers whose links are rewritten (some may be left none)
            unlinked = con.execute(f"""
                DELETE FROM customer_links WHERE record_key IN (SELECT record_key FROM {links_new})
                   OR record_key IN (SELECT record_key FROM {gone})
                RETURNING customer_id""").fetchnumpy()
            show_frame(con, "_unlinked_view", pd.DataFrame(unlinked))
            con.execute(f"CREATE OR REPLACE TEMP TABLE {t.unlinked} AS "
                        "SELECT DISTINCT customer_id FROM _unlinked_view")
            drop_frame(con, "_unlinked_view")
        con.execute(f"""
            INSERT INTO customer_links
            SELECT record_key, customer_id, method, prob,
                   CASE WHEN old_id = customer_id THEN coalesce(old_linked_at, ?) ELSE ? END
            FROM {t.links_new}
        """, [now, now])
        return t.links_new, t.relinked, t.unlinked

    def _update_events(self, *, relinked: str) -> None:
        """``customer_id`` of the event rows whose record changed customer in this run
        (``relinked``), and of the rows not attached yet (loaded since); the others already
        hold theirs.

        When most records changed customer (a first run), every row is looked up: each table's
        distinct customer records are joined to ``customer_links`` once, into a map no larger
        than the table, and the rows whose customer differs are updated in place. The table is
        then the join's probe side, so the rows are updated in row order; rewriting the table in
        row order (a sort of all its columns) took five times as long in a first run, and an
        update from a ``relinked`` larger than the table (which the join then hashes, rows
        updated in hash order) ten times as long."""
        n_relinked = int(self.store.scalar(f"SELECT count(*) FROM {relinked}"))
        linked = int(self.store.scalar("SELECT count(*) FROM customer_links"))
        for entity in ENTITIES.values():
            if not entity.is_event:
                continue
            table = ident(entity.table)
            if n_relinked > ATTACH_ALL_SHARE * linked:
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
                UPDATE {table} SET customer_id = c.customer_id FROM {relinked} c
                WHERE {table}.customer_record_key = c.record_key
                  AND {table}.customer_id IS DISTINCT FROM c.customer_id
            """)
            self.con.execute(f"""
                UPDATE {table} SET customer_id = l.customer_id FROM customer_links l
                WHERE {table}.customer_id IS NULL
                  AND {table}.customer_record_key = l.record_key
            """)
        self.con.execute("DROP TABLE IF EXISTS _event_links")

    def attach_late_events(self, since: Any) -> int:
        """:func:`attach_late_events` on this store."""
        return attach_late_events(self.con, since)

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
                         [keys_a[0], keys_b[0], reason or "merged by a person", utcnow()])
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
                         "(record_key_l, record_key_r)", [utcnow(), record_key])
        self.con.execute("INSERT INTO identity_overrides VALUES ('separate', ?, NULL, ?, ?)",
                         [record_key, reason or "separated by a person", utcnow()])
        return self.run(touched=keys, event_prefix="manual_",
                        reason=reason or f"record {record_key} separated by a person")

    def review(self, record_key_l: str, record_key_r: str, accept: bool) -> IdentifyResult:
        """A person's answer to a pair in the review band; remembered by later runs."""
        left, right = sorted((record_key_l, record_key_r))
        found = self.con.execute(
            "UPDATE identity_review SET status = ?, decided_at = ? "
            "WHERE record_key_l = ? AND record_key_r = ? RETURNING 1",
            ["accepted" if accept else "rejected", utcnow(), left, right]).fetchall()
        if not found:
            raise NotFoundError(f"No pair {left} / {right} in the review list.",
                                hint="See 'onetoone identify review'.")
        return self.run(touched=[left, right], event_prefix="review_",
                        reason="accepted by a person" if accept else "rejected by a person")

    def pending_reviews(self) -> list[tuple[str, str, float, str]]:
        """The pairs waiting for a person, most probable first: left and right record keys,
        match probability, the evidence."""
        return [(left, right, float(p), str(evidence)) for left, right, p, evidence in
                self.con.execute(
                    "SELECT record_key_l, record_key_r, match_probability, evidence FROM "
                    "identity_review WHERE status = 'pending' "
                    "ORDER BY match_probability DESC").fetchall()]

    def explain(self, customer_id: str, *, why: bool = False) -> dict[str, Any]:
        """One customer's golden record and source records; with ``why``, the evidence that
        makes them one and why related records are not (:func:`.explain.identity_view`)."""
        from onetoone.identify.explain import identity_view

        return identity_view(self.store, self.settings, customer_id, why=why)


def attach_late_events(con: Connection, since: Any) -> int:
    """``customer_id`` of the event rows that another cursor wrote while a run's transaction
    was open (the decision service during an identify job): the run could not see them, so a
    row naming a record that the run linked to another customer still holds the old one. Only
    records linked at ``since`` (the run's start) or later are looked at; returns the rows
    updated. Run it after the run is committed, in a transaction."""
    updated = 0
    for entity in ENTITIES.values():
        if entity.is_event:
            table = ident(entity.table)
            updated += sum(r[0] for r in con.execute(f"""
                UPDATE {table} SET customer_id = l.customer_id FROM customer_links l
                WHERE l.linked_at >= ? AND {table}.customer_record_key = l.record_key
                  AND {table}.customer_id IS DISTINCT FROM l.customer_id
            """, [since]).fetchall())
    return updated
