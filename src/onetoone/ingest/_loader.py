"""Loading a declared source into the canonical tables: validate, quarantine, merge.

A source loads in one transaction: every file is streamed batch by batch into the target table
and the quarantine, then set-based steps make the load idempotent (a row identical to one
already loaded is not added again; a changed row replaces its older version) and attach
identifiers. Any error rolls the whole source back, so nothing is ever half-written.
"""

from __future__ import annotations

import glob
import hashlib
import json
from contextlib import suppress
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from onetoone.config import SourceConfig, WorkspaceSettings
from onetoone.errors import IngestError
from onetoone.ingest._normalize import Normalizer, ident, q, register_lookups
from onetoone.ingest._readers import SourceFile, open_source_file
from onetoone.schema import ENTITIES, STRICT_KINDS, TABLES, Entity
from onetoone.store import Store

Progress = Callable[[str, int], None]


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
        progress: Progress | None = None,
    ) -> None:
        self.store = store
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
        register_lookups(con)
        con.execute(f"SET TimeZone = {q(self.norm.timezone)}")
        try:
            with self.store.transaction():
                for path in paths:
                    result.files.append(self._load_file(path))
        finally:
            con.execute("SET TimeZone = 'UTC'")
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
        started = datetime.now(UTC).replace(tzinfo=None)
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
                result.encoding, started, datetime.now(UTC).replace(tzinfo=None), result.status,
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
            hint = "Check [sources.%s.columns] against the file's header." % self.name
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
        duplicated = set(getattr(source_file, "duplicated_columns", []))
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
        seen_columns: set[str] = set()
        for batch in source_file.batches():
            names = [n for n in batch.schema.names if n != "_row"]
            seen_columns.update(names)
            self._insert_batch(batch, names, ingestion_id)
            result.rows_read += batch.num_rows
            if self.progress:
                self.progress(self.name, batch.num_rows)
        if source_file.format in ("json", "jsonl"):
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
        con = self.store.con
        con.register("_batch", batch)
        try:
            select, reason, raw_json = self._select(names)
            target = TABLES[self.table]
            cols = ", ".join(ident(c.name) for c in target.columns)
            staged = f"(SELECT {select}, {reason} AS _reason FROM _batch)"
            exprs = ", ".join(
                ident(c.name) if c.name in self._produced else "NULL"
                for c in target.columns
            )
            con.execute(
                f"INSERT INTO {ident(self.table)} ({cols}) SELECT {exprs} FROM {staged} "
                f"WHERE _reason IS NULL",
                [ingestion_id],
            )
            con.execute(
                f"INSERT INTO quarantine SELECT ?, {q(self.name)}, ?, _row, _reason, _raw, "
                f"row_hash FROM (SELECT {raw_json} AS _raw, _row, {reason} AS _reason, "
                f"{self._row_hash(names)} AS row_hash FROM _batch) WHERE _reason IS NOT NULL",
                [ingestion_id, str(self._current_path)],
            )
            self._insert_identifiers(names)
        finally:
            with suppress(duckdb.Error):
                con.unregister("_batch")

    _current_path: Path = Path()
    _names: list[str] = []  # noqa: RUF012
    _produced: set[str] = set()  # noqa: RUF012

    def _row_hash(self, names: list[str]) -> str:
        return f"hash({q(self.name)}, {', '.join(ident(n) for n in names)})"

    def _select(self, names: list[str]) -> tuple[str, str, str]:
        """The SELECT list for one batch, the reason expression and the raw-row JSON."""
        entity = self.entity
        self._names = names
        mapped = {canon: col for canon, col in self.source.columns.items() if col in names}
        parts: list[str] = []
        reasons: list[str] = []
        invalid: list[str] = []
        produced = {"record_key", "source", "attributes", "ingestion_id", "source_row",
                    "row_hash"}
        for fld in entity.fields:
            col = mapped.get(fld.name)
            if col is None:
                if fld.required:
                    reasons.append(f"'{fld.name} is missing'")
                continue
            raw = ident(col)
            expr = self.norm.field(raw, fld.kind, fld.name)
            parts.append(f"{expr.value} AS {ident(fld.name)}")
            produced.add(fld.name)
            words = (q(f"{fld.name} '") + f" || {raw} || " + q(f"' is not {expr.expected}"))
            if fld.kind in STRICT_KINDS:
                reasons.append(f"CASE WHEN {expr.failed} THEN {words} END")
            elif expr.failed != "false":
                invalid.append(f"{{'k': {q(fld.name)}, 'v': CASE WHEN {expr.failed} THEN {raw} END}}")
            if fld.required:
                reasons.append(
                    f"CASE WHEN nullif(trim({raw}), '') IS NULL THEN "
                    f"{q(fld.name + ' is empty')} END"
                )
        key = self._record_key(mapped)
        parts.append(f"{key} AS record_key")
        parts.append(f"{q(self.name)} AS source")
        unmapped = [n for n in names if n not in set(self.source.columns.values())]
        attributes = (
            f"json_object({', '.join(f'{q(n)}, {ident(n)}' for n in unmapped)})"
            if unmapped else "NULL::JSON"
        )
        if invalid:
            entries = ", ".join(invalid)
            bad = f"map_from_entries(list_filter([{entries}], lambda x: x.v IS NOT NULL))"
            attributes = (
                f"(SELECT CASE WHEN cardinality(m) = 0 THEN a "
                f"ELSE json_merge_patch(coalesce(a, '{{}}'), json_object('_invalid', to_json(m))) "
                f"END FROM (SELECT {attributes} AS a, {bad} AS m))"
            )
        parts.append(f"{attributes} AS attributes")
        parts.append("? AS ingestion_id")
        parts.append("_row AS source_row")
        parts.append(f"{self._row_hash(names)} AS row_hash")
        if entity.name == "customers":
            parts.append("'profile' AS origin")
            produced.add("origin")
        elif entity.is_event:
            parts.append(f"{self._customer_reference(mapped, names)} AS customer_record_key")
            produced.add("customer_record_key")
        self._produced = produced
        reason = (
            f"nullif(concat_ws('; ', {', '.join(reasons)}), '')" if reasons else "NULL::VARCHAR"
        )
        raw_json = f"json_object({', '.join(f'{q(n)}, {ident(n)}' for n in names)})"
        return ", ".join(parts), reason, raw_json

    def _record_key(self, mapped: dict[str, str]) -> str:
        if "source_id" in mapped:
            return f"{q(self.name + ':')} || trim({ident(mapped['source_id'])})"
        # Keyless rows: fingerprint now, occurrence number added in _finish.
        return f"{q(self.name + ':#')} || {self._row_hash(self._names)}"

    def _identifier_columns(self, names: list[str]) -> list[tuple[str, str]]:
        """(identifier type, SQL of its normalized value) for this source's rows."""
        pairs: list[tuple[str, str]] = []
        if self.entity.name == "customers":
            for kind in ("email", "phone"):
                col = self.source.columns.get(kind)
                if col in names:
                    pairs.append((kind, self.norm.identifier(ident(col), kind)))
        for kind, col in self.source.identifiers.items():
            if col in names:
                pairs.append((kind, self.norm.identifier(ident(col), kind)))
        return pairs

    def _customer_reference(self, mapped: dict[str, str], names: list[str]) -> str:
        options = []
        if "customer_source_id" in mapped and self.source.customer_source:
            col = ident(mapped["customer_source_id"])
            options.append(
                f"CASE WHEN nullif(trim({col}), '') IS NOT NULL THEN "
                f"{q(self.source.customer_source + ':')} || trim({col}) END"
            )
        for kind, value in self._identifier_columns(names):
            options.append(f"{q(self.name + '~' + kind + ':')} || ({value})")
        return f"coalesce({', '.join(options)})" if options else "NULL::VARCHAR"

    def _insert_identifiers(self, names: list[str]) -> None:
        pairs = self._identifier_columns(names)
        if not pairs:
            return
        mapped = {canon: col for canon, col in self.source.columns.items() if col in names}
        _, reason, _ = self._select(names)
        if self.entity.name == "customers":
            key = self._record_key(mapped)
        else:
            key = self._customer_reference(mapped, names)
        unions = " UNION ALL ".join(
            f"SELECT {key} AS record_key, {q(kind)} AS type, {value} AS value, _row FROM _batch "
            f"WHERE {reason} IS NULL"
            for kind, value in pairs
        )
        self.store.execute(
            f"INSERT INTO _ids SELECT DISTINCT * FROM ({unions}) "
            "WHERE record_key IS NOT NULL AND value IS NOT NULL"
        )

    # -- after the batches: idempotency, duplicates, identifiers, references --------------
    def _finish(self, ingestion_id: int, result: FileResult) -> None:
        con = self.store.con
        table = ident(self.table)
        path = q(str(self._current_path))
        if self.entity.has_source_id and self.source.columns.get("source_id"):
            # The same id twice in one file: the first is kept, the others quarantined.
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE _dups AS
                SELECT rowid AS rid, record_key, source_row, first_row, row_hash FROM (
                  SELECT rowid, record_key, source_row, row_hash,
                         min(source_row) OVER (PARTITION BY record_key) AS first_row
                  FROM {table} WHERE ingestion_id = ?) WHERE source_row > first_row
            """, [ingestion_id])
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
            # Keyless rows: identical rows are told apart by their occurrence number.
            con.execute(f"""
                UPDATE {table} SET record_key = t.record_key || '.' || t.n FROM (
                  SELECT rowid AS rid, record_key,
                         row_number() OVER (PARTITION BY record_key ORDER BY source_row) AS n
                  FROM {table} WHERE ingestion_id = ?) t
                WHERE {table}.rowid = t.rid
            """, [ingestion_id])
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
                   {q(self.name)}, ? FROM _ids i
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
            FROM (SELECT DISTINCT customer_record_key AS k FROM {table}
                  WHERE ingestion_id = ? AND customer_record_key IS NOT NULL)
            WHERE k NOT IN (SELECT record_key FROM customer_records)
        """, [ingestion_id, ingestion_id])


def describe(result: SourceResult) -> dict[str, object]:
    return {
        "source": result.source,
        "entity": result.entity,
        "files": len(result.files),
        "rows_read": result.total("rows_read"),
        "rows_loaded": result.total("rows_loaded"),
        "rows_quarantined": result.total("rows_quarantined"),
        "rows_new": result.total("rows_new"),
        "unchanged_files": sum(1 for f in result.files if f.status == "unchanged"),
        "detail": json.dumps([f.__dict__ for f in result.files], default=str),
    }
