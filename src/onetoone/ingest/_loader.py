"""Loading a declared source into the canonical tables: validate, quarantine, merge.

A source loads in one transaction: every file is streamed batch by batch into the target table
and the quarantine, then set-based steps make the load idempotent (a row identical to one
already loaded is not added again; a changed row replaces its older version) and attach
identifiers. Any error rolls the whole source back, so nothing is ever half-written.
"""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow as pa

from onetoone.clock import utcnow
from onetoone.errors import IngestError
from onetoone.ingest._normalize import Normalizer, ident, q, register_lookups
from onetoone.ingest._readers import SourceFile, open_source_file
from onetoone.ingest.settings import SourceConfig
from onetoone.schema import ENTITIES, STRICT_KINDS, TABLES, Entity
from onetoone.settings import WorkspaceSettings
from onetoone.store import DatabaseError, Store, drop_frame, engine_settings, show_frame

#: Told the source being loaded and how many rows were read since the last call (a
#: stream's size is unknown until its end, so ingestion counts rows instead of a fraction).
RowsRead = Callable[[str, int], None]


@dataclass(frozen=True)
class _BatchPlan:
    insert_rows: str
    insert_rejects: str
    insert_identifiers: str | None


@dataclass
class FileResult:
    source: str
    path: str
    status: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_new: int = 0
    rows_changed: int = 0
    rows_unchanged: int = 0
    values_invalid: int = 0
    encoding: str = ""
    ingestion_id: int | None = None


@dataclass
class SourceResult:
    source: str
    entity: str
    files: list[FileResult] = field(default_factory=list)

    def total(self, name: str) -> int:
        return sum(int(getattr(f, name)) for f in self.files)

    def summary(self) -> dict[str, Any]:
        """As plain data (a job's result); :meth:`from_summary` reads it back."""
        return {"source": self.source, "entity": self.entity,
                "files": [asdict(f) for f in self.files]}

    @classmethod
    def from_summary(cls, data: dict[str, Any]) -> SourceResult:
        return cls(data["source"], data["entity"], [FileResult(**f) for f in data["files"]])


def resolve_paths(root: Path, pattern: str) -> list[Path]:
    """Files named by a source's ``path``: a file, a folder (every file in it) or a glob."""
    full = Path(pattern) if Path(pattern).is_absolute() else root / pattern
    if full.is_dir():
        return sorted(p for p in full.iterdir() if p.is_file() and not p.name.startswith("."))
    if any(ch in pattern for ch in "*?["):
        return sorted(Path(p) for p in glob.glob(str(full), recursive=True) if Path(p).is_file())
    if full.is_file():
        return [full]
    return []


def hash_sql(key: bytes, kind: str, value_sql: str) -> str:
    """SQL of the keyed hash of the erasure list, ``sha256(key:kind:value)``
    (``onetoone.privacy.suppression.erasure_hash``)."""
    prefix = key.decode("ascii") + f":{kind}:"
    return "sha256('" + prefix.replace("'", "''") + f"' || {value_sql})"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class SourceLoader:
    """Loads the files of one source."""

    def __init__(
        self,
        store: Store,
        name: str,
        source: SourceConfig,
        settings: WorkspaceSettings,
        root: Path,
        progress: RowsRead | None = None,
        erasure_key: bytes | None = None,
    ) -> None:
        self.store = store
        #: with people erased, the key of the erasure list (``_erased`` on the store's
        #: connection): their records go to quarantine (docs/privacy.md)
        self._erasure_key = erasure_key
        self.name = name
        self.source = source
        self.entity: Entity = ENTITIES[source.entity]
        self.settings = settings
        self.root = root
        self.progress = progress
        self.norm = Normalizer(source, settings)
        self.table = self.entity.table

    # -- entry --------------------------------------------------------------------------
    def load(self, paths: list[Path] | None = None) -> SourceResult:
        if paths is None:
            paths = resolve_paths(self.root, self.source.path)
            if not paths:
                raise IngestError(
                    f"Source '{self.name}' names {self.source.path}, but no file matches it.",
                    hint="Check the path in onetoone.toml (relative to the workspace folder).",
                )
        result = SourceResult(self.name, self.entity.name)
        con = self.store.con
        self._plan.cache_clear()  # the erasure list may differ from the last load's
        register_lookups(con)
        with engine_settings(con, TimeZone=self.norm.timezone), self.store.transaction():
            for path in paths:
                result.files.append(self._load_file(path))
        return result

    def _load_file(self, path: Path) -> FileResult:
        store = self.store
        display = str(path)
        size = path.stat().st_size
        digest = file_sha256(path)
        known = store.scalar(
            "SELECT count(*) FROM ingestions WHERE source = ? AND file_hash = ? "
            "AND status = 'loaded'",
            [self.name, digest],
        )
        if known:
            return FileResult(self.name, display, "unchanged")
        ingestion_id = int(store.scalar("SELECT coalesce(max(ingestion_id), 0) + 1 "
                                        "FROM ingestions"))
        started = utcnow()
        self._current_path = path
        result = FileResult(self.name, display, "loaded", ingestion_id=ingestion_id)
        if size == 0:
            result.status = "empty"
        else:
            source_file = open_source_file(path, self.source)
            result.encoding = source_file.encoding
            if source_file.format in ("csv", "tsv") and not source_file.columns:
                result.status = "empty"
            else:
                self._stream(source_file, ingestion_id, result)
        store.execute(
            "INSERT INTO ingestions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                ingestion_id, self.name, self.entity.name, display, digest, size,
                result.encoding, started, utcnow(), result.status,
                result.rows_read, result.rows_loaded, result.rows_quarantined, result.rows_new,
                result.rows_changed, result.rows_unchanged, result.values_invalid,
            ],
        )
        return result

    # -- per file -----------------------------------------------------------------------
    def _check_columns(self, columns: list[str], source_file: SourceFile) -> None:
        wanted = {**self.source.columns, **self.source.identifiers}
        missing = sorted({col for col in wanted.values() if col not in columns})
        if missing:
            shown = ", ".join(f"'{c}'" for c in missing)
            hint = f"Check [sources.{self.name}.columns] against the file's header."
            if len(columns) == 1 and source_file.format in ("csv", "tsv"):
                hint = (f"The header was read as one column '{columns[0][:60]}': the delimiter "
                        "is probably wrong (set delimiter in the source).")
            elif columns:
                hint += " Columns found: " + ", ".join(columns[:30]) + "."
            raise IngestError(
                f"{source_file.path.name} has no column {shown} (source '{self.name}'); "
                "nothing was loaded.",
                hint=hint,
            )
        duplicated = set(source_file.duplicated_columns)
        ambiguous = sorted(duplicated & set(wanted.values()))
        if ambiguous:
            raise IngestError(
                f"{source_file.path.name} has the mapped column '{ambiguous[0]}' twice in its "
                "header; nothing was loaded.",
                hint="Rename one of them in the export.",
            )
        required = [f.name for f in self.entity.fields if f.required]
        unmapped = [f for f in required if f not in self.source.columns]
        if unmapped:
            raise IngestError(
                f"Source '{self.name}' does not map the required field(s) "
                f"{', '.join(unmapped)} of entity '{self.entity.name}'.",
                hint=f"Add them under [sources.{self.name}.columns].",
            )

    def _stream(self, source_file: SourceFile, ingestion_id: int, result: FileResult) -> None:
        con = self.store.con
        if source_file.format in ("csv", "tsv", "parquet"):
            self._check_columns(source_file.columns, source_file)
        con.execute("CREATE OR REPLACE TEMP TABLE _ids (record_key VARCHAR, type VARCHAR, "
                    "value VARCHAR, source_row BIGINT)")
        # Rows refused so far (validation only: parser rejects are written after the batches).
        con.execute("CREATE OR REPLACE TEMP VIEW _rejected AS SELECT row_number AS source_row "
                    f"FROM quarantine WHERE ingestion_id = {int(ingestion_id)}")
        seen_columns: set[str] = set()
        for batch in source_file.batches():
            names = [n for n in batch.schema.names if n != "_row"]
            seen_columns.update(names)
            self._insert_batch(batch, names, ingestion_id)
            result.rows_read += batch.num_rows
            if self.progress:
                self.progress(self.name, batch.num_rows)
        # (A JSON file whose every record was rejected has no columns to check: it is
        # quarantined, not refused.)
        if source_file.format in ("json", "jsonl") and (seen_columns or not source_file.rejects):
            self._check_columns(sorted(seen_columns), source_file)
        for reject in source_file.rejects:
            con.execute(
                "INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, ?, hash(?, ?))",
                [ingestion_id, self.name, str(source_file.path), reject.row_number,
                 reject.reason, reject.raw, self.name, reject.raw],
            )
        result.rows_read += len(source_file.rejects)
        self._finish(ingestion_id, result)

    def _insert_batch(self, batch: pa.RecordBatch, names: list[str], ingestion_id: int) -> None:
        """Validate one batch and split it: rows → target, rejects → quarantine, identifiers →
        ``_ids``. The common case (no reject) parses each value once."""
        con = self.store.con
        plan = self._plan(tuple(names))
        show_frame(con, "_batch", batch)
        try:
            inserted = con.execute(plan.insert_rows, [ingestion_id]).fetchone()
            if inserted is None or int(inserted[0]) < batch.num_rows:
                con.execute(plan.insert_rejects, [ingestion_id, str(self._current_path),
                                                  ingestion_id])
            if plan.insert_identifiers:
                con.execute(plan.insert_identifiers, [ingestion_id])
        finally:
            with suppress(DatabaseError):
                drop_frame(con, "_batch")

    _current_path: Path = Path()

    @lru_cache(maxsize=8)  # noqa: B019 - one loader per source load, few column layouts
    def _plan(self, names: tuple[str, ...]) -> _BatchPlan:
        """The SQL that stages, validates and splits a batch with these columns.

        Three layers so that each value is parsed once: (1) typed values ``__v_<field>`` and
        normalized identifiers ``__id_<type>``; (2) the reason a row is refused, from them;
        (3) the canonical row, and the raw row as JSON only for refused rows.
        """
        entity = self.entity
        present = set(names)
        mapped = {canon: col for canon, col in self.source.columns.items() if col in present}
        row_hash = f"hash({q(self.name)}, {', '.join(ident(n) for n in names)})"
        layer1 = ["*", f"{row_hash} AS __hash"]
        reasons: list[str] = []
        invalid: list[str] = []
        out: dict[str, str] = {}
        for fld in entity.fields:
            col = mapped.get(fld.name)
            if col is None:
                if fld.required:
                    reasons.append(q(f"{fld.name} is missing"))
                continue
            raw = ident(col)
            expr = self.norm.field(raw, fld.kind, fld.name)
            typed = ident(f"__v_{fld.name}")
            layer1.append(f"{expr.value} AS {typed}")
            out[fld.name] = typed
            if expr.checked:
                failed = f"(nullif(trim({raw}), '') IS NOT NULL AND {typed} IS NULL)"
                if fld.kind in STRICT_KINDS:
                    words = (q(f"{fld.name} '") + f" || {raw} || "
                             + q(f"' is not {expr.expected}"))
                    reasons.append(f"CASE WHEN {failed} THEN {words} END")
                else:
                    invalid.append(f"{{'k': {q(fld.name)}, 'v': CASE WHEN {failed} "
                                   f"THEN {raw} END}}")
            if fld.required:
                reasons.append(f"CASE WHEN nullif(trim({raw}), '') IS NULL THEN "
                               f"{q(fld.name + ' is empty')} END")
        identifiers = self._identifier_columns(names)
        for kind, value in identifiers:
            layer1.append(f"{value} AS {ident('__id_' + kind)}")
        reason = (f"nullif(concat_ws('; ', {', '.join(reasons)}), '')" if reasons
                  else "NULL::VARCHAR")
        erased = self._erased_reason(mapped, identifiers)
        if erased:  # that reason alone: the others quote the row's values
            reason = f"coalesce({erased}, {reason})"
        layer2 = f"SELECT *, {reason} AS __reason FROM (SELECT {', '.join(layer1)} FROM _batch)"

        if "source_id" in mapped:
            out["record_key"] = f"{q(self.name + ':')} || {out['source_id']}"
        else:  # keyless rows: fingerprint now, occurrence number added in _finish
            out["record_key"] = f"{q(self.name + ':#')} || __hash"
        out["source"] = q(self.name)
        used = {*self.source.columns.values(), *self.source.identifiers.values()}
        unmapped = [n for n in names if n not in used]
        attributes = (f"json_object({', '.join(f'{q(n)}, {ident(n)}' for n in unmapped)})"
                      if unmapped else "NULL::JSON")
        if invalid:
            bad = f"map_from_entries(list_filter([{', '.join(invalid)}], "\
                  "lambda x: x.v IS NOT NULL))"
            attributes = (
                f"(SELECT CASE WHEN cardinality(m) = 0 THEN a ELSE json_merge_patch("
                f"coalesce(a, '{{}}'), json_object('_invalid', to_json(m))) END "
                f"FROM (SELECT {attributes} AS a, {bad} AS m))"
            )
        out["attributes"] = attributes
        out["ingestion_id"] = "?::BIGINT"
        out["source_row"] = "_row"
        out["row_hash"] = "__hash"
        customer_key = "NULL"
        if entity.name == "customers":
            out["origin"] = "'profile'"
            customer_key = "record_key"
        elif entity.is_event:
            options = []
            if "customer_source_id" in out and self.source.customer_source:
                options.append(f"{q(self.source.customer_source + ':')} || "
                               f"{out['customer_source_id']}")
            options += [f"{q(self.name + '~' + kind + ':')} || {ident('__id_' + kind)}"
                        for kind, _ in identifiers]
            out["customer_record_key"] = (f"coalesce({', '.join(options)})" if options
                                          else "NULL::VARCHAR")
            customer_key = "customer_record_key"
        raw_json = f"json_object({', '.join(f'{q(n)}, {ident(n)}' for n in names)})"
        staged_cols = [f"{expr} AS {ident(name)}" for name, expr in out.items()]
        staged_cols += ["__reason",
                        # an erased person's row is refused without keeping its values
                        f"CASE WHEN __reason IS NOT NULL AND NOT regexp_matches(__reason, "
                        f"'^(erased|anonymised) ') THEN {raw_json} END AS __raw"]
        staged_cols += [ident("__id_" + kind) for kind, _ in identifiers]
        staged = f"SELECT {', '.join(staged_cols)} FROM ({layer2})"

        target = TABLES[self.table]
        cols = ", ".join(ident(c.name) for c in target.columns)
        values = ", ".join(ident(c.name) if c.name in out else "NULL" for c in target.columns)
        insert_rows = (f"INSERT INTO {ident(self.table)} ({cols}) SELECT {values} "
                       f"FROM ({staged}) WHERE __reason IS NULL")
        insert_rejects = (f"INSERT INTO quarantine SELECT ?, {q(self.name)}, ?, source_row, "
                          f"__reason, __raw, row_hash FROM ({staged}) "
                          "WHERE __reason IS NOT NULL")
        insert_identifiers = None
        if identifiers:
            # One scan of the batch: each row's identifiers as a list, unnested. Rows refused
            # by validation are left out through _rejected.
            pairs = ", ".join(f"{{'t': {q(kind)}, 'v': {ident('__id_' + kind)}}}"
                              for kind, _ in identifiers)
            insert_identifiers = (
                f"INSERT INTO _ids SELECT k, p.t, p.v, min(source_row) FROM ("
                f"SELECT {customer_key} AS k, unnest([{pairs}]) AS p, source_row "
                f"FROM ({staged})) WHERE k IS NOT NULL AND p.v IS NOT NULL AND source_row "
                "NOT IN (SELECT source_row FROM _rejected) GROUP BY k, p.t, p.v"
            )
        return _BatchPlan(insert_rows, insert_rejects, insert_identifiers)

    def _erased_reason(self, mapped: dict[str, str],
                       identifiers: list[tuple[str, str]]) -> str | None:
        """SQL of the reason a row of an erased person is refused (``_erased``), if any was:
        a customer record by its key, an event by the record it names, either by any of its
        identifiers."""
        key = self._erasure_key
        if key is None:
            return None
        values = [hash_sql(key, kind, ident("__id_" + kind)) for kind, _ in identifiers]
        if self.entity.name == "customers" and "source_id" in mapped:
            values.append(hash_sql(key, "record", f"{q(self.name + ':')} || __v_source_id"))
        elif self.entity.name == "transaction_items":  # lines of an erased transaction
            values.append(hash_sql(key, "transaction", "__v_transaction_id"))
        elif "customer_source_id" in mapped and self.source.customer_source:
            values.append(hash_sql(key, "record", f"{q(self.source.customer_source + ':')} || "
                                   "__v_customer_source_id"))
        if not values:
            return None
        return f"(SELECT min(reason) FROM _erased WHERE h IN ({', '.join(values)}))"

    def _identifier_columns(self, names: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
        """(identifier type, SQL of its normalized value) for this source's rows."""
        pairs: list[tuple[str, str]] = []
        if self.entity.name == "customers":
            for kind in ("email", "phone"):
                col = self.source.columns.get(kind)
                if col is not None and col in names:
                    pairs.append((kind, self.norm.identifier(ident(col), kind)))
        for kind, col in self.source.identifiers.items():
            if col in names and kind not in dict(pairs):
                pairs.append((kind, self.norm.identifier(ident(col), kind)))
        return pairs

    # -- after the batches: idempotency, duplicates, identifiers, references --------------
    def _finish(self, ingestion_id: int, result: FileResult) -> None:
        con = self.store.con
        table = ident(self.table)
        path = q(str(self._current_path))
        if self.entity.has_source_id and self.source.columns.get("source_id"):
            # The same id twice in one file: the first is kept, the others quarantined.
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE _dups AS
                SELECT t.rowid AS rid, t.record_key, t.source_row, d.first_row, t.row_hash
                FROM {table} t JOIN (
                  SELECT record_key, min(source_row) AS first_row FROM {table}
                  WHERE ingestion_id = ? GROUP BY record_key HAVING count(*) > 1
                ) d ON t.record_key = d.record_key
                WHERE t.ingestion_id = ? AND t.source_row > d.first_row
            """, [ingestion_id, ingestion_id])
            con.execute(f"""
                INSERT INTO quarantine
                SELECT ?, {q(self.name)}, {path}, d.source_row,
                       'source_id ''' || substr(d.record_key, {len(self.name) + 2}) ||
                       ''' already appears at row ' || d.first_row || ' of this file',
                       to_json(t)::VARCHAR, d.row_hash
                FROM _dups d JOIN {table} t ON t.rowid = d.rid
            """, [ingestion_id])
            con.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT rid FROM _dups)")
            con.execute("DELETE FROM _ids WHERE (record_key, source_row) IN "
                        "(SELECT (record_key, source_row) FROM _dups)")
        else:
            # Keyless rows: identical rows are told apart by their occurrence number (the
            # first keeps the bare fingerprint); only the repeated ones are updated.
            con.execute(f"""
                UPDATE {table} SET record_key = t.record_key || '.' || t.n FROM (
                  SELECT rowid AS rid, record_key,
                         row_number() OVER (PARTITION BY record_key ORDER BY source_row) AS n
                  FROM {table} WHERE ingestion_id = ? AND record_key IN (
                    SELECT record_key FROM {table} WHERE ingestion_id = ?
                    GROUP BY record_key HAVING count(*) > 1)) t
                WHERE {table}.rowid = t.rid AND t.n > 1
            """, [ingestion_id, ingestion_id])
        # Idempotency against earlier loads of the same source.
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _old AS
            SELECT o.rowid AS rid, o.record_key, o.row_hash = n.row_hash AS same
            FROM {table} o JOIN {table} n ON o.record_key = n.record_key
            WHERE n.ingestion_id = ? AND o.ingestion_id <> ? AND o.source = ?
        """, [ingestion_id, ingestion_id, self.name])
        unchanged = int(self.store.scalar("SELECT count(*) FROM _old WHERE same"))
        changed = int(self.store.scalar("SELECT count(*) FROM _old WHERE NOT same"))
        con.execute(f"""DELETE FROM {table} WHERE ingestion_id = ? AND record_key IN
                        (SELECT record_key FROM _old WHERE same)""", [ingestion_id])
        con.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT rid FROM _old WHERE NOT same)")
        if self.entity.name == "customers":
            # Identifiers of a changed record are replaced by the new version's.
            con.execute("""DELETE FROM identifiers WHERE source = ? AND record_key IN
                           (SELECT record_key FROM _old WHERE NOT same)""", [self.name])
            # A profile replaces the reference stub an event source created for it.
            con.execute("""DELETE FROM customer_records WHERE origin = 'reference' AND
                           record_key IN (SELECT record_key FROM customer_records
                           WHERE ingestion_id = ?)""", [ingestion_id])
        quarantined = int(self.store.scalar(
            "SELECT count(*) FROM quarantine WHERE ingestion_id = ?", [ingestion_id]))
        # Quarantined rows already quarantined by an earlier load are not stored twice.
        con.execute("""DELETE FROM quarantine WHERE ingestion_id = ? AND row_hash IN
                       (SELECT row_hash FROM quarantine WHERE source = ? AND ingestion_id <> ?)
                    """, [ingestion_id, self.name, ingestion_id])
        con.execute(f"""
            INSERT INTO identifiers SELECT DISTINCT i.record_key, i.type, i.value,
                   {q(self.name)}, ? FROM (SELECT DISTINCT record_key, type, value FROM _ids) i
            WHERE NOT EXISTS (SELECT 1 FROM identifiers x WHERE x.record_key = i.record_key
                              AND x.type = i.type AND x.value = i.value)
        """, [ingestion_id])
        if self.entity.is_event:
            self._create_reference_records(ingestion_id)
        result.rows_quarantined = quarantined
        result.rows_loaded = result.rows_read - result.rows_quarantined
        result.rows_unchanged = unchanged
        result.rows_changed = changed
        result.rows_new = result.rows_loaded - unchanged - changed
        result.values_invalid = int(self.store.scalar(
            f"SELECT coalesce(sum(len(json_keys(attributes, '$._invalid'))), 0) "
            f"FROM {table} WHERE ingestion_id = ? AND json_exists(attributes, '$._invalid')",
            [ingestion_id]) or 0)

    def _create_reference_records(self, ingestion_id: int) -> None:
        """A customer exists for every identity an event names, profile or not."""
        con = self.store.con
        table = ident(self.table)
        con.execute(f"""
            INSERT INTO customer_records (record_key, source, source_id, origin, ingestion_id)
            SELECT k, split_part(k, ':', 1), substr(k, strpos(k, ':') + 1), 'reference', ?
            FROM (SELECT customer_record_key AS k FROM {table}
                  WHERE ingestion_id = ? AND customer_record_key IS NOT NULL
                  GROUP BY customer_record_key) n
            ANTI JOIN customer_records c ON c.record_key = n.k
        """, [ingestion_id, ingestion_id])
