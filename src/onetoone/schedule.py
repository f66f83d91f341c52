"""The schedule of the server: ``[schedule]`` runs batch steps by cron expressions
(``score = "0 2 * * *"``) and chains (``identify = "after ingest"``), in the workspace's time
zone (docs/configuration.md).

:class:`Cron` reads the standard five fields and computes the next run; :class:`ScheduleSettings`
validates the section when ``onetoone.toml`` is read; :class:`Scheduler` runs inside
``onetoone serve``: a thread that sleeps until the next due time and submits the step as a job
(:class:`onetoone.jobs.JobRunner`), and a listener that submits a chained step when the step it
follows succeeds. Missed runs (the server was stopped) are not replayed.
"""

from __future__ import annotations

import calendar
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import field_validator, model_validator

from onetoone.errors import ConfigError, OneToOneError
from onetoone.jobs import STEPS
from onetoone.settings import Section

if TYPE_CHECKING:
    from onetoone.jobs import Job, JobRunner
    from onetoone.workspace import Workspace

log = logging.getLogger("onetoone.schedule")

#: The scheduler's thread reads the clock again at least this often (seconds), so a system
#: clock set forward or back is noticed within a minute.
MAX_SLEEP = 60.0

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
#: name, lowest, highest, names (the first name stands for ``lowest``)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, MONTHS),
    ("day-of-week", 0, 7, WEEKDAYS),
)
_AFTER = re.compile(r"after\b\s*(.*)", re.I | re.S)


class CronError(ValueError):
    """A cron expression that cannot be read; the message names the field and the value."""


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Paris``), or a one-sentence error."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"[workspace] timezone '{name}' is not an IANA time zone.",
                          hint="For example: timezone = \"Europe/Paris\".") from None


# -- cron expressions ------------------------------------------------------------------------
def _number(token: str, field: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if names and token.upper() in names:
        return names.index(token.upper()) + low
    if not token.isdigit():
        spelled = f" nor a name {names[0]}..{names[-1]}" if names else ""
        raise CronError(f"{field} field '{token}' is neither a number {low}-{high}{spelled}")
    value = int(token)
    if not low <= value <= high:
        raise CronError(f"{field} field '{token}' is out of {low}-{high}")
    return value


def _field(text: str, field: str, low: int, high: int, names: tuple[str, ...]) -> frozenset[int]:
    """The values of one field: ``*``, ``5``, ``1-5``, ``*/15``, ``1-10/2``, ``5/10`` (from 5
    to the highest), lists of those, names where the field has them."""
    values: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        if not base:
            raise CronError(f"{field} field '{text}' has an empty item")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{field} field '{item}' has a step that is not a whole "
                                "number from 1")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            start, end = base.split("-", 1)
            first = _number(start, field, low, high, names)
            last = _number(end, field, low, high, names)
            if field == "day-of-week" and last == 0 < first:
                last = 7  # FRI-SUN
            if first > last:
                raise CronError(f"{field} field '{item}' is a range that goes backwards")
        else:
            first = _number(base, field, low, high, names)
            last = high if slash else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


class Cron:
    """A standard five-field cron expression (minute hour day-of-month month day-of-week) or a
    macro (``@hourly @daily @weekly @monthly @yearly``), read in the time zone ``timezone``.

    Day-of-week 0 and 7 are both Sunday; months and weekdays may be named (``JAN``, ``MON-FRI``).
    As in Vixie cron, when both day fields are restricted a day matching either one matches; a
    field written with ``*`` (``*/2`` too) counts as unrestricted, and the day must then match
    both.

    Runs are wall-clock times of ``timezone``. Where the clock jumps forward (Europe/Paris, last
    Sunday of March, 02:00 -> 03:00), a time that does not exist runs at the jump (02:30 runs at
    03:00), and several such times run once. Where it goes back (last Sunday of October, 02:00 to
    02:59 twice), a time runs once, at its first occurrence.
    """

    def __init__(self, expression: str, timezone: str | tzinfo = "UTC") -> None:
        self.expression = expression.strip()
        self.tz: tzinfo = zone(timezone) if isinstance(timezone, str) else timezone
        text = MACROS.get(self.expression.lower(), self.expression)
        if text.startswith("@"):
            raise CronError(f"'{self.expression}' is not a cron macro; the macros are "
                            f"{', '.join(MACROS)}")
        parts = text.split()
        if len(parts) != 5:
            seconds = " (seconds are not supported)" if len(parts) == 6 else ""
            raise CronError(f"a cron expression has 5 fields (minute hour day-of-month month "
                            f"day-of-week); '{self.expression}' has {len(parts)}{seconds}")
        fields = [_field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)]
        self.minutes, self.hours, self.days, self.months = (sorted(f) for f in fields[:4])
        self.weekdays = frozenset(d % 7 for d in fields[4])
        self.day_star, self.weekday_star = parts[2].startswith("*"), parts[4].startswith("*")
        self._either_day = not (self.day_star or self.weekday_star)
        if not self._either_day and not any(
                day <= _longest(month) for month in self.months for day in self.days):
            raise CronError(f"day-of-month field '{parts[2]}' names no day that month field "
                            f"'{parts[3]}' has, so '{self.expression}' never runs")

    def __repr__(self) -> str:
        return f"Cron({self.expression!r}, {str(self.tz)!r})"

    def matches_day(self, day: date) -> bool:
        in_month = day.day in self.days
        in_week = day.isoweekday() % 7 in self.weekdays
        return (in_month or in_week) if self._either_day else (in_month and in_week)

    def next_after(self, moment: datetime) -> datetime:
        """The first run strictly after ``moment`` (aware; naive is read as UTC), as an aware
        datetime of the time zone."""
        moment = _utc(moment)  # compared in UTC: within one zone Python compares wall times
        local = moment.astimezone(self.tz).replace(tzinfo=None, second=0, microsecond=0,
                                                    fold=0)
        wall = local + timedelta(minutes=1)
        while True:  # more than once only for wall times already run (a repeated hour)
            wall = self._next_wall(wall)
            at = self._instant(wall)
            if at > moment:
                return at
            wall += timedelta(minutes=1)

    def _next_wall(self, wall: datetime) -> datetime:
        """The first matching wall-clock time at or after ``wall``: skips months, days, hours,
        then minutes (a few dozen steps, never minute by minute)."""
        limit = wall.year + 401  # every (month, day) falls on every weekday within 400 years
        while wall.year <= limit:
            if wall.month not in self.months:
                later = [m for m in self.months if m > wall.month]
                wall = (datetime(wall.year, later[0], 1) if later
                        else datetime(wall.year + 1, self.months[0], 1))
            elif not self.matches_day(wall.date()):
                wall = datetime(wall.year, wall.month, wall.day) + timedelta(days=1)
            elif wall.hour not in self.hours:
                later = [h for h in self.hours if h > wall.hour]
                wall = (wall.replace(hour=later[0], minute=0) if later else
                        datetime(wall.year, wall.month, wall.day) + timedelta(days=1))
            elif wall.minute not in self.minutes:
                later = [m for m in self.minutes if m > wall.minute]
                wall = (wall.replace(minute=later[0]) if later else
                        wall.replace(minute=0) + timedelta(hours=1))
            else:
                return wall
        raise CronError(f"'{self.expression}' never runs")  # not reached: checked when read

    def _instant(self, wall: datetime) -> datetime:
        """The moment of a wall-clock time: its first occurrence, or the jump for a time the
        clock skips."""
        first = wall.replace(tzinfo=self.tz, fold=0)
        back = first.astimezone(UTC).astimezone(self.tz)
        if back.replace(tzinfo=None) == wall:
            return back
        # skipped: the jump lies between the time read with the offset before it and after it
        low, high = sorted(int(wall.replace(tzinfo=self.tz, fold=fold).timestamp())
                           for fold in (0, 1))
        after = datetime.fromtimestamp(high, self.tz).utcoffset()
        while high - low > 1:
            middle = (low + high) // 2
            if datetime.fromtimestamp(middle, self.tz).utcoffset() == after:
                high = middle
            else:
                low = middle
        return datetime.fromtimestamp(high, self.tz)


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC (naive is read as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _longest(month: int) -> int:
    return 29 if month == 2 else calendar.monthrange(2001, month)[1]


@dataclass(frozen=True)
class Chain:
    """``after STEP``: run when a job of ``step`` succeeds."""

    step: str

    def __str__(self) -> str:
        return f"after {self.step}"


def parse_entry(text: str, timezone: str | tzinfo = "UTC") -> Cron | Chain:
    """One value of ``[schedule]``: ``after STEP`` or a cron expression."""
    match = _AFTER.fullmatch(text.strip())
    if match is None:
        return Cron(text, timezone)
    step = match.group(1).strip()
    if step not in STEPS:
        several = " (name one step)" if "," in step or " " in step else ""
        raise CronError(f"'{text.strip()}' does not name a step{several}; the steps are "
                        f"{', '.join(STEPS)}")
    return Chain(step)


# -- the section -----------------------------------------------------------------------------
class ScheduleSettings(Section):
    """[schedule]: step = cron expression or ``"after STEP"``."""

    ingest: str | None = None
    identify: str | None = None
    score: str | None = None
    kpis: str | None = None
    report: str | None = None
    #: ``[privacy] retention_days`` applied (erase or anonymise the inactive)
    retention: str | None = None
    #: the bounce mailboxes of the smtp channels read (docs/channels.md#bounces)
    bounces: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_steps(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [str(key) for key in data if key not in STEPS]
            if unknown:
                raise ValueError(f"'{unknown[0]}' is not a step; the steps are "
                                 f"{', '.join(STEPS)}")
        return data

    @field_validator("ingest", "identify", "score", "kpis", "report", "retention", "bounces")
    @classmethod
    def _entry(cls, value: str | None) -> str | None:
        if value is not None:
            parse_entry(value)
            value = value.strip()
        return value

    @model_validator(mode="after")
    def _no_cycle(self) -> ScheduleSettings:
        chains = {step: entry.step for step, entry in self.entries().items()
                  if isinstance(entry, Chain)}
        for start in chains:
            path, step = [start], chains[start]
            while step in chains and step not in path:
                path.append(step)
                step = chains[step]
            if step in path:
                loop = [*path[path.index(step):], step]
                raise ValueError("the chains form a cycle, so none of them would ever run: "
                                 + " after ".join(loop))
        return self

    def entries(self, timezone: str | tzinfo = "UTC") -> dict[str, Cron | Chain]:
        """The scheduled steps, in the order of the jobs' steps."""
        texts = {step: getattr(self, step) for step in STEPS}
        return {step: parse_entry(text, timezone) for step, text in texts.items()
                if text is not None}


# -- the scheduler ---------------------------------------------------------------------------
#: the schedule's key of a campaign's cron runs
CAMPAIGN = "campaign:"

def _utc_now() -> datetime:
    return datetime.now(UTC)


def _cron(schedule: str) -> bool:
    """Whether a campaign's ``schedule`` is a cron expression (not once, not a trigger)."""
    return schedule != "once" and not schedule.startswith("trigger:")


class Scheduler:
    """Runs ``[schedule]`` inside the server: submits each cron step when it is due and each
    chained step when the step it follows succeeds.

    A step whose job is already queued or running is not queued again (the skipped run is
    said in that job's log and the server log). Runs missed while the server was stopped are
    not replayed: the first run is the next one after the start. When a run was late (the
    machine slept), it runs once, not once per time missed.

    ``clock`` (aware ``datetime`` now) is injectable: tests call :meth:`tick` with the time they
    want, or change the clock and call :meth:`wake`.
    """

    def __init__(self, runner: JobRunner, settings: ScheduleSettings, timezone: str, *,
                 clock: Callable[[], datetime] = _utc_now,
                 campaigns: Mapping[str, str] | None = None) -> None:
        self.runner = runner
        self.tz = zone(timezone)
        self.clock = clock
        self.entries = settings.entries(self.tz)
        self.crons = {step: e for step, e in self.entries.items() if isinstance(e, Cron)}
        # campaigns with a cron schedule, as "campaign:NAME": those given, and the workspace's
        # (its file's and those created through the API, which plan_campaign follows)
        stored = {name: c.schedule for name, c in runner.ws.campaigns.configs.items()
                  if _cron(c.schedule)}
        for name, expression in {**stored, **(campaigns or {})}.items():
            self.crons[f"{CAMPAIGN}{name}"] = Cron(expression, self.tz)
        self._followers: dict[str, list[str]] = {}
        for step, entry in self.entries.items():
            if isinstance(entry, Chain):
                self._followers.setdefault(entry.step, []).append(step)
        self._next: dict[str, datetime] = {}
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._running = False
        self._thread: threading.Thread | None = None
        runner.on_end(self._ended)

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> Scheduler:
        """Plan the next run of each cron step from now, and start the thread that runs them."""
        now = self.clock()
        with self._lock:
            self._next = {step: cron.next_after(now) for step, cron in self.crons.items()}
            self._running = True
        for step, at in self._next.items():
            log.info("schedule: %s next at %s", step, f"{at:%Y-%m-%d %H:%M %Z}")
        if self.crons:
            self._start_thread()
        return self

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="onetoone-schedule",
                                        daemon=True)
        self._thread.start()

    def plan_campaign(self, name: str, schedule: str | None) -> None:
        """Follow a campaign created, changed or retired (``schedule`` None) through the API:
        a cron schedule is planned from now (kept as planned when unchanged), else none."""
        step = f"{CAMPAIGN}{name}"
        with self._lock:
            current = self.crons.get(step)
            if current is not None and schedule is not None \
                    and current.expression == schedule.strip():
                return
            self.crons.pop(step, None)
            self._next.pop(step, None)
            if schedule is not None and _cron(schedule):
                self.crons[step] = Cron(schedule, self.tz)
                if self._running:
                    self._next[step] = self.crons[step].next_after(self.clock())
            start = self._running and self._thread is None and step in self.crons
        if start:
            self._start_thread()
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Submit nothing more; the thread ends (at once: its sleep is interrupted)."""
        with self._lock:
            self._running = False
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Read the clock again now (after it was changed)."""
        self._wake.set()

    def next_runs(self) -> dict[str, datetime]:
        """Step -> its next planned run (aware, in the workspace's time zone)."""
        with self._lock:
            return dict(self._next)

    def tick(self, now: datetime | None = None) -> list[Job]:
        """Submit the cron steps due at ``now`` (default: the clock) and plan their next runs;
        the jobs submitted."""
        now = _utc(self.clock() if now is None else now)
        submitted = []
        with self._lock:
            if not self._running:
                return []
            for step, due in list(self._next.items()):
                if _utc(due) <= now:
                    self._next[step] = self.crons[step].next_after(now)
                    job = self._submit(step, f"'{self.crons[step].expression}' due at "
                                       f"{due:%Y-%m-%d %H:%M %Z}")
                    if job is not None:
                        submitted.append(job)
        return submitted

    def _loop(self) -> None:
        while self._running:
            self._wake.clear()  # before reading the clock: a wake from now on is not lost
            now = _utc(self.clock())
            try:
                self.tick(now)
            except Exception as exc:  # a bug: this run is lost, the schedule keeps running
                log.error("schedule: a run could not be submitted: %s", type(exc).__name__)
            with self._lock:
                upcoming = min((_utc(at) for at in self._next.values()), default=None)
            delay = MAX_SLEEP if upcoming is None else (upcoming - now).total_seconds()
            self._wake.wait(min(max(delay, 0.01), MAX_SLEEP))

    def _ended(self, job: Job) -> None:
        """The runner's listener: a success submits the steps chained after it."""
        # Only a success reads on: the runner may hold its lock when it reports the others.
        if job.status != "succeeded" or job.step not in self._followers:
            return
        with self._lock:
            if not self._running:
                return
            for step in self._followers[job.step]:
                self._submit(step, f"after {job.step} ({job.job_id})")

    def _submit(self, step: str, why: str) -> Job | None:
        name = step.removeprefix(CAMPAIGN) if step.startswith(CAMPAIGN) else None
        kind, args = ("campaign", {"name": name, "actor": "job:schedule"}) if name else (step,
                                                                                         {})
        active = next((j for j in self.runner.list()
                       if j.step == kind and j.args.get("name") == name
                       and j.status in ("queued", "running")), None)
        if active is not None:
            log.info("schedule: %s not queued (%s): job %s is %s", step, why, active.job_id,
                     active.status)
            active.log.append(f"the schedule did not queue another {step} ({why}): this job "
                              f"was {active.status}")
            return None
        try:
            job = self.runner.submit(kind, args)
        except OneToOneError as exc:
            log.warning("schedule: %s not queued (%s): %s", step, why, exc)
            return None
        job.log.append(f"queued by the schedule: {why}")
        log.info("schedule: %s queued as %s (%s)", step, job.job_id, why)
        return job


# -- status ----------------------------------------------------------------------------------
def _last_results(ws: Workspace, steps: list[str]) -> dict[str, dict[str, Any]]:
    """Step -> status, end and error of its latest ended job."""
    if not steps:
        return {}
    rows = ws.store.fetchall(
        "SELECT step, status, finished_at, error FROM jobs WHERE finished_at IS NOT NULL "
        "AND step IN (SELECT unnest(?::VARCHAR[])) "
        "QUALIFY row_number() OVER (PARTITION BY step ORDER BY finished_at DESC) = 1", [steps])
    return {step: {"status": status, "finished_at": finished, "error": error}
            for step, status, finished, error in rows}


def schedule_status(ws: Workspace, scheduler: Scheduler | None = None,
                    now: datetime | None = None) -> dict[str, Any]:
    """The schedule as ``onetoone status`` shows it: each step, its expression, its next run
    (the server's plan, or computed from ``now`` without a server) and its last result."""
    tz = zone(ws.config.workspace.timezone)
    entries = ws.config.schedule.entries(tz)
    planned = scheduler.next_runs() if scheduler is not None else {}
    now = now or _utc_now()
    active = {} if scheduler is None else {
        j.step: j.status for j in reversed(scheduler.runner.list())
        if j.status in ("queued", "running")}
    last = _last_results(ws, list(entries))

    def local(moment: datetime | None) -> str | None:
        if moment is None:
            return None
        return _utc(moment).astimezone(tz).isoformat()

    steps = []
    for step, entry in entries.items():
        next_run = (planned.get(step) or entry.next_after(now)) if isinstance(entry, Cron) \
            else None
        result = last.get(step)
        steps.append({
            "step": step, "when": str(entry) if isinstance(entry, Chain) else entry.expression,
            "after": entry.step if isinstance(entry, Chain) else None,
            "next_run": local(next_run), "active": active.get(step),
            "last": None if result is None else {**result,
                                                 "finished_at": local(result["finished_at"])}})
    return {"timezone": str(tz), "served": scheduler is not None and scheduler.running,
            "steps": steps}
