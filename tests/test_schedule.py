"""``[schedule]``: the cron parser and its next runs (names, ranges, steps, the Vixie day rule,
macros, DST in Europe/Paris, leap days), the section's validation, and the scheduler driven by
an injected clock on a real job queue (cron runs, chains, no duplicates, no replay)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from onetoone.cli import app
from onetoone.config import parse_config
from onetoone.errors import ConfigError, OneToOneError
from onetoone.jobs import STEPS, Job, JobRunner
from onetoone.schedule import (
    Chain,
    Cron,
    CronError,
    Scheduler,
    ScheduleSettings,
    parse_entry,
    schedule_status,
)

PARIS = ZoneInfo("Europe/Paris")


def paris(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=PARIS, fold=fold)


def runs(expression: str, after: datetime, count: int, tz: str = "Europe/Paris") -> list[str]:
    cron, out, moment = Cron(expression, tz), [], after
    for _ in range(count):
        moment = cron.next_after(moment)
        out.append(moment.isoformat())
    return out


# -- the parser ------------------------------------------------------------------------------
def test_fields_lists_ranges_and_steps() -> None:
    cron = Cron("*/15 9-17/4 1,15,31 * *")
    assert cron.minutes == [0, 15, 30, 45]
    assert cron.hours == [9, 13, 17]
    assert cron.days == [1, 15, 31]
    assert Cron("5/20 0 * * *").minutes == [5, 25, 45]  # from 5 to the highest
    assert Cron("1-10/3 0 * * *").minutes == [1, 4, 7, 10]
    assert Cron("0 0 * * *").weekdays == frozenset(range(7))


def test_names_and_both_sundays() -> None:
    assert Cron("0 0 * jan-mar,DEC *").months == [1, 2, 3, 12]
    assert Cron("0 0 * * MON-FRI").weekdays == frozenset({1, 2, 3, 4, 5})
    assert Cron("0 0 * * FRI-SUN").weekdays == frozenset({5, 6, 0})
    assert Cron("0 0 * * 7").weekdays == Cron("0 0 * * 0").weekdays == Cron(
        "0 0 * * sun").weekdays == frozenset({0})
    assert Cron("0 0 * * 5-7").weekdays == frozenset({5, 6, 0})


def test_macros() -> None:
    start = paris(2026, 6, 10, 12, 34)
    assert runs("@hourly", start, 1) == ["2026-06-10T13:00:00+02:00"]
    assert runs("@daily", start, 1) == runs("@midnight", start, 1) == runs("0 0 * * *", start, 1)
    assert runs("@weekly", start, 1) == ["2026-06-14T00:00:00+02:00"]  # a Sunday
    assert runs("@monthly", start, 1) == ["2026-07-01T00:00:00+02:00"]
    assert runs("@yearly", start, 1) == runs("@annually", start, 1) == [
        "2027-01-01T00:00:00+01:00"]


def test_daily_runs_and_the_next_run_is_strictly_after() -> None:
    assert runs("0 2 * * *", paris(2026, 6, 10, 1, 59), 3) == [
        "2026-06-10T02:00:00+02:00", "2026-06-11T02:00:00+02:00", "2026-06-12T02:00:00+02:00"]
    assert runs("0 2 * * *", paris(2026, 6, 10, 2, 0), 1) == ["2026-06-11T02:00:00+02:00"]
    assert runs("0 2 * * *", paris(2026, 6, 10, 2, 0, 30), 1) == ["2026-06-11T02:00:00+02:00"]


def test_vixie_rule_either_day_when_both_are_restricted() -> None:
    # 2026-06-01 is a Monday: the 1st and the 15th, and every Monday
    assert runs("0 0 1,15 * MON", paris(2026, 6, 1, 1), 5) == [
        "2026-06-08T00:00:00+02:00", "2026-06-15T00:00:00+02:00", "2026-06-22T00:00:00+02:00",
        "2026-06-29T00:00:00+02:00", "2026-07-01T00:00:00+02:00"]
    # a field written with * is unrestricted: both must match (odd days that are Mondays)
    assert runs("0 0 */2 * MON", paris(2026, 6, 1, 1), 3) == [
        "2026-06-15T00:00:00+02:00", "2026-06-29T00:00:00+02:00", "2026-07-13T00:00:00+02:00"]
    assert runs("0 0 13 * *", paris(2026, 6, 1), 1) == ["2026-06-13T00:00:00+02:00"]
    assert runs("0 0 * * FRI", paris(2026, 6, 1), 1) == ["2026-06-05T00:00:00+02:00"]


def test_year_boundaries_month_ends_and_leap_days() -> None:
    assert runs("59 23 31 12 *", paris(2026, 12, 31, 23, 59), 2) == [
        "2027-12-31T23:59:00+01:00", "2028-12-31T23:59:00+01:00"]
    assert runs("0 0 1 1 *", paris(2026, 12, 31, 23, 59, 59), 1) == ["2027-01-01T00:00:00+01:00"]
    assert runs("0 0 29 2 *", paris(2026, 1, 1), 3) == [
        "2028-02-29T00:00:00+01:00", "2032-02-29T00:00:00+01:00", "2036-02-29T00:00:00+01:00"]
    assert runs("0 0 31 * *", paris(2026, 1, 31, 1), 3) == [
        "2026-03-31T00:00:00+02:00", "2026-05-31T00:00:00+02:00", "2026-07-31T00:00:00+02:00"]
    # 2096 is leap and 2100 is not: the next 29 February after 2096 is in 2104
    assert runs("0 0 29 2 *", paris(2096, 3, 1), 1) == ["2104-02-29T00:00:00+01:00"]
    # a leap day that must fall on a Sunday, Wednesday or Saturday: found by skipping years
    started = time.perf_counter()
    assert runs("0 0 29 2 */3", paris(2026, 1, 1), 1) == ["2032-02-29T00:00:00+01:00"]
    assert time.perf_counter() - started < 0.5


def test_dst_gap_runs_at_the_jump_once() -> None:
    # Europe/Paris, 2026-03-29: 02:00 CET -> 03:00 CEST
    assert runs("30 2 * * *", paris(2026, 3, 28, 12), 2) == [
        "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]
    assert runs("*/20 * * * *", paris(2026, 3, 29, 1, 30), 4) == [
        "2026-03-29T01:40:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:20:00+02:00",
        "2026-03-29T03:40:00+02:00"]
    assert runs("0 3 * * *", paris(2026, 3, 29, 1), 1) == ["2026-03-29T03:00:00+02:00"]


def test_dst_repeat_runs_once_at_the_first_occurrence() -> None:
    # Europe/Paris, 2026-10-25: 03:00 CEST -> 02:00 CET, 02:00-02:59 twice
    assert runs("30 2 * * *", paris(2026, 10, 24, 12), 2) == [
        "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    assert runs("*/20 * * * *", paris(2026, 10, 25, 1, 30), 6) == [
        "2026-10-25T01:40:00+02:00", "2026-10-25T02:00:00+02:00", "2026-10-25T02:20:00+02:00",
        "2026-10-25T02:40:00+02:00", "2026-10-25T03:00:00+01:00", "2026-10-25T03:20:00+01:00"]
    # asked during the second 02:xx: what that hour names already ran
    assert runs("30 2 * * *", paris(2026, 10, 25, 2, 10, fold=1), 1) == [
        "2026-10-26T02:30:00+01:00"]


def test_next_after_reads_naive_as_utc_and_answers_in_the_zone() -> None:
    cron = Cron("0 2 * * *", "Europe/Paris")
    at = cron.next_after(datetime(2026, 1, 10, 0, 30))  # 01:30 in Paris
    assert at.isoformat() == "2026-01-10T02:00:00+01:00" and at.tzinfo == PARIS
    assert Cron("0 2 * * *").next_after(datetime(2026, 1, 10, 3, tzinfo=UTC)).isoformat() == (
        "2026-01-11T02:00:00+00:00")
    assert Cron("0 2 * * *", "America/New_York").next_after(
        datetime(2026, 1, 10, 3, tzinfo=UTC)).isoformat() == "2026-01-10T02:00:00-05:00"


@pytest.mark.parametrize(("expression", "says"), [
    ("61 * * * *", "minute field '61' is out of 0-59"),
    ("0 24 * * *", "hour field '24' is out of 0-23"),
    ("0 0 0 * *", "day-of-month field '0' is out of 1-31"),
    ("0 0 * 13 *", "month field '13' is out of 1-12"),
    ("0 0 * * 8", "day-of-week field '8' is out of 0-7"),
    ("0 0 * JANUARY *", "month field 'JANUARY' is neither a number 1-12 nor a name JAN..DEC"),
    ("0 0 * * MON-FRY", "day-of-week field 'FRY' is neither a number 0-7 nor a name SUN..SAT"),
    ("MON 0 * * *", "minute field 'MON' is neither a number 0-59"),
    ("*/0 * * * *", "minute field '*/0' has a step that is not a whole number from 1"),
    ("0 5-1 * * *", "hour field '5-1' is a range that goes backwards"),
    ("0,,5 * * * *", "minute field '0,,5' has an empty item"),
    ("0 2 * *", "has 5 fields (minute hour day-of-month month day-of-week); '0 2 * *' has 4"),
    ("0 0 2 * * *", "has 6 (seconds are not supported)"),
    ("@reboot", "'@reboot' is not a cron macro; the macros are @hourly"),
    ("0 0 30 2 *", "day-of-month field '30' names no day that month field '2' has"),
    ("0 0 31 4,6,9,11 *", "never runs"),
])
def test_bad_expressions_name_the_field_and_value(expression: str, says: str) -> None:
    with pytest.raises(CronError) as caught:
        Cron(expression)
    assert says in str(caught.value)


def test_entries_are_cron_or_chain() -> None:
    assert parse_entry("after ingest") == Chain("ingest")
    assert parse_entry("  AFTER   score ") == Chain("score")
    assert isinstance(parse_entry("0 2 * * *"), Cron)
    for text, says in [("after scor", "'after scor' does not name a step; the steps are "
                        "ingest, identify, score, kpis, report"),
                       ("after ingest, identify", "(name one step)"),
                       ("after", "'after' does not name a step")]:
        with pytest.raises(CronError) as caught:
            parse_entry(text)
        assert says in str(caught.value)


# -- the section -----------------------------------------------------------------------------
def test_the_section_has_one_key_per_step() -> None:
    assert list(ScheduleSettings.model_fields) == list(STEPS)


def test_a_valid_section() -> None:
    config = parse_config('[schedule]\nscore = "0 2 * * *"\nidentify = "after ingest"\n'
                          'report = "@monthly"\n')
    entries = config.schedule.entries()
    assert list(entries) == ["identify", "score", "report"]
    assert entries["identify"] == Chain("ingest")
    assert parse_config("").schedule.entries() == {}


@pytest.mark.parametrize(("text", "says"), [
    ('[schedule]\nscore = "0 2 * * *"\nscor = "0 3 * * *"\n',
     "Invalid value for 'schedule' (onetoone.toml, line 1): 'scor' is not a step; the steps "
     "are ingest, identify, score, kpis, report, retention, bounces."),
    ('[schedule]\nscore = "61 2 * * *"\n',
     "Invalid value for 'schedule.score' (onetoone.toml, line 2): minute field '61' is out of "
     "0-59."),
    ('[schedule]\nkpis = "0 6 * * *"\nidentify = "after ingets"\n',
     "Invalid value for 'schedule.identify' (onetoone.toml, line 3): 'after ingets' does not "
     "name a step; the steps are ingest, identify, score, kpis, report, retention, bounces."),
    ('[schedule]\ningest = "after score"\nscore = "after ingest"\n',
     "the chains form a cycle, so none of them would ever run: ingest after score after ingest"),
    ('[schedule]\ningest = "after report"\nreport = "after score"\nscore = "after ingest"\n',
     "cycle, so none of them would ever run: ingest after report after score after ingest"),
    ('[schedule]\nidentify = "after identify"\n', "cycle, so none of them would ever run: "
     "identify after identify"),
    ('[schedule]\nscore = 2\n', "Invalid value for 'schedule.score'"),
    ('[workspace]\ntimezone = "Europe/Pari"\n[schedule]\nscore = "@daily"\n',
     "[workspace] timezone 'Europe/Pari' is not an IANA time zone."),
])
def test_mistakes_are_one_sentence_at_load(text: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert says in caught.value.user_message()


def test_the_documented_example_is_valid() -> None:
    docs = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
    section = docs.read_text(encoding="utf-8").split("## `[schedule]`", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    assert list(parse_config(example).schedule.entries()) == list(STEPS)


def test_chains_without_a_cycle_are_accepted() -> None:
    config = parse_config('[schedule]\ningest = "30 1 * * *"\nidentify = "after ingest"\n'
                          'score = "after identify"\nkpis = "after identify"\n')
    assert config.schedule.entries()["score"] == Chain("identify")


# -- the scheduler ---------------------------------------------------------------------------
class Clock:
    """An injected clock: what the scheduler reads as now."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold in time")
        time.sleep(0.01)


def _ended(job: Job) -> bool:
    return job.status not in ("queued", "running")


@pytest.fixture
def gate() -> threading.Event:
    return threading.Event()


@pytest.fixture
def queue(make_workspace: Callable[..., Any], monkeypatch: pytest.MonkeyPatch,
          gate: threading.Event) -> Iterator[tuple[JobRunner, Any]]:
    """A job queue on a workspace whose steps are quick stand-ins: ``kpis`` waits for ``gate``,
    ``ingest`` fails, the others succeed."""

    def waits(_ws: Any, _args: dict[str, Any], _tell: Any) -> dict[str, Any]:
        gate.wait(10)
        return {}

    def fails(_ws: Any, _args: dict[str, Any], _tell: Any) -> dict[str, Any]:
        raise OneToOneError("The source is unreadable.")

    def succeeds(_ws: Any, _args: dict[str, Any], _tell: Any) -> dict[str, Any]:
        return {"ok": True}

    for step, function in [("kpis", waits), ("ingest", fails), ("identify", succeeds),
                           ("score", succeeds), ("report", succeeds)]:
        monkeypatch.setitem(STEPS, step, (function, STEPS[step][1]))
    ws = make_workspace()
    runner = JobRunner(ws)
    yield runner, ws
    gate.set()
    runner.close()


def _scheduler(runner: JobRunner, text: str, clock: Clock) -> Scheduler:
    settings = parse_config(f"[schedule]\n{text}").schedule
    return Scheduler(runner, settings, "Europe/Paris", clock=clock)


def test_a_cron_step_runs_when_due_and_is_planned_again(queue: Any) -> None:
    runner, _ = queue
    clock = Clock(paris(2026, 6, 10, 1, 0))
    scheduler = _scheduler(runner, 'score = "0 2 * * *"', clock)
    scheduler.start()
    try:
        assert scheduler.next_runs() == {"score": paris(2026, 6, 10, 2, 0)}
        assert scheduler.tick(paris(2026, 6, 10, 1, 59)) == []
        (job,) = scheduler.tick(paris(2026, 6, 10, 2, 0, 5))
        assert job.step == "score" and "queued by the schedule: '0 2 * * *' due at 2026-06-10 " \
            "02:00 CEST" in job.log
        assert scheduler.next_runs() == {"score": paris(2026, 6, 11, 2, 0)}
        assert scheduler.tick(paris(2026, 6, 10, 2, 0, 30)) == []
        _until(lambda: _ended(job))
        assert job.status == "succeeded"
        # late by three days (the machine slept): one run, then the next one after now
        assert len(scheduler.tick(paris(2026, 6, 13, 9, 0))) == 1
        assert scheduler.next_runs() == {"score": paris(2026, 6, 14, 2, 0)}
    finally:
        scheduler.stop()


def test_missed_runs_are_not_replayed_at_start(queue: Any) -> None:
    runner, _ = queue
    clock = Clock(paris(2026, 6, 10, 9, 0))  # the 02:00 run of today was missed
    scheduler = _scheduler(runner, 'score = "0 2 * * *"', clock).start()
    try:
        assert scheduler.tick() == []
        assert scheduler.next_runs() == {"score": paris(2026, 6, 11, 2, 0)}
        assert runner.list() == []
    finally:
        scheduler.stop()


def test_the_thread_sleeps_until_due_and_wakes_on_the_injected_clock(queue: Any) -> None:
    runner, _ = queue
    clock = Clock(paris(2026, 6, 10, 1, 0))
    scheduler = _scheduler(runner, 'report = "*/15 * * * *"', clock).start()
    try:
        scheduler.wake()
        time.sleep(0.05)
        assert runner.list() == []
        clock.now = paris(2026, 6, 10, 1, 15)
        scheduler.wake()
        _until(lambda: len(runner.list()) == 1)
        assert runner.list()[0].step == "report"
        assert scheduler.next_runs() == {"report": paris(2026, 6, 10, 1, 30)}
    finally:
        started = time.monotonic()
        scheduler.stop()
        assert time.monotonic() - started < 2  # its sleep is interrupted


def test_a_step_already_queued_or_running_is_not_queued_again(
        queue: Any, gate: threading.Event) -> None:
    runner, _ = queue
    scheduler = _scheduler(runner, 'kpis = "*/5 * * * *"\nreport = "after identify"',
                           Clock(paris(2026, 6, 10, 1, 1))).start()
    try:
        (running,) = scheduler.tick(paris(2026, 6, 10, 1, 5))
        _until(lambda: running.status == "running")
        assert scheduler.tick(paris(2026, 6, 10, 1, 10)) == []
        assert "the schedule did not queue another kpis" in running.log[-1]
        identify = runner.submit("identify")  # queued behind kpis
        report = runner.submit("report")  # queued behind identify
        gate.set()
        _until(lambda: _ended(report))
        # identify succeeded while report was queued: its chain queued no second report
        assert [j.step for j in runner.list()] == ["report", "identify", "kpis"]
        assert identify.status == report.status == "succeeded"
        assert any("the schedule did not queue another report (after identify" in line
                   for line in report.log)
    finally:
        scheduler.stop()


def test_a_chain_runs_after_a_success_only(queue: Any) -> None:
    runner, _ = queue
    scheduler = _scheduler(runner, 'identify = "after ingest"\nscore = "after identify"\n'
                           'report = "after score"', Clock(paris(2026, 6, 10))).start()
    try:
        failed = runner.submit("ingest")  # fails: nothing follows
        _until(lambda: _ended(failed))
        time.sleep(0.05)
        assert failed.status == "failed" and [j.step for j in runner.list()] == ["ingest"]
        runner.submit("identify")
        _until(lambda: len(runner.list()) == 4 and all(_ended(j) for j in runner.list()))
        assert [(j.step, j.status) for j in runner.list()] == [
            ("report", "succeeded"), ("score", "succeeded"), ("identify", "succeeded"),
            ("ingest", "failed")]
        assert any(line.startswith("queued by the schedule: after identify (job-")
                   for line in runner.list()[1].log)
    finally:
        scheduler.stop()
    after_stop = runner.submit("identify")  # a stopped schedule chains nothing
    _until(lambda: _ended(after_stop))
    time.sleep(0.05)
    assert len(runner.list()) == 5


def test_a_cancelled_job_starts_no_chain(queue: Any, gate: threading.Event) -> None:
    runner, _ = queue
    scheduler = _scheduler(runner, 'report = "after kpis"', Clock(paris(2026, 6, 10))).start()
    try:
        blocker = runner.submit("kpis")
        queued = runner.submit("kpis")
        runner.cancel(queued.job_id)
        gate.set()
        _until(lambda: _ended(blocker))
        _until(lambda: len(runner.list()) == 3 and all(_ended(j) for j in runner.list()))
        assert [(j.step, j.status) for j in runner.list()] == [
            ("report", "succeeded"), ("kpis", "cancelled"), ("kpis", "succeeded")]
    finally:
        scheduler.stop()


def test_a_failing_listener_does_not_stop_the_queue(queue: Any) -> None:
    runner, _ = queue
    seen: list[str] = []

    def broken(job: Job) -> None:
        raise RuntimeError("bug")

    runner.on_end(broken)
    runner.on_end(lambda job: seen.append(job.status))
    first, second = runner.submit("identify"), runner.submit("score")
    _until(lambda: len(seen) == 2)  # called after the end is written
    assert (first.status, second.status) == ("succeeded", "succeeded")
    assert seen == ["succeeded", "succeeded"]


def test_status_without_a_server_computes_next_runs_and_reads_last_results(
        queue: Any, tmp_path: Path) -> None:
    runner, ws = queue
    (tmp_path / "onetoone.toml").write_text(
        '[workspace]\nname = "test"\n[schedule]\nscore = "0 2 * * *"\n'
        'identify = "after ingest"\nreport = "@monthly"\n', encoding="utf-8")
    failed, done = runner.submit("ingest"), runner.submit("identify")
    _until(lambda: _ended(done))
    runner.close()
    ws.close()
    from onetoone import Workspace

    with Workspace(tmp_path, read_only=True) as view:
        status = schedule_status(view, now=datetime(2026, 6, 10, 3, 0, tzinfo=UTC))
    assert status["timezone"] == "Europe/Paris" and status["served"] is False
    by_step = {row["step"]: row for row in status["steps"]}
    assert list(by_step) == ["identify", "score", "report"]
    assert by_step["score"]["when"] == "0 2 * * *"
    assert by_step["score"]["next_run"] == "2026-06-11T02:00:00+02:00"
    assert by_step["report"]["next_run"] == "2026-07-01T00:00:00+02:00"
    assert by_step["identify"] == {**by_step["identify"], "when": "after ingest",
                                   "after": "ingest", "next_run": None}
    last = by_step["identify"]["last"]
    assert last["status"] == "succeeded" and last["finished_at"].endswith(("+02:00", "+01:00"))
    assert by_step["score"]["last"] is None and failed.status == "failed"
    code = CliRunner().invoke(app, ["status", "--workspace", str(tmp_path)])
    assert code.exit_code == 0
    assert "Schedule (Europe/Paris)" in code.stdout and "0 2 * * *" in code.stdout
    assert "when ingest succeeds" in code.stdout and "never run" in code.stdout
    assert "succeeded 20" in code.stdout
    assert "The schedule runs only while 'onetoone serve' runs" in code.stdout



def test_a_campaign_with_a_cron_schedule_is_queued_as_its_job(queue: Any,
                                                              monkeypatch: Any) -> None:
    from onetoone.jobs import CAMPAIGN_STEPS

    monkeypatch.setitem(CAMPAIGN_STEPS, "campaign", (
        lambda _ws, args, _tell: {"campaign": args["name"]}, CAMPAIGN_STEPS["campaign"][1]))
    runner, _ = queue
    clock = Clock(paris(2026, 6, 10, 7, 0))
    settings = parse_config("").schedule
    scheduler = Scheduler(runner, settings, "Europe/Paris", clock=clock,
                          campaigns={"newsletter": "30 8 * * MON-FRI"}).start()
    try:
        assert scheduler.next_runs() == {"campaign:newsletter": paris(2026, 6, 10, 8, 30)}
        (job,) = scheduler.tick(paris(2026, 6, 10, 8, 30, 1))
        assert job.step == "campaign" and job.args == {"name": "newsletter",
                                                       "actor": "job:schedule"}
        _until(lambda: _ended(job))
        assert job.status == "succeeded" and job.result == {"campaign": "newsletter"}
        assert scheduler.next_runs() == {"campaign:newsletter": paris(2026, 6, 11, 8, 30)}
    finally:
        scheduler.stop()
