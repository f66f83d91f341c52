"""Data-subject rights (GDPR articles 15, 17 and 20): access (one portable JSON document),
erasure, anonymisation and retention, over every holding of the registry.

Erasure deletes the person's rows everywhere (derived data included), rewrites the outbound
lists and the audience exports (by their sidecar of customer ids) and removes the access
exports onetoone wrote under the workspace, and keeps a keyed hash of each identifier and
record key in ``erasures``: a later load of the same records sends them to quarantine instead
of bringing the person back. The database file still holds
the deleted bytes until it is compacted (:func:`onetoone.store.compact_database`), which the
command line does at once and the server when it stops (docs/privacy.md).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onetoone.clock import utcnow
from onetoone.errors import InvalidInputError, NotFoundError, WorkspaceError
from onetoone.ingest._normalize import Normalizer
from onetoone.ingest.settings import SourceConfig
from onetoone.privacy.audit import record
from onetoone.privacy.registry import (
    AUDIENCE_IDS,
    AUDIENCES,
    FILE_FOLDERS,
    HOLDINGS,
    OUTBOX,
    PRINT,
    PRINT_CODES,
    Holding,
)
from onetoone.privacy.suppression import erasure_hash, privacy_key
from onetoone.schema import TABLES
from onetoone.store import Connection, has_table

if TYPE_CHECKING:
    from onetoone.privacy.settings import PrivacySettings
    from onetoone.settings import WorkspaceSettings
    from onetoone.store import Store

#: The tables' event columns (``customer_record_key``), for anonymisation.
_HAS_RECORD_KEY = {t for t, table in TABLES.items()
                   if any(c.name == "customer_record_key" for c in table.columns)}
_HAS_CUSTOMER_ID = {t for t, table in TABLES.items()
                    if any(c.name == "customer_id" for c in table.columns)}
#: identifier values shorter than this are not searched for in quarantined raw rows
_MIN_VALUE = 5
SELECTORS = ("customer", "email", "phone", "identifier")


@dataclass
class Erasure:
    """What an erasure or anonymisation did."""

    mode: str
    customers: list[str]
    rows: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    already: bool = False

    def summary(self) -> dict[str, Any]:
        return {"mode": self.mode, "customers": self.customers, "rows": self.rows,
                "files": self.files, "already": self.already}


# -- finding the person -------------------------------------------------------------------

def selector(customer: str | None = None, email: str | None = None, phone: str | None = None,
             identifier: str | None = None) -> tuple[str, str]:
    """The one (type, value) a request names: ``customer`` and an id, or an identifier."""
    given = [(k, v) for k, v in (("customer", customer), ("email", email), ("phone", phone),
                                 ("identifier", identifier)) if v]
    if len(given) != 1:
        raise InvalidInputError("Name the person with exactly one of --customer, --email, "
                                "--phone or --identifier TYPE:VALUE.")
    kind, value = given[0]
    if kind == "identifier":
        kind, sep, value = value.partition(":")
        if not sep or not kind or not value:
            raise InvalidInputError("--identifier must be TYPE:VALUE, e.g. "
                                    "loyalty_card:123456.")
        kind = kind.strip().lower()
    return kind, value.strip()


def find_person(config: WorkspaceSettings, con: Connection, kind: str, value: str) -> str:
    """The current customer id of the person named by (type, value); merged-away ids lead to
    the survivor."""
    if kind in ("customer", "customer_id"):
        found = con.execute(
            """WITH RECURSIVE chain(id, depth) AS (
                 SELECT ?::VARCHAR, 0
                 UNION ALL SELECT c.merged_into, depth + 1 FROM customer_ids c
                 JOIN chain ON c.customer_id = chain.id
                 WHERE c.merged_into IS NOT NULL AND depth < 100)
               SELECT id FROM chain ORDER BY depth DESC LIMIT 1""", [value]).fetchall()
        customer_id = found[0][0] if found else value
        exists = con.execute("SELECT 1 FROM customers WHERE customer_id = ? UNION ALL "
                             "SELECT 1 FROM customer_links WHERE customer_id = ? LIMIT 1",
                             [customer_id, customer_id]).fetchall()
        if not exists:
            raise NotFoundError(f"No customer {value}.")
        return str(customer_id)
    normalized = _normalize(config, con, kind, value)
    row = con.execute(
        """SELECT l.customer_id FROM identifiers i JOIN customer_links l USING (record_key)
           WHERE i.type = ? AND i.value = ? ORDER BY l.linked_at DESC NULLS LAST LIMIT 1""",
        [kind, normalized]).fetchall()
    if not row:
        raise NotFoundError(f"No customer carries this {kind}.")
    return find_person(config, con, "customer", str(row[0][0]))


def _normalize(config: WorkspaceSettings, con: Connection, kind: str, raw: str) -> str:
    if kind == "email":
        value = Normalizer.email_value(raw)
        if isinstance(value, str):
            return value
    normalizer = Normalizer(SourceConfig.model_validate({"entity": "customers", "path": "-"}),
                            config)
    found = con.execute(f"SELECT {normalizer.identifier('v', kind)} FROM (SELECT ?::VARCHAR "
                        "AS v)", [raw]).fetchall()
    if not found or found[0][0] is None:
        raise InvalidInputError(f"'{kind}' value is not a valid {kind}.")
    return str(found[0][0])


def _subjects(con: Connection, customer_ids: Iterable[str]) -> None:
    """Fill ``_subject_ids`` (id, person), ``_subject_records`` and ``_subject_values``."""
    con.execute("CREATE OR REPLACE TEMP TABLE _subject_people AS "
                "SELECT DISTINCT unnest(?::VARCHAR[]) AS person", [list(customer_ids)])
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _subject_ids AS
        WITH RECURSIVE ids(customer_id, person, depth) AS (
          SELECT person, person, 0 FROM _subject_people
          UNION ALL SELECT c.customer_id, ids.person, depth + 1 FROM customer_ids c
          JOIN ids ON c.merged_into = ids.customer_id WHERE depth < 100)
        SELECT DISTINCT customer_id, person FROM ids""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _subject_records AS
        SELECT DISTINCT l.record_key, s.person FROM customer_links l
        JOIN _subject_ids s USING (customer_id)""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _subject_values AS
        SELECT DISTINCT lower(value) AS value FROM (
          SELECT value FROM identifiers
          WHERE record_key IN (SELECT record_key FROM _subject_records)
          UNION ALL SELECT email FROM customer_records
          WHERE record_key IN (SELECT record_key FROM _subject_records)
          UNION ALL SELECT phone FROM customer_records
          WHERE record_key IN (SELECT record_key FROM _subject_records)
          UNION ALL SELECT '0' || substr(phone, 4) FROM customer_records
          WHERE record_key IN (SELECT record_key FROM _subject_records) AND phone LIKE '+33%'
        ) WHERE value IS NOT NULL AND length(value) >= {_MIN_VALUE}""")


def _present(con: Connection) -> set[str]:
    """The holdings' tables that exist (working tables are made by their step)."""
    return {h.table for h in HOLDINGS if not h.working or has_table(con, h.table)}


def _rows(con: Connection, holding: Holding) -> list[dict[str, Any]]:
    res = con.execute(f'SELECT * FROM "{holding.table}" WHERE {holding.where}')
    names = [d[0] for d in res.description]
    json_cols = {c.name for c in TABLES[holding.table].columns if c.sql_type == "JSON"}
    out = []
    for row in res.fetchall():
        item = {}
        for name, value in zip(names, row, strict=True):
            if name in json_cols and isinstance(value, str):
                with suppress(ValueError):
                    value = json.loads(value)
            item[name] = _plain(value)
        out.append(item)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# -- access -------------------------------------------------------------------------------

def export_person(root: Path, config: WorkspaceSettings, con: Connection, customer_id: str, *,
                  actor: str) -> dict[str, Any]:
    """Everything the workspace holds about one person, as one JSON-ready document."""
    _subjects(con, [customer_id])
    ids = [r[0] for r in con.execute("SELECT customer_id FROM _subject_ids "
                                     "ORDER BY customer_id").fetchall()]
    present = _present(con)
    tables = {h.table: _rows(con, h) for h in HOLDINGS
              if h.table in present and not h.working}
    golden = tables.get("customers") or []
    files = _file_rows(root, set(ids), _deliveries(con)) + _audience_rows(root, con, set(ids))
    document = {
        "format": "onetoone.subject-access/1",
        "generated_at": utcnow().isoformat() + "Z",
        "workspace": config.name,
        "customer_id": customer_id,
        "customer_ids": ids,
        "golden_record": golden[0] if golden else None,
        "source_records": tables.pop("customer_records"),
        "tables": tables,
        "files": files,
    }
    record(con, actor, "privacy.export", customer_id,
           {"rows": sum(len(v) for v in tables.values()), "files": len(files)})
    return document


def _outbound_files(root: Path) -> list[Path]:
    return sorted(p for folder in FILE_FOLDERS for p in (root / folder).glob("*.csv")
                  if p.is_file())


def _file_rows(root: Path, ids: set[str], deliveries: set[str]) -> list[dict[str, Any]]:
    """The person's rows in the outbound lists and the outbox onetoone wrote (an e-mail of
    the outbox as its file name and raw text)."""
    out = []
    for path in _outbound_files(root):
        with path.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row.get("customer_id") in ids:
                    out.append({"file": str(path.relative_to(root)), **row})
    for path in _outbox_lists(root):
        for line in path.read_text(encoding="utf-8").splitlines():
            with suppress(ValueError):
                item = json.loads(line)
                if item.get("customer_id") in ids:
                    out.append({"file": str(path.relative_to(root)), **item})
    for path in _outbox_mails(root, deliveries):
        out.append({"file": str(path.relative_to(root)),
                    "message": path.read_text(encoding="utf-8", errors="replace")})
    codes: set[Path] = set()
    for path in _print_lists(root):
        columns, _, theirs = _print_file(path, ids)
        out += [{"file": str(path.relative_to(root)), **dict(zip(columns, line, strict=False))}
                for line in theirs]
        codes |= _codes_named(path, columns, theirs)
    out += [{"file": str(p.relative_to(root))} for p in _print_codes(root, deliveries, codes)]
    return out


def _print_lists(root: Path) -> list[Path]:
    """The mailing files of the print channels (``print/<campaign>/<occurrence>.csv``)."""
    return sorted(p for p in (root / OUTBOX / PRINT).glob("*/*.csv") if p.is_file())


def _print_file(path: Path, ids: set[str]) -> tuple[list[str], list[list[str]],
                                                    list[list[str]]]:
    """A mailing file's header, the rows of others and those of these people (a cell may
    carry the ``'`` that keeps spreadsheets from running it)."""
    with path.open(newline="", encoding="utf-8") as f:
        lines = list(csv.reader(f))
    header = lines[0] if lines else []
    if "customer_id" not in header:
        return header, lines[1:], []
    at = header.index("customer_id")

    def theirs(line: list[str]) -> bool:
        cell = line[at] if len(line) > at else ""
        return cell in ids or cell.removeprefix("'") in ids

    return (header, [line for line in lines[1:] if not theirs(line)],
            [line for line in lines[1:] if theirs(line)])


def _codes_named(path: Path, header: list[str], rows: list[list[str]]) -> set[Path]:
    """The QR codes these rows of a mailing file name (beside it)."""
    if "code" not in header:
        return set()
    at = header.index("code")
    return {path.parent / Path(row[at].removeprefix("'")).name for row in rows
            if len(row) > at and row[at].strip("'. ")}


def _print_codes(root: Path, deliveries: set[str], named: set[Path]) -> list[Path]:
    """The print channels' QR codes of these deliveries, and those their rows name."""
    return sorted(p for p in (root / OUTBOX / PRINT).glob("*/*") if p.suffix in PRINT_CODES
                  and p.is_file() and (p.stem in deliveries or p in named))


def _outbox_lists(root: Path) -> list[Path]:
    """The outbox's JSON Lines files (SMS, web hooks, dead letters)."""
    return sorted(p for p in (root / OUTBOX).rglob("*.jsonl") if p.is_file())


def _outbox_mails(root: Path, deliveries: set[str]) -> list[Path]:
    """The outbox's e-mails of these deliveries (``email/<campaign>/<delivery_id>.eml``)."""
    return sorted(p for p in (root / OUTBOX / "email").glob("*/*.eml")
                  if p.stem in deliveries)


def _deliveries(con: Connection) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT delivery_id FROM deliveries WHERE customer_id IN "
        "(SELECT customer_id FROM _subject_ids)").fetchall()}


# -- erasure ------------------------------------------------------------------------------

def erase_people(root: Path, con: Connection, customer_ids: list[str], *, mode: str,
                 actor: str, reason: str = "request") -> Erasure:
    """Erase (``mode="erase"``) or anonymise (``"anonymise"``) people, in the caller's
    transaction; the outbound files are rewritten and the access exports removed."""
    if mode not in ("erase", "anonymise"):
        raise InvalidInputError("mode must be 'erase' or 'anonymise'.")
    result = Erasure(mode, sorted(set(customer_ids)))
    if not customer_ids:
        return result
    key = privacy_key(root, create=True)
    assert key is not None
    _subjects(con, customer_ids)
    ids = {r[0] for r in con.execute("SELECT customer_id FROM _subject_ids").fetchall()}
    _remember(con, key, mode, reason)
    if mode == "anonymise":
        con.execute("CREATE OR REPLACE TEMP TABLE _subject_anon AS SELECT person, "
                    "'anon-' || replace(uuid()::VARCHAR, '-', '') AS anon_id "
                    "FROM _subject_people")
    sent = _deliveries(con)  # read before their rows go: the outbox names its files by them
    present = _present(con)
    for holding in HOLDINGS:
        if holding.keep or holding.table not in present:
            continue
        if mode == "anonymise" and holding.anonymise is not None:
            result.rows[holding.table] = _anonymise(con, holding)
        else:
            result.rows[holding.table] = _delete(con, holding)
    result.rows = {t: n for t, n in result.rows.items() if n}
    result.files = _scrub_files(root, con, ids, sent)
    for temp in ("_subject_people", "_subject_ids", "_subject_records", "_subject_values",
                 "_subject_anon"):
        con.execute(f"DROP TABLE IF EXISTS {temp}")
    con.execute("INSERT OR REPLACE INTO onetoone_meta VALUES ('compact_pending', ?)",
                [utcnow().isoformat()])
    for customer_id in result.customers:
        record(con, actor, f"privacy.{mode}", customer_id,
               {"reason": reason, "rows": sum(result.rows.values()) if
                len(result.customers) == 1 else None})
    return result


def _remember(con: Connection, key: bytes, mode: str, reason: str) -> None:
    """Keyed hashes of the people's identifiers and records, into ``erasures``."""
    pairs = con.execute("""
        SELECT DISTINCT type, value FROM identifiers
        WHERE record_key IN (SELECT record_key FROM _subject_records)
        UNION SELECT 'record', record_key FROM _subject_records
        UNION SELECT 'transaction', source_id FROM transactions
        WHERE source_id IS NOT NULL AND (customer_id IN (SELECT customer_id FROM _subject_ids)
              OR customer_record_key IN (SELECT record_key FROM _subject_records))""").fetchall()
    now = utcnow()
    hashes = sorted({erasure_hash(key, kind, value) for kind, value in pairs})
    con.execute("""INSERT INTO erasures SELECT h, ?, ?, ? FROM (SELECT unnest(?::VARCHAR[]) h)
                   WHERE h NOT IN (SELECT identifier_hash FROM erasures)""",
                [now, mode, reason, hashes])


def _delete(con: Connection, holding: Holding) -> int:
    found = con.execute(f'DELETE FROM "{holding.table}" WHERE {holding.where}').fetchall()
    return int(found[0][0]) if found else 0


def _anonymise(con: Connection, holding: Holding) -> int:
    """Keep the rows under a random id of the person's; empty what could identify them."""
    table, cleared = holding.table, holding.anonymise or ()
    sets = [f'"{c}" = NULL' for c in cleared]
    if table in _HAS_RECORD_KEY:
        sets.append("customer_record_key = NULL")
    count = int(con.execute(f'SELECT count(*) FROM "{table}" WHERE {holding.where}')
                .fetchall()[0][0])
    if not count:
        return 0
    if table in _HAS_CUSTOMER_ID:
        if table in _HAS_RECORD_KEY:  # rows not yet identified: by their customer record
            con.execute(f"""
                UPDATE "{table}" t SET customer_id = a.anon_id FROM _subject_records r
                JOIN _subject_anon a USING (person)
                WHERE t.customer_record_key = r.record_key""")
        con.execute(f"""
            UPDATE "{table}" t SET customer_id = a.anon_id FROM _subject_ids s
            JOIN _subject_anon a USING (person) WHERE t.customer_id = s.customer_id""")
        anon = "customer_id IN (SELECT anon_id FROM _subject_anon)"
    else:
        anon = holding.where
    if sets:
        con.execute(f'UPDATE "{table}" SET {", ".join(sets)} WHERE {anon}')
    return count


def _scrub_files(root: Path, con: Connection, ids: set[str], sent: set[str]) -> list[str]:
    """Rewrite the outbound lists and the outbox's lists without the people's rows; remove
    their e-mails from the outbox and the access exports onetoone wrote for them."""
    changed = []
    for path in _outbox_lists(root):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        others = [line for line in lines if not _names(line, ids)]
        if len(others) != len(lines):
            tmp = path.with_suffix(".tmp")
            tmp.write_text("".join(others), encoding="utf-8")
            os.replace(tmp, path)
            changed.append(str(path.relative_to(root)))
    for path in _outbox_mails(root, sent):
        path.unlink()
        changed.append(str(path.relative_to(root)))
    codes: set[Path] = set()
    for path in _print_lists(root):
        columns, rest, theirs = _print_file(path, ids)
        if theirs:
            codes |= _codes_named(path, columns, theirs)
            _write_owner_only(path, [columns, *rest])
            changed.append(str(path.relative_to(root)))
    for path in _print_codes(root, sent, codes):
        path.unlink()
        changed.append(str(path.relative_to(root)))
    for path in _outbound_files(root):
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            rows = list(reader)
        kept = [r for r in rows if r.get("customer_id") not in ids]
        if len(kept) == len(rows):
            continue
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows(kept)
        os.replace(tmp, path)
        changed.append(str(path.relative_to(root)))
    changed += _scrub_audiences(root, con, ids)
    for (details,) in con.execute(
            "SELECT details FROM audit_log WHERE action = 'privacy.export.file' AND customer_id IN "
            "(SELECT customer_id FROM _subject_ids)").fetchall():
        written = json.loads(details or "{}").get("file")
        if written:
            target = root / written
            if target.is_file():
                target.unlink()
                changed.append(written)
    return changed


def _audience_files(root: Path, con: Connection) -> list[Path]:
    """The audience exports that have their sidecar of customer ids: every one under
    ``audiences/``, and those the audit log names elsewhere in the workspace."""
    sidecars = {p.resolve() for p in (root / AUDIENCES).rglob("*" + AUDIENCE_IDS)
                if p.is_file()}
    for (details,) in con.execute(
            "SELECT details FROM audit_log WHERE action = 'audience.export'").fetchall():
        for written in json.loads(details or "{}").get("files") or []:
            sidecar = (root / f"{written}{AUDIENCE_IDS}").resolve()
            if sidecar.is_relative_to(root.resolve()) and sidecar.is_file():
                sidecars.add(sidecar)
    return sorted({p.with_name(p.name[:-len(AUDIENCE_IDS)]) for p in sidecars})


def _audience_file(path: Path) -> tuple[list[str], list[list[str]], list[str]]:
    """An audience export's header, rows and the customer id of each row (its sidecar)."""
    with path.open(newline="", encoding="utf-8") as f:
        lines = list(csv.reader(f))
    with path.with_name(path.name + AUDIENCE_IDS).open(newline="", encoding="utf-8") as f:
        ids = [row[0] if row else "" for row in list(csv.reader(f))[1:]]
    return (lines[0] if lines else []), lines[1:], ids


def _audience_rows(root: Path, con: Connection, ids: set[str]) -> list[dict[str, Any]]:
    """The person's rows in the audience exports (hashed values as written)."""
    out = []
    for path in _audience_files(root, con):
        with suppress(OSError):
            header, rows, owners = _audience_file(path)
            shown = str(path.relative_to(root.resolve()))
            out += [{"file": shown, **dict(zip(header, row, strict=False))}
                    for row, owner in zip(rows, owners, strict=False) if owner in ids]
    return out


def _scrub_audiences(root: Path, con: Connection, ids: set[str]) -> list[str]:
    """Rewrite the audience exports without the people's rows (owner-only, as written); a
    file whose rows no longer match its sidecar (edited by hand) is removed whole."""
    changed = []
    for path in _audience_files(root, con):
        sidecar = path.with_name(path.name + AUDIENCE_IDS)
        try:
            header, rows, owners = _audience_file(path)
        except FileNotFoundError:  # the export is gone: so goes the list of its rows
            sidecar.unlink(missing_ok=True)
            continue
        if not ids.intersection(owners):
            continue
        if len(rows) != len(owners):
            path.unlink()
            sidecar.unlink()
        else:
            kept = [(row, owner) for row, owner in zip(rows, owners, strict=True)
                    if owner not in ids]
            _write_owner_only(sidecar, [["customer_id"], *([o] for _, o in kept)])
            _write_owner_only(path, [header, *(r for r, _ in kept)])
        changed.append(str(path.relative_to(root.resolve())))
    return changed


def _write_owner_only(path: Path, rows: list[list[str]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(rows)
    os.replace(tmp, path)


def _names(line: str, ids: set[str]) -> bool:
    """Whether a JSON line of the outbox is about one of these customers."""
    try:
        return json.loads(line).get("customer_id") in ids
    except (ValueError, AttributeError):
        return False


# -- retention ----------------------------------------------------------------------------

def inactive_people(con: Connection, days: int) -> list[str]:
    """Customers without any activity for more than ``days``: their last event, decision or
    record date; for a customer with none, when onetoone first saw them."""
    cutoff = utcnow() - timedelta(days=days)
    events = " UNION ALL ".join(
        f"SELECT customer_id, max(occurred_at) AS last_at FROM {t} GROUP BY customer_id"
        for t in ("transactions", "interactions", "consents", "social_posts", "feedback"))
    rows = con.execute(f"""
        WITH activity AS (
          {events}
          UNION ALL SELECT customer_id, max(decided_at) FROM decisions GROUP BY customer_id
          UNION ALL SELECT l.customer_id, max(greatest(r.created_at, r.updated_at))
          FROM customer_records r JOIN customer_links l USING (record_key)
          GROUP BY l.customer_id)
        SELECT c.customer_id FROM customers c LEFT JOIN (
          SELECT customer_id, max(last_at) AS last FROM activity GROUP BY customer_id) a
        USING (customer_id)
        WHERE coalesce(a.last, c.first_seen_at, c.resolved_at) < ?
        ORDER BY c.customer_id""", [cutoff]).fetchall()
    return [r[0] for r in rows]


class Privacy:
    """``Workspace.privacy``: the data-subject rights over one workspace."""

    def __init__(self, root: Path, workspace: WorkspaceSettings, settings: PrivacySettings,
                 store: Store) -> None:
        self.root, self.config, self.settings, self.store = root, workspace, settings, store

    def export(self, kind: str, value: str, *, actor: str,
               output: Path | None = None) -> dict[str, Any]:
        """The access document of the person named; with ``output``, also written there
        (owner-only), and remembered when inside the workspace so that erasure removes it."""
        with self.store.transaction() as con:
            customer_id = find_person(self.config, con, kind, value)
            document = export_person(self.root, self.config, con, customer_id, actor=actor)
            if output is not None:
                write_private(output, json.dumps(document, indent=2, ensure_ascii=False))
                inside = _inside(self.root, output)
                if inside is not None:
                    record(con, actor, "privacy.export.file", customer_id, {"file": inside})
        return document

    def erase(self, kind: str, value: str, *, actor: str, mode: str = "erase") -> Erasure:
        """Erase (or anonymise) the person named; a person already erased is reported so."""
        with self.store.transaction() as con:
            try:
                customer_id = find_person(self.config, con, kind, value)
            except NotFoundError:
                if self._erased(con, kind, value):
                    return Erasure(mode, [], already=True)
                raise
            return erase_people(self.root, con, [customer_id], mode=mode, actor=actor)

    def retention(self, *, actor: str, apply: bool = False) -> dict[str, Any]:
        """Customers inactive beyond ``[privacy] retention_days``: counted (dry run), or
        erased or anonymised as ``retention_mode`` says."""
        settings = self.settings
        if settings.retention_days is None:
            raise InvalidInputError("No retention period is set.",
                                    hint="Set [privacy] retention_days in onetoone.toml.")
        with self.store.transaction() as con:
            people = inactive_people(con, settings.retention_days)
            out: dict[str, Any] = {"retention_days": settings.retention_days,
                                   "mode": settings.retention_mode, "customers": len(people),
                                   "applied": apply}
            if apply and people:
                done = erase_people(self.root, con, people, mode=settings.retention_mode,
                                    actor=actor, reason="retention")
                out["rows"] = done.rows
            elif not apply:
                record(con, actor, "privacy.retention.dry_run", None,
                       {"customers": len(people)})
        return out

    def _erased(self, con: Connection, kind: str, value: str) -> bool:
        """Whether the person named was erased or anonymised before."""
        if kind in ("customer", "customer_id"):
            return bool(con.execute(
                "SELECT count(*) FROM audit_log WHERE customer_id = ? AND action IN "
                "('privacy.erase', 'privacy.anonymise')", [value]).fetchall()[0][0])
        key = privacy_key(self.root)
        if key is None:
            return False
        digest = erasure_hash(key, kind, _normalize(self.config, con, kind, value))
        return bool(con.execute("SELECT count(*) FROM erasures WHERE identifier_hash = ?",
                                [digest]).fetchall()[0][0])


def _inside(root: Path, path: Path) -> str | None:
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return None


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file readable by its owner only (replacing any)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)


def compact_if_pending(root: Path) -> bool | None:
    """After erasures, rewrite the database file so that the erased values leave it (needs
    the database closed everywhere): True done, False held by another process, None when
    nothing was pending."""
    from onetoone.store import DATABASE_FILE, Store, compact_database

    path = root / DATABASE_FILE
    flag = "FROM onetoone_meta WHERE key = 'compact_pending'"
    try:
        with Store(path) as store:
            if store.scalar(f"SELECT value {flag}") is None:
                return None
        if not compact_database(path):
            return False
        with Store(path) as store:  # the flag goes once the file is rewritten
            store.execute(f"DELETE {flag}")
    except WorkspaceError:
        return False
    return True
