"""Batch steps as jobs of the running server: one at a time, queued, each with its progress,
its log, its result and its end (``POST /v1/jobs``; the CLI on a served workspace).

A job runs in the server's process, in a thread of its own, on a cursor of its own
(:meth:`Workspace.reader`): the decision service keeps answering meanwhile. Jobs are kept in the
``jobs`` table; a job the server was running or had queued when it stopped is marked
``interrupted`` at the next start (its step ran in one transaction per part, so nothing of an
unfinished part was kept).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from onetoone.clock import utcnow
from onetoone.errors import InvalidInputError, NotFoundError, OneToOneError

if TYPE_CHECKING:
    from onetoone.progress import Progress
    from onetoone.workspace import Workspace

#: How many log lines a job keeps (the last ones).
LOG_LINES = 200


class JobCancelled(OneToOneError):
    """A running job was cancelled; what it had not committed is rolled back."""


@dataclass
class Job:
    """One batch step run by the server."""

    job_id: str
    step: str
    args: dict[str, Any]
    status: str = "queued"
    part: str = ""
    done: float = 0.0
    log: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def exit_code(self) -> int | None:
        """The CLI's exit code for this job: 0 done, 1 failed, 130 cancelled or interrupted."""
        return {"succeeded": 0, "failed": 1, "cancelled": 130, "interrupted": 130}.get(
            self.status)

    def as_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "step": self.step, "args": self.args,
                "status": self.status, "part": self.part, "done": round(self.done, 4),
                "log": self.log[-LOG_LINES:], "result": self.result, "error": self.error,
                "exit_code": self.exit_code, "created_at": self.created_at,
                "started_at": self.started_at, "finished_at": self.finished_at}


def _ingest(ws: Workspace, args: dict[str, Any], tell: Progress) -> dict[str, Any]:
    rows: dict[str, int] = {}

    def counted(source: str, read: int) -> None:
        rows[source] = rows.get(source, 0) + read
        tell(f"{source}: {rows[source]:,} rows read", 0.0)

    results = ws.ingest(args.get("source"), progress=counted)
    return {"sources": [r.summary() for r in results]}


def _identify(ws: Workspace, args: dict[str, Any], tell: Progress) -> dict[str, Any]:
    return ws.identify(full=bool(args.get("full", False)), progress=tell).summary()


def _score(ws: Workspace, args: dict[str, Any], tell: Progress) -> dict[str, Any]:
    return ws.score(args.get("as_of"), progress=tell).summary()


def _kpis(ws: Workspace, args: dict[str, Any], tell: Progress) -> dict[str, Any]:
    frame = ws.kpis()
    return {"months": int(frame["month"].nunique()) if len(frame) else 0}


def _report(ws: Workspace, args: dict[str, Any], tell: Progress) -> dict[str, Any]:
    output = args.get("output")
    return {"path": str(ws.report(None if output is None else ws.path_inside(str(output))))}


Step = Callable[["Workspace", dict[str, Any], "Progress"], dict[str, Any]]
#: step -> (function, the arguments it takes)
STEPS: dict[str, tuple[Step, tuple[str, ...]]] = {
    "ingest": (_ingest, ("source",)),
    "identify": (_identify, ("full",)),
    "score": (_score, ("as_of",)),
    "kpis": (_kpis, ()),
    "report": (_report, ("output",)),
}


class JobRunner:
    """The server's queue of jobs: one runs at a time, in a thread, in submission order."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queue: list[str] = []
        self._lock = threading.Condition()
        self._closed = False
        self.interrupted = self._mark_interrupted()
        self._thread = threading.Thread(target=self._loop, name="onetoone-jobs", daemon=True)
        self._thread.start()

    # -- the table ------------------------------------------------------------------------
    def _write(self, job: Job) -> None:
        with self.ws.reader() as view, view.store.transaction() as con:
            con.execute("DELETE FROM jobs WHERE job_id = ?", [job.job_id])
            con.execute("INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
                job.job_id, job.step, json.dumps(job.args), job.status,
                None if job.result is None else json.dumps(job.result, default=str),
                job.error, job.created_at, job.started_at, job.finished_at])

    def _mark_interrupted(self) -> list[str]:
        """Jobs a previous server left queued or running: now ``interrupted``."""
        with self.ws.reader() as view, view.store.transaction() as con:
            ids = [r[0] for r in con.execute(
                "SELECT job_id FROM jobs WHERE status IN ('queued', 'running')").fetchall()]
            con.execute("UPDATE jobs SET status = 'interrupted', finished_at = ?, error = "
                        "'The server stopped before the job ended.' WHERE job_id IN "
                        "(SELECT unnest(?::VARCHAR[]))", [utcnow(), ids])
        return ids

    # -- the API --------------------------------------------------------------------------
    def submit(self, step: str, args: dict[str, Any] | None = None) -> Job:
        """Queue ``step`` with ``args``; unknown steps or arguments are refused."""
        if step not in STEPS:
            raise InvalidInputError(f"Unknown step '{step}'.",
                                    hint=f"Steps: {', '.join(STEPS)}.")
        args = dict(args or {})
        unknown = sorted(set(args) - set(STEPS[step][1]))
        if unknown:
            known = ", ".join(STEPS[step][1]) or "none"
            raise InvalidInputError(f"Unknown argument(s) {', '.join(unknown)} for '{step}'.",
                                    hint=f"Its arguments: {known}.")
        job = Job(f"job-{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}", step, args)
        with self._lock:
            if self._closed:
                raise OneToOneError("The server is stopping; no new job is taken.")
            self._jobs[job.job_id] = job
            self._queue.append(job.job_id)
            ahead = len(self._queue) - 1 + sum(j.status == "running"
                                               for j in self._jobs.values())
            if ahead:
                job.log.append(f"queued behind {ahead} job(s)")
            self._write(job)
            self._lock.notify_all()
        return job

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"No job '{job_id}' since this server started.",
                                hint="Earlier jobs are in the jobs table ('onetoone sql').")
        return job

    def list(self) -> list[Job]:
        return list(reversed(self._jobs.values()))

    def cancel(self, job_id: str) -> Job:
        """A queued job is dropped; a running one stops at its next progress point, its
        uncommitted part rolled back."""
        job = self.get(job_id)
        with self._lock:
            if job.status == "queued":
                self._queue.remove(job_id)
                self._end(job, "cancelled", error="Cancelled before it started.")
            elif job.status == "running":
                job.cancel.set()
                job.log.append("cancel asked; stopping at the next progress point")
        return job

    def close(self, timeout: float = 30.0) -> None:
        """Take no new job, cancel the queued ones and the running one, wait for it."""
        with self._lock:
            self._closed = True
            for job_id in list(self._queue):
                self._queue.remove(job_id)
                self._end(self._jobs[job_id], "cancelled", error="The server stopped.")
            for job in self._jobs.values():
                if job.status == "running":
                    job.cancel.set()
            self._lock.notify_all()
        self._thread.join(timeout)

    # -- the worker -----------------------------------------------------------------------
    def _end(self, job: Job, status: str, *, error: str | None = None) -> None:
        job.status, job.error, job.finished_at = status, error, utcnow()
        job.log.append(f"{status}" + (f": {error}" if error else ""))
        self._write(job)

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._lock.wait()
                if not self._queue:
                    return
                job = self._jobs[self._queue.pop(0)]
                job.status, job.started_at = "running", utcnow()
                self._write(job)
            self._run(job)

    def _run(self, job: Job) -> None:
        def tell(part: str, done: float) -> None:
            if job.cancel.is_set():
                raise JobCancelled("Cancelled.")
            if part != job.part:
                job.log.append(part)
                del job.log[:-LOG_LINES]
            job.part, job.done = part, max(job.done, done)

        function = STEPS[job.step][0]
        try:
            with self.ws.reader() as view:
                job.result = function(view, job.args, tell)
        except JobCancelled:
            self._end(job, "cancelled", error="Cancelled while running; its uncommitted part "
                      "was rolled back.")
        except OneToOneError as exc:
            self._end(job, "failed", error=exc.user_message())
        except Exception as exc:  # a bug: the job fails, the server keeps serving
            self._end(job, "failed", error=f"Internal error: {type(exc).__name__}.")
        else:
            if job.step in ("ingest", "identify", "score") and self.ws.running_service:
                job.log.append("refreshing the decision service's profiles")
                self.ws.decisions.refresh()
            job.done = 1.0
            self._end(job, "succeeded")
