"""Group commit: many requests, one DuckDB transaction, acknowledged after COMMIT.

Requests hand the writer a small *work* function and wait on a future. A single writer thread
takes everything queued (lingering up to ``group_commit_ms`` for more), runs the works on its
own cursor inside one transaction, inserts the rows they buffered with one ``INSERT`` per table
(Arrow), commits (DuckDB writes its WAL at commit) and only then resolves the futures: an
acknowledged event survives a crash. If the group fails, each work is retried alone so that one
bad request cannot fail the others.

Event ids claimed in a group become "seen" only when the group commits, which makes ``POST
/v1/events`` idempotent without a unique index.

*Deferred* works (the decision log, which nobody waits for) do not start a commit of their own:
they wait up to ``deferred_ms`` and go with the next group, so that a stream of decisions costs
a few commits a second instead of one per decision. Order is kept: a write acknowledged after a
deferred work proves that work committed too. :meth:`GroupCommitWriter.sync` commits what is
deferred (read-your-writes); closing the writer commits everything queued.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from onetoone.schema import TABLES
from onetoone.store import Connection, DatabaseError, drop_frame, show_frame

log = logging.getLogger("onetoone.writer")

_ARROW = {
    "VARCHAR": pa.string(),
    "TIMESTAMP": pa.timestamp("us"),
    "DOUBLE": pa.float64(),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "BOOLEAN": pa.bool_(),
    "JSON": pa.string(),
    "UBIGINT": pa.uint64(),
    "DATE": pa.date32(),
    "VARCHAR[]": pa.list_(pa.string()),
    "DECIMAL(18,2)": pa.float64(),
}


def arrow_table(table: str, rows: list[dict[str, Any]]) -> pa.Table:
    """Rows (dicts) as an Arrow table typed like ``table``'s columns that they use."""
    names = list(dict.fromkeys(k for row in rows for k in row))
    types = {c.name: c.sql_type for c in TABLES[table].columns}
    schema = pa.schema([(n, _ARROW[types[n]]) for n in names])
    return pa.Table.from_pylist(rows, schema=schema)


class Txn:
    """What one group of works writes: buffered rows, replacements, claimed event ids."""

    def __init__(self, cur: Connection, seen: set[str]) -> None:
        self.cur = cur
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.replace: dict[tuple[str, tuple[str, ...]], dict[tuple[Any, ...], dict[str, Any]]] = {}
        self._seen = seen
        self.claimed: set[str] = set()

    def insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        self.rows.setdefault(table, []).extend(rows)

    def upsert(self, table: str, key: tuple[str, ...], row: dict[str, Any]) -> None:
        """Replace the row of ``table`` with the same ``key`` columns (last one wins)."""
        self.replace.setdefault((table, key), {})[tuple(row[k] for k in key)] = row

    def claim(self, event_id: str) -> bool:
        """True the first time an event id is seen (in the tables or in this group)."""
        if event_id in self._seen or event_id in self.claimed:
            return False
        self.claimed.add(event_id)
        return True

    def flush(self) -> None:
        cur = self.cur
        for (table, key), replaced in self.replace.items():
            cond = " AND ".join(f'"{k}" = ?' for k in key)
            cur.executemany(f'DELETE FROM "{table}" WHERE {cond}', [list(k) for k in replaced])
            self.insert(table, list(replaced.values()))
        for table, rows in self.rows.items():
            if not rows:
                continue
            data = arrow_table(table, rows)
            cols = ", ".join(f'"{n}"' for n in data.column_names)
            show_frame(cur, "_group_rows", data)
            try:
                cur.execute(f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM _group_rows')
            finally:
                drop_frame(cur, "_group_rows")


Work = Callable[[Txn], Any]


@dataclass
class _Item:
    work: Work
    future: Future[Any]
    deferred: bool = False
    #: run on the writer's cursor outside any transaction, between two groups
    bare: bool = False


class GroupCommitWriter:
    """The one writer of the service's database."""

    def __init__(
        self,
        con: Connection,
        *,
        group_commit_ms: float = 2.0,
        deferred_ms: float = 0.0,
        max_group: int = 10_000,
    ) -> None:
        self.cur = con.cursor()
        self.linger = group_commit_ms / 1000.0
        self.deferred_linger = deferred_ms / 1000.0
        self._deferred_lock = threading.Lock()
        self._deferred_queued = 0
        self._deferred_done = 0
        self.max_group = max_group
        self.seen: set[str] = set()
        self.groups = 0
        self.works = 0
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._load_seen()
        self._thread = threading.Thread(target=self._run, name="onetoone-writer", daemon=True)
        self._thread.start()

    def _load_seen(self) -> None:
        for table in ("interactions", "transactions"):
            for (event_id,) in self.cur.execute(
                f"SELECT event_id FROM {table} WHERE event_id IS NOT NULL"
            ).fetchall():
                self.seen.add(event_id)

    def submit(self, work: Work, *, deferred: bool = False) -> Future[Any]:
        """Queue ``work``; the future resolves once it is committed. A ``deferred`` work waits
        up to ``deferred_ms`` for other writes to share their commit."""
        future: Future[Any] = Future()
        deferred = deferred and self.deferred_linger > 0
        if deferred:
            with self._deferred_lock:
                self._deferred_queued += 1
        self._queue.put(_Item(work, future, deferred))
        return future

    def between_groups(self, work: Callable[[Connection], Any],
                       timeout: float | None = 60) -> Any:
        """Run ``work(cursor)`` in the writer's thread outside any transaction, once every
        write queued before it is committed and before any queued after: while it runs, the
        service commits nothing (a checkpoint sees every write acknowledged so far)."""
        future: Future[Any] = Future()
        self._queue.put(_Item(work, future, bare=True))  # type: ignore[arg-type]
        return future.result(timeout)

    def sync(self) -> None:
        """Commit the deferred works queued so far (returns at once when there are none)."""
        if self._deferred_queued != self._deferred_done:
            self.write(lambda _txn: None)

    def write(self, work: Work, timeout: float | None = 60) -> Any:
        """Submit and wait until committed."""
        return self.submit(work).result(timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    # -- the writer thread --------------------------------------------------------------
    def _run(self) -> None:
        stop = False
        waiting: list[_Item] = []  # deferred works not yet committed
        due = 0.0
        while not stop:
            try:
                item = self._queue.get(timeout=max(due - time.perf_counter(), 0)
                                       if waiting else None)
            except queue.Empty:
                self._commit(waiting)
                waiting = []
                continue
            if item is None:
                if waiting:
                    self._commit(waiting)
                break
            if item.bare:
                if waiting:
                    self._commit(waiting)
                    waiting = []
                self._bare(item)
                continue
            if item.deferred and len(waiting) < self.max_group:
                if not waiting:
                    due = time.perf_counter() + self.deferred_linger
                waiting.append(item)
                continue
            group = [*waiting, item]
            waiting = []
            bare: _Item | None = None
            deadline = time.perf_counter() + self.linger
            while len(group) < self.max_group:
                try:
                    timeout = deadline - time.perf_counter()
                    nxt = (
                        self._queue.get(timeout=timeout)
                        if timeout > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                if nxt.bare:
                    bare = nxt
                    break
                group.append(nxt)
            self._commit(group)
            if bare is not None:
                self._bare(bare)

    def _bare(self, item: _Item) -> None:
        try:
            item.future.set_result(item.work(self.cur))  # type: ignore[arg-type]
        except Exception as exc:
            self._fail(item, exc)

    def _commit(self, group: list[_Item]) -> None:
        deferred = sum(i.deferred for i in group)
        try:
            self._commit_group(group)
        finally:
            if deferred:
                with self._deferred_lock:
                    self._deferred_done += deferred

    def _commit_group(self, group: list[_Item]) -> None:
        try:
            results = self._transaction([i.work for i in group])
        except Exception as exc:
            if len(group) == 1:
                self._fail(group[0], exc)
                return
            for item in group:  # isolate the failing work
                try:
                    item.future.set_result(self._transaction([item.work])[0])
                except Exception as single:
                    self._fail(item, single)
            return
        for item, result in zip(group, results, strict=True):
            item.future.set_result(result)

    @staticmethod
    def _fail(item: _Item, exc: Exception) -> None:
        log.error("write failed: %s", type(exc).__name__)
        item.future.set_exception(exc)

    def _transaction(self, works: list[Work]) -> list[Any]:
        txn = Txn(self.cur, self.seen)
        self.cur.execute("BEGIN TRANSACTION")
        try:
            results = [work(txn) for work in works]
            txn.flush()
            self.cur.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(DatabaseError):
                self.cur.execute("ROLLBACK")
            raise
        self.seen.update(txn.claimed)
        self.groups += 1
        self.works += len(works)
        return results
