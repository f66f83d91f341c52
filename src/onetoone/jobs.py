"""Batch steps as jobs of the running server: one at a time, queued, each with its progress,
its log, its result and its end (``POST /v1/jobs``; the CLI on a served workspace).

A job runs in the server's process, in a thread of its own, on a cursor of its own
(:meth:`Workspace.reader`): the decision service keeps answering meanwhile. Its step writes in
one transaction on that cursor (:meth:`Store.atomic`), committed only when the step succeeds:
a job that fails, is cancelled or dies with the process leaves the workspace as it was. Jobs
are kept in the ``jobs`` table; a job the server was running or had queued when it stopped is
marked ``interrupted`` at the next start.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from onetoone.clock import utcnow
from onetoone.errors import InvalidInputError, NotFoundError, OneToOneError
from onetoone.store import DATABASE_FILE, Connection, DatabaseError, copy_database

if TYPE_CHECKING:
    from onetoone.progress import Progress
    from onetoone.workspace import Workspace

#: How many log lines a job keeps (the last ones).
LOG_LINES = 200

log = logging.getLogger("onetoone.jobs")


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

    path, source = args.get("path"), args.get("source")
    if source is not None and str(source) not in ws.config.sources and (
            Path(str(source)).exists() or (ws.root / str(source)).exists()):
        path, source = path or source, None  # a file named as the source: checked below
    results = ws.ingest(
        source, progress=counted,
        # an ad-hoc file: inside the workspace only (a key may not make the server read
        # anything else of the machine)
        path=None if path is None else ws.path_inside(str(path), reading=True),
        entity=args.get("entity"), columns=args.get("columns"),
        identifiers=args.get("identifiers"), options=args.get("options"))
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


def _actor(args: dict[str, Any]) -> str:
    """Who asked: the API key (set by the route), else the user of the command line."""
    from onetoone.privacy.audit import cli_actor

    return str(args.get("actor") or cli_actor())


def _merge(ws: Workspace, args: dict[str, Any], tell: Progress) -> dict[str, Any]:
    a, b = str(args["customer_a"]), str(args["customer_b"])
    result = ws.identity.merge(a, b, reason=str(args.get("reason") or "")).summary()
    ws.audit(_actor(args), "identity.merge", a, other=b)
    return result


def _unmerge(ws: Workspace, args: dict[str, Any], tell: Progress) -> dict[str, Any]:
    result = ws.identity.unmerge(str(args["record_key"]),
                                 reason=str(args.get("reason") or "")).summary()
    ws.audit(_actor(args), "identity.unmerge", None, record=str(args["record_key"]))
    return result


def _review(ws: Workspace, args: dict[str, Any], tell: Progress) -> dict[str, Any]:
    """Accept or reject pairs (``"LEFT,RIGHT"``); the last run's summary."""
    result: dict[str, Any] = {}
    for key, accept in (("accept", True), ("reject", False)):
        for pair in args.get(key) or []:
            left, _, right = str(pair).partition(",")
            result = ws.identity.review(left.strip(), right.strip(), accept).summary()
            ws.audit(_actor(args), "identity.review", None, left=left.strip(),
                     right=right.strip(), accepted=accept)
    if not result:
        raise InvalidInputError("Give at least one pair to accept or reject.")
    return result


def _erase(ws: Workspace, args: dict[str, Any], tell: Progress) -> dict[str, Any]:
    """Erase or anonymise one person by customer id (``onetoone privacy erase``; the jobs
    table keeps the arguments, so never an e-mail or a phone)."""
    return ws.privacy.erase("customer", str(args["customer"]),
                            mode=str(args.get("mode") or "erase"),
                            actor=_actor(args)).summary()


def _retention(ws: Workspace, args: dict[str, Any], tell: Progress) -> dict[str, Any]:
    """People inactive beyond ``[privacy] retention_days`` erased or anonymised (with
    ``dry_run``, only counted; the command line's default)."""
    return ws.privacy.retention(actor=str(args.get("actor") or "job:retention"),
                                apply=not args.get("dry_run", False))


def _campaign(ws: Workspace, args: dict[str, Any], tell: Progress) -> dict[str, Any]:
    """Run a campaign (``onetoone campaign run NAME``): decide, commit, deliver."""
    name = str(args["name"])
    tell(f"campaign {name}", 0.0)
    result = ws.campaigns.run(name)
    ws.audit(_actor(args), "campaign.run", None, campaign=name, run=result["run_id"],
             customers=result["audience"], sent=result["delivery"]["sent"])
    return result


def _bounces(ws: Workspace, args: dict[str, Any], tell: Progress) -> dict[str, Any]:
    """Apply the bounces of the channels' ``bounce_mailbox`` (``onetoone campaign bounces``),
    or of a one-off ``mailbox`` inside the workspace, through the decision service."""
    from onetoone.channels.bounces import intake

    mailbox = args.get("mailbox")
    return intake(ws, None if args.get("channel") is None else str(args["channel"]),
                  None if mailbox is None else ws.path_inside(str(mailbox), reading=True),
                  actor=str(args.get("actor") or "job:bounces"), tell=tell)


def attribute_conversions(ws: Workspace) -> int:
    """After an ingest: the purchases it loaded that converted campaign messages, recorded
    through the workspace's decision service (started only when there is one to record)."""
    from onetoone.interact import conversions

    found = conversions.attributable(ws.store.con.cursor(),
                                     ws.config.control_groups.window_days,
                                     exclude_statuses=ws.config.value.exclude_statuses)
    return ws.decisions.convert(found) if found else 0


Step = Callable[["Workspace", dict[str, Any], "Progress"], dict[str, Any]]
#: step -> (function, the arguments it takes); the batch steps, which [schedule] can run
STEPS: dict[str, tuple[Step, tuple[str, ...]]] = {
    "ingest": (_ingest, ("source", "path", "entity", "columns", "identifiers", "options")),
    "identify": (_identify, ("full",)),
    "score": (_score, ("as_of",)),
    "kpis": (_kpis, ()),
    "report": (_report, ("output",)),
    "retention": (_retention, ("dry_run", "actor")),
    #: run through the decision service, as CAMPAIGN_STEPS (below) says
    "bounces": (_bounces, ("channel", "mailbox", "actor")),
}
#: a person's decisions on identity (onetoone identify merge / unmerge / review), as jobs too
IDENTITY_STEPS: dict[str, tuple[Step, tuple[str, ...]]] = {
    "merge": (_merge, ("customer_a", "customer_b", "reason", "actor")),
    "unmerge": (_unmerge, ("record_key", "reason", "actor")),
    "review": (_review, ("accept", "reject", "actor")),
}
#: a person's rights exercised (onetoone privacy erase; DELETE /v1/customers/{id})
PRIVACY_STEPS: dict[str, tuple[Step, tuple[str, ...]]] = {
    "erase": (_erase, ("customer", "mode", "actor")),
}
def decide_list(ws: Workspace, channel: str, output: Path | None,
                actor: str) -> dict[str, Any]:
    """The outbound list of every customer on a channel (``onetoone decide``), audited."""
    result = ws.decisions.campaign(channel, output=output)
    ws.audit(actor, "campaign.run", None, channel=result.channel, run=result.run_id,
             customers=result.customers, contacted=result.contacted)
    return result.summary()


def _decide(ws: Workspace, args: dict[str, Any], tell: Progress) -> dict[str, Any]:
    """:func:`decide_list` as a job: the server writes inside its workspace only."""
    output = args.get("output")
    tell(f"deciding on {args['channel']}", 0.0)
    return decide_list(ws, str(args["channel"]), None if output is None
                       else ws.path_inside(str(output)), _actor(args))


#: campaigns (onetoone campaign run, onetoone decide): they decide and deliver through the
#: running decision service itself (its profiles, its writer), not in one transaction of the
#: job's own
CAMPAIGN_STEPS: dict[str, tuple[Step, tuple[str, ...]]] = {
    "campaign": (_campaign, ("name", "actor")),
    "decide": (_decide, ("channel", "output", "actor")),
    "bounces": STEPS["bounces"],
}
_REQUIRED = {"merge": ("customer_a", "customer_b"), "unmerge": ("record_key",),
             "erase": ("customer",), "campaign": ("name",), "decide": ("channel",)}


def job_steps() -> dict[str, tuple[Step, tuple[str, ...]]]:
    """What a job may run: the batch steps, a person's identity decisions, erasures."""
    return {**STEPS, **IDENTITY_STEPS, **PRIVACY_STEPS, **CAMPAIGN_STEPS}

#: steps after which the decision service reads the profiles and the identifier index again
_REFRESHING = ("ingest", "identify", "score", "retention", *IDENTITY_STEPS,
               *PRIVACY_STEPS)

#: Steps that the server runs in a worker process, and the only tables they write. Their work
#: is Python (model fits, features) that would hold the interpreter's lock for tens of
#: milliseconds at a time, and every request would wait for it: the worker computes on a copy
#: of the database and the server copies the tables back, in the job's transaction.
IN_WORKER: dict[str, tuple[str, ...]] = {
    "score": ("customer_scores", "needs_segments", "defection_monitor", "kpis"),
}


class JobRunner:
    """The server's queue of jobs: one runs at a time, in a thread, in submission order."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queue: list[str] = []
        self._lock = threading.Condition()
        self._closed = False
        #: the running job's connection while its step runs, for stop() to interrupt
        self._running_con: Connection | None = None
        self._listeners: list[Callable[[Job], None]] = []
        self.interrupted = self._mark_interrupted()
        for stale in (workspace.root / ".onetoone").glob("job-*"):  # a killed server's copies
            shutil.rmtree(stale, ignore_errors=True)
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
        steps = job_steps()
        if step not in steps:
            raise InvalidInputError(f"Unknown step '{step}'.",
                                    hint=f"Steps: {', '.join(steps)}.")
        args = dict(args or {})
        missing = [name for name in _REQUIRED.get(step, ()) if not args.get(name)]
        if missing:
            raise InvalidInputError(f"'{step}' needs {', '.join(missing)}.")
        unknown = sorted(set(args) - set(steps[step][1]))
        if unknown:
            known = ", ".join(steps[step][1]) or "none"
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
        """A queued job is dropped; a running one stops at once (its statement interrupted,
        or at its next progress point in Python code), nothing of it kept."""
        job = self.get(job_id)
        with self._lock:
            if job.status == "queued":
                self._queue.remove(job_id)
                self._end(job, "cancelled", error="Cancelled before it started.")
            elif job.status == "running":
                job.cancel.set()
                job.log.append("cancel asked; its statement interrupted")
                self._interrupt()
        return job

    def on_end(self, callback: Callable[[Job], None]) -> None:
        """Call ``callback(job)`` each time a job ends, its end written: in the worker's
        thread, or with the queue's lock held for a job cancelled or dropped at close (the
        callback then must not wait on another thread). An error of the callback is logged."""
        self._listeners.append(callback)

    def stop(self) -> None:
        """Take no new job, drop the queued ones and cancel the running one at once (its
        statement interrupted, its transaction rolled back); does not wait (:meth:`close`)."""
        with self._lock:
            self._closed = True
            for job_id in list(self._queue):
                self._queue.remove(job_id)
                self._end(self._jobs[job_id], "cancelled", error="The server stopped.")
            for job in self._jobs.values():
                if job.status == "running":
                    job.cancel.set()
            self._interrupt()
            self._lock.notify_all()

    def close(self, timeout: float = 30.0) -> None:
        """:meth:`stop`, then wait up to ``timeout`` seconds for the running job to end. One
        still running then (a long computation between two progress points) is left to the
        end of the process, which keeps nothing of it: the next start marks it
        ``interrupted``."""
        self.stop()
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            self._thread.join(min(0.2, max(deadline - time.monotonic(), 0.0)))
            with self._lock:  # a statement started after the last interrupt
                self._interrupt()

    def _interrupt(self) -> None:
        """Interrupt the statement the running job's cursor runs, if any (lock held)."""
        if self._running_con is not None:
            self._running_con.interrupt()

    # -- the worker -----------------------------------------------------------------------
    def _end(self, job: Job, status: str, *, error: str | None = None) -> None:
        job.status, job.error, job.finished_at = status, error, utcnow()
        job.log.append(f"{status}" + (f": {error}" if error else ""))
        self._write(job)
        for listener in list(self._listeners):
            try:
                listener(job)
            except Exception as exc:  # a listener's bug never stops the queue
                log.error("job end listener failed: %s", type(exc).__name__)

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

    def _attach_late_events(self, job: Job) -> None:
        """After an identify job (and the refresh): the events the service wrote during it,
        which its transaction could not see, follow their records to the customers it made."""
        def attach() -> int:
            if self.ws.running_service:  # in the order of the service's writes
                return int(self.ws.decisions.attach_late_events(
                    job.started_at or job.created_at))
            with self.ws.reader() as view, view.store.transaction():
                return int(view.identity.attach_late_events(job.started_at))

        moved = _after(job, "attaching the events of the job's time", attach,
                       "events received during the job could not be attached to the "
                       "customers it changed (see the server's log)")
        if moved:
            job.log.append(f"{moved:,} event row(s) received during the job attached to the "
                           "customers it changed")

    def _attribute(self, job: Job) -> None:
        """After an ingest job: the purchases it loaded converting campaign messages."""
        attributed = _after(job, "attributing conversions",
                            lambda: attribute_conversions(self.ws),
                            "the purchases could not be attributed to campaign messages (see "
                            "the server's log)")
        if attributed:
            job.log.append(f"{attributed:,} conversion(s) attributed to campaign messages")
            if job.result is not None:
                job.result["conversions_attributed"] = attributed

    def _in_worker(self, step: str, view: Workspace, args: dict[str, Any],
                   tell: Progress) -> dict[str, Any]:
        """Run ``step`` in a worker process on a copy of the database, then replace the tables
        it writes with the copy's, on ``view`` (the job's transaction)."""
        from onetoone.config import CONFIG_FILE

        private = self.ws.root / ".onetoone"
        private.mkdir(mode=0o700, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="job-", dir=private) as tmp:
            folder = Path(tmp)
            tell("copying the database for a worker process", 0.0)
            shutil.copyfile(self.ws.root / CONFIG_FILE, folder / CONFIG_FILE)
            copy_database(view.store.con, Path(self.ws.store.path), folder / DATABASE_FILE,
                          self.ws.decisions.writer.between_groups)
            result = _run_worker(folder, step, args, tell)
            tell("copying the worker's results", 0.99)
            alias = f"job_{uuid.uuid4().hex[:8]}"
            copy = str(folder / DATABASE_FILE).replace("'", "''")
            view.store.execute(f"ATTACH '{copy}' AS {alias} (READ_ONLY)")
            try:
                for table in IN_WORKER[step]:
                    view.store.execute(f'DELETE FROM "{table}"')
                    view.store.execute(f'INSERT INTO "{table}" SELECT * FROM {alias}."{table}"')
            finally:
                view.store.execute(f"DETACH {alias}")
        return result

    def _run(self, job: Job) -> None:
        def tell(part: str, done: float) -> None:
            if job.cancel.is_set():
                raise JobCancelled("Cancelled.")
            if part != job.part:
                job.log.append(part)
                del job.log[:-LOG_LINES]
            job.part, job.done = part, max(job.done, done)

        function = job_steps()[job.step][0]
        if (job.step in IN_WORKER and self.ws.running_service
                and self.ws.config.api.job_worker):
            function = functools.partial(self._in_worker, job.step)
        try:
            if job.step in CAMPAIGN_STEPS:  # through the decision service, resumable
                job.result = function(self.ws, job.args, tell)
            else:
                # the whole step in one transaction on the job's cursor: kept only if it ends well
                with self.ws.reader() as view, view.store.atomic():
                    with self._lock:
                        self._running_con = view.store.con if not job.cancel.is_set() else None
                    try:
                        job.result = function(view, job.args, tell)
                    finally:
                        with self._lock:
                            self._running_con = None
                    if job.cancel.is_set():  # asked before the commit: nothing is kept
                        raise JobCancelled("Cancelled.")
        except Exception as exc:
            if job.cancel.is_set():  # JobCancelled, or the statement that was interrupted
                self._end(job, "cancelled", error=(
                    "The server stopped while the job ran" if self._closed else
                    "Cancelled while running") + "; nothing of it was kept (its transaction "
                    "was rolled back).")
            elif isinstance(exc, OneToOneError):
                self._end(job, "failed", error=exc.user_message())
            elif isinstance(exc, DatabaseError) and "conflict" in str(exc).lower():
                self._end(job, "failed", error="The job's changes conflicted with writes made "
                          "meanwhile; nothing of it was kept. Run it again.")
            else:  # a bug: the job fails, the server keeps serving
                self._end(job, "failed", error=f"Internal error: {type(exc).__name__}.")
        else:
            if job.step in _REFRESHING and self.ws.running_service:
                job.log.append("refreshing the decision service's profiles")
                _after(job, "the refresh", self.ws.decisions.refresh,
                       "the refresh failed; restart the server to see the step's changes in "
                       "decisions")
            if job.step == "identify" or job.step in IDENTITY_STEPS:
                self._attach_late_events(job)
            if job.step == "ingest":
                self._attribute(job)
            job.done = 1.0
            self._end(job, "succeeded")


T = TypeVar("T")


def _after(job: Job, doing: str, work: Callable[[], T], failed: str) -> T | None:
    """What ``work`` returns, done after the job's step committed; when it fails the step
    still succeeded: the error's kind in the server's log, ``failed`` in the job's."""
    try:
        return work()
    except Exception as exc:
        log.error("%s after a job failed: %s", doing, type(exc).__name__)
        job.log.append(failed)
        return None


def _run_worker(folder: Path, step: str, args: dict[str, Any],
                tell: Progress) -> dict[str, Any]:
    """``python -m onetoone._worker FOLDER STEP ARGS``, its progress relayed to ``tell`` (which
    raises to cancel: the worker is then killed); its result, or its error raised."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "onetoone._worker", str(folder), step, json.dumps(args)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    result: dict[str, Any] | None = None
    error: str | None = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            message = json.loads(line)
            if "part" in message:
                tell(message["part"], message["done"])
            result, error = message.get("result", result), message.get("error", error)
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
    if error is not None:
        raise OneToOneError(error)
    if result is None:
        raise OneToOneError(f"The worker process of the job ended with code {proc.returncode}.",
                            hint="See the server's memory and disk; run the job again.")
    return result


def worker_main(argv: list[str]) -> int:
    """The worker process: runs one step on the workspace copy in ``argv[0]``, its progress
    and its end as JSON lines on stdout; ends with its parent (its stdin closes)."""
    from onetoone.workspace import Workspace

    folder, step, args = Path(argv[0]), argv[1], json.loads(argv[2])

    def orphaned() -> None:
        sys.stdin.read()  # returns when the server closes the pipe or dies
        os._exit(1)

    threading.Thread(target=orphaned, daemon=True).start()

    def say(message: dict[str, Any]) -> None:
        print(json.dumps(message, default=str), flush=True)

    try:
        with Workspace(folder) as ws:
            result = STEPS[step][0](ws, args, lambda part, done: say(
                {"part": part, "done": done}))
    except OneToOneError as exc:
        say({"error": exc.user_message()})
        return 1
    except Exception as exc:  # a bug: its type only, never a value
        say({"error": f"Internal error: {type(exc).__name__}."})
        return 1
    say({"result": result})
    return 0
