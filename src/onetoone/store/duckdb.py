"""The embedded DuckDB store: one file per workspace, schema versioned with migrations."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb

from onetoone.errors import InvalidInputError, WorkspaceError
from onetoone.schema import SCHEMA_VERSION, TABLES

DATABASE_FILE = "onetoone.duckdb"

#: A connection to the engine; domain code types its arguments with it and never imports the
#: engine itself.
Connection = duckdb.DuckDBPyConnection
#: The engine's own errors: any failed statement, and a statement that ran out of memory.
DatabaseError = duckdb.Error
OutOfMemory = duckdb.OutOfMemoryException
#: The engine's version, kept beside trained models that depend on its numerics.
ENGINE_VERSION: str = duckdb.__version__


def scratch(**settings: str | bool) -> Connection:
    """A private in-memory database, for working tables that never reach the workspace, with
    the engine ``settings`` given (``memory_limit="2GB"``, ``temp_directory=...``)."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    for name, value in settings.items():
        con.execute(f"SET {name} = {_literal(value)}")
    return con


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "'" + str(value).replace("'", "''") + "'"


def _create_tables(con: duckdb.DuckDBPyConnection) -> None:
    for table in TABLES.values():
        con.execute(table.ddl())


def _received_at(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("ALTER TABLE consents ADD COLUMN IF NOT EXISTS received_at TIMESTAMP")


def _privacy(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS expires_at TIMESTAMP")
    _create_tables(con)


#: Migration to version N is MIGRATIONS[N]; each brings a database from N-1 to N. Version 2
#: adds ``identity_graph`` (the next identify run is a full one); version 3 adds ``kpis``;
#: version 4 adds ``jobs``; version 5 adds ``consents.received_at``; version 6 adds
#: ``api_keys.expires_at``, ``audit_log`` and ``erasures``; version 7 adds ``deliveries``;
#: version 8 adds ``campaign_definitions``.
MIGRATIONS: dict[int, Callable[[duckdb.DuckDBPyConnection], None]] = {
    1: _create_tables, 2: _create_tables, 3: _create_tables, 4: _create_tables,
    5: _received_at, 6: _privacy, 7: _create_tables, 8: _create_tables}


def _con(target: Any) -> Connection:
    """The connection of a :class:`Store`, or the connection itself."""
    return target.con if isinstance(target, Store) else target


def show_frame(target: Any, name: str, frame: Any) -> None:
    """Make a pandas DataFrame or an Arrow table queryable as the view ``name`` (until
    :func:`drop_frame`); ``target``: a :class:`Store` or a connection."""
    _con(target).register(name, frame)


def drop_frame(target: Any, name: str) -> None:
    """Forget the view of :func:`show_frame`."""
    _con(target).unregister(name)


def _close_pending(con: Connection) -> None:
    """DuckDB refuses ``register`` while the connection holds a result not read to its end
    (``fetchone()`` on a one-row result is enough). A new statement closes that result first,
    without running the rest of it (as ``complete()`` would) nor failing an open transaction
    (as ``abort()`` does after a statement that may write)."""
    con.execute("SELECT 1").fetchall()


@contextmanager
def frame_view(target: Any, name: str, frame: Any) -> Iterator[str]:
    """A pandas DataFrame or an Arrow table queryable as the view ``name`` for the time of a
    block (``target``: a :class:`Store` or a connection); gone after it, even when it fails."""
    _close_pending(_con(target))
    show_frame(target, name, frame)
    try:
        yield name
    finally:
        drop_frame(target, name)


def has_table(target: Any, name: str) -> bool:
    """Whether a table or view ``name`` exists (the workspace's, or a temporary one)."""
    return bool(_con(target).execute(
        "SELECT count(*) FROM (SELECT table_name FROM duckdb_tables() UNION ALL "
        "SELECT view_name FROM duckdb_views()) WHERE table_name = ?", [name]).fetchall()[0][0])


def table_columns(target: Any, name: str) -> list[str]:
    """The column names of table ``name``, in order."""
    return [r[0] for r in _con(target).execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index",
        [name]).fetchall()]


#: Statements that only read: SELECT (with WITH, FROM-first, DESCRIBE, SUMMARIZE) and EXPLAIN.
_READING = (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN)


def read_query(target: Any, sql: str, limit: int | None = None) -> tuple[Any, bool]:
    """Run one statement that only reads, for a person (``onetoone sql``): its rows as an
    Arrow table, at most ``limit`` of them, and whether there were more. Anything else (a
    write, ATTACH, COPY, PRAGMA, several statements, SQL that does not parse) is refused with
    one sentence."""
    import pyarrow as pa

    con = _con(target)
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise InvalidInputError(f"This SQL does not parse: {_first_line(exc)}.") from None
    if len(statements) != 1:
        raise InvalidInputError(f"Give exactly one statement ({len(statements)} given).")
    if statements[0].type not in _READING:
        raise InvalidInputError(
            "Only statements that read can run here (SELECT, WITH, FROM, DESCRIBE, "
            f"SUMMARIZE, EXPLAIN), not {statements[0].type.name}.",
            hint="Change the data with onetoone's commands or API.")
    try:
        reader = con.sql(sql).to_arrow_reader(10_000)
        batches, rows = [], 0
        for batch in reader:
            batches.append(batch)
            rows += batch.num_rows
            if limit is not None and rows > limit:
                break
        table = pa.Table.from_batches(batches, schema=reader.schema)
    except duckdb.Error as exc:
        raise InvalidInputError(f"The query failed: {_first_line(exc)}.") from None
    if limit is not None and table.num_rows > limit:
        return table.slice(0, limit), True
    return table, False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(".!") if text else type(exc).__name__


@contextmanager
def duckdb_settings(con: duckdb.DuckDBPyConnection, **values: str | bool) -> Iterator[None]:
    """DuckDB settings (``memory_limit="3GB"``, ``preserve_insertion_order=False``) for the
    time of a block, restored after it, even when it fails: reset to DuckDB's default when
    that is what they were (a memory limit read back as text is rounded), else set again."""
    names = list(values)
    before = con.execute("SELECT " + ", ".join(f"current_setting('{n}')" for n in names)
                         ).fetchall()[0]

    for name, value in values.items():
        con.execute(f"SET {name} = {_literal(value)}")
    try:
        yield
    finally:
        try:
            _restore(con, names, before)
        except duckdb.TransactionException:
            # a statement of the block failed inside Store.atomic: DuckDB refuses every
            # statement until a rollback, so the block is given up and the settings restored
            outer = _ATOMIC.get(id(con))
            if outer is None:
                raise
            outer.spoil("A statement failed.")
            _restore(con, names, before)


def _restore(con: Connection, names: list[str], before: tuple[Any, ...]) -> None:
    for name, value in zip(names, before, strict=True):
        con.execute(f"RESET {name}")
        if con.execute(f"SELECT current_setting('{name}')").fetchall()[0][0] != value:
            con.execute(f"SET {name} = {_literal(value)}")


#: The connections inside a block of :meth:`Store.atomic` (by ``id``), with their store.
_ATOMIC: dict[int, Store] = {}


@contextmanager
def transaction(target: Any) -> Iterator[Connection]:
    """All or nothing on ``target`` (a :class:`Store` or a connection): an exception rolls
    everything back. Inside :meth:`Store.atomic` on the same connection the block is part of
    that transaction (see there)."""
    con = _con(target)
    outer = _ATOMIC.get(id(con))
    if outer is not None:
        try:
            yield con
        except BaseException as exc:
            outer.spoil(f"A part of the step failed ({type(exc).__name__}).")
            raise
        return
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def copy_database(con: Connection, source: Path, dest: Path,
                  quiet: Callable[[Callable[[Connection], Any]], Any]) -> None:
    """Copy the database ``source`` as of now to ``dest``, a file another process opens on
    its own, while ``con``'s process goes on writing.

    ``quiet(f)`` runs ``f(cursor)`` while nothing commits (the decision service's writer
    between two groups): there, automatic checkpoints are turned off and a checkpoint writes
    every commit so far to the file. The file is then copied while commits go on: they go to
    the write-ahead log and to blocks the checkpoint does not reference, so the copy holds
    the checkpointed state. Automatic checkpoints are allowed again after the copy.
    """
    threshold = con.execute("SELECT current_setting('checkpoint_threshold')").fetchall()[0][0]
    wal = Path(f"{source}.wal")

    def checkpoint(cur: Connection) -> None:
        cur.execute("SET checkpoint_threshold = '1000 TB'")
        cur.execute("CHECKPOINT")
        if wal.exists() and wal.stat().st_size > 0:
            raise WorkspaceError("The database could not be checkpointed for the job's copy.",
                                 hint="Run the job again.")

    try:
        quiet(checkpoint)
        shutil.copyfile(source, dest)
    finally:
        con.execute(f"SET checkpoint_threshold = {_literal(threshold)}")


def compact_database(path: Path) -> bool:
    """Rewrite the database at ``path`` into a new file holding only its live data, then put
    it in place: deleted rows and dropped tables leave no byte behind (DuckDB reuses freed
    blocks but never clears them). Needs the database closed everywhere; returns False when
    another process holds it. The file is replaced atomically: a crash leaves the old one."""
    fresh = path.with_name(path.name + ".compact")
    fresh.unlink(missing_ok=True)
    try:
        con = duckdb.connect(str(path))
    except duckdb.IOException:
        return False
    try:
        con.execute("CHECKPOINT")
        source = con.execute("SELECT current_database()").fetchall()[0][0]
        con.execute(f"ATTACH {_literal(str(fresh))} AS _compact")
        con.execute(f'COPY FROM DATABASE "{source}" TO _compact')
        con.execute("DETACH _compact")
    except BaseException:
        con.close()
        fresh.unlink(missing_ok=True)
        raise
    con.close()
    os.chmod(fresh, path.stat().st_mode & 0o777)
    with open(fresh, "rb") as f:
        os.fsync(f.fileno())
    os.replace(fresh, path)
    Path(f"{path}.wal").unlink(missing_ok=True)  # empty after the checkpoint at close
    return True


class Store:
    """A DuckDB database holding one customer base."""

    def __init__(self, path: Path | str, *, read_only: bool = False) -> None:
        self.path = Path(path) if str(path) != ":memory:" else path
        try:
            self.con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise WorkspaceError(
                    f"The database {path} is in use by another onetoone process.",
                    hint="Stop that process (e.g. 'onetoone serve') or use its REST API.",
                ) from None
            raise WorkspaceError(f"Cannot open the database {path}: {exc}.") from None
        self.con.execute("SET enable_progress_bar = false")
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute("SET preserve_insertion_order = false")
        if not read_only:
            self.migrate()

    # -- schema -------------------------------------------------------------------------
    def schema_version(self) -> int:
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS onetoone_meta (key VARCHAR PRIMARY KEY, value VARCHAR)"
        )
        row = self.con.execute(
            "SELECT value FROM onetoone_meta WHERE key = 'schema_version'"
        ).fetchone()
        return int(row[0]) if row else 0

    def migrate(self) -> None:
        """Bring the database to the package's schema version, in one transaction."""
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise WorkspaceError(
                f"This workspace was made by a newer onetoone (schema version {version}; this "
                f"version knows up to {SCHEMA_VERSION}).",
                hint="Upgrade onetoone ('pip install -U onetoone') to open it.",
            )
        if version == SCHEMA_VERSION:
            return
        with self.transaction():
            for target in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[target](self.con)
            self.con.execute(
                "INSERT OR REPLACE INTO onetoone_meta VALUES ('schema_version', ?)",
                [str(SCHEMA_VERSION)],
            )

    # -- access -------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All or nothing: an exception rolls everything back. Inside :meth:`atomic` the
        block is part of that transaction."""
        with transaction(self.con) as con:
            yield con

    #: Inside :meth:`atomic`: why the block can only be rolled back (a part of it failed).
    _spoiled: str | None = None

    @contextmanager
    def atomic(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction for everything written on this store's connection during a block
        (a job): committed at its end, rolled back when it raises or the process dies.

        DuckDB has no nested transaction nor savepoint: a :meth:`transaction` (or
        :func:`transaction`) inside the block joins it, and its exception still propagates.
        A part that failed, even when its error was then caught, fails the whole block at its
        end (DuckDB would commit a transaction aborted by an error as nothing, silently).
        Writes on another connection or cursor are outside it."""
        con = self.con
        if id(con) in _ATOMIC:
            raise RuntimeError("Store.atomic blocks do not nest.")
        con.execute("BEGIN TRANSACTION")
        _ATOMIC[id(con)], self._spoiled = self, None
        try:
            yield con
            if self._spoiled is None:
                try:
                    con.execute("SELECT 1").fetchall()  # refused in an aborted transaction
                except duckdb.TransactionException:
                    self._spoiled = "A statement failed."
            if self._spoiled is not None:
                raise WorkspaceError(f"{self._spoiled} Nothing of it was kept.")
        except BaseException:
            _ATOMIC.pop(id(con), None)
            with suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
        _ATOMIC.pop(id(con), None)
        try:
            con.execute("COMMIT")
        except duckdb.Error:  # a write conflict found at commit: nothing was kept
            with suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise

    def spoil(self, why: str) -> None:
        """Mark the :meth:`atomic` block as failed (its end rolls it back and raises); a
        transaction aborted by an error is rolled back now and a new one opened, so that the
        block can finish (restore its settings) without writing anything that is kept."""
        if self._spoiled is None:
            self._spoiled = why
        try:
            self.con.execute("SELECT 1").fetchall()
        except duckdb.TransactionException:
            self.con.execute("ROLLBACK")
            self.con.execute("BEGIN TRANSACTION")

    def execute(self, sql: str, params: list[Any] | None = None) -> duckdb.DuckDBPyConnection:
        return self.con.execute(sql, params or [])

    def fetchall(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, params or []).fetchall()

    def scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        rows = self.con.execute(sql, params or []).fetchall()  # no result left pending
        return rows[0][0] if rows else None

    def register(self, name: str, frame: Any) -> None:
        """Make a DataFrame or an Arrow table queryable as the view ``name`` (until
        :func:`drop_frame`), even while a result is pending (:func:`frame_view` for a block)."""
        _close_pending(self.con)
        show_frame(self.con, name, frame)

    def table_counts(self) -> dict[str, int]:
        return {
            name: int(self.scalar(f'SELECT count(*) FROM "{name}"')) for name in TABLES
        }

    def cursor(self) -> Store:
        """A store on its own cursor of the same database: for another thread (a request of
        the service reading while others write), each with its own transactions. Closed at the
        end of a ``with`` block."""
        other = object.__new__(Store)
        other.path = self.path
        other.con = self.con.cursor()
        return other

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
