"""Clean stops of the real server: a job is all or nothing (``kill -9`` during it leaves the
workspace as it was, the next start reports it), SIGTERM cancels the running job and answers
the requests in flight, and events that arrive while identify runs end up with the right
customer.

The served process loads a test hook (``sitecustomize`` on its ``PYTHONPATH``) that, once armed,
holds a job at a named part (a loop of progress points, so a cancel still stops it) and holds
``POST /v1/sql`` requests whose query says ``held``: the tests act while a job is half-way
without depending on how long anything takes.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from test_jobs import _served_demo, _wait

from _service_server import Server
from onetoone import Workspace
from onetoone.schema import TABLES

pytestmark = pytest.mark.slow

HOOK = '''
import os
import time
from pathlib import Path

_folder = os.environ.get("ONETOONE_TEST_HOOK")
if _folder:
    import onetoone.jobs as _jobs
    import onetoone.workspace as _workspace

    _folder = Path(_folder)

    def _holding(step):
        def run(ws, args, tell):
            def told(part, done):
                arm = _folder / "arm"
                if arm.exists() and part.startswith(arm.read_text()):
                    arm.unlink()
                    (_folder / "held-job").write_text(part)
                    while not (_folder / "go").exists():
                        tell(part, done)  # a progress point: a cancel stops the job here
                        time.sleep(0.02)
                tell(part, done)
            return step(ws, args, told)
        return run

    _jobs.STEPS = {name: (_holding(f), a) for name, (f, a) in _jobs.STEPS.items()}
    _sql = _workspace.Workspace.sql

    def _held_sql(self, query, *, limit=None):
        if "held" in query:
            (_folder / "held-request").write_text(query)
            while not (_folder / "release").exists():
                time.sleep(0.02)
        return _sql(self, query, limit=limit)

    _workspace.Workspace.sql = _held_sql
'''


@pytest.fixture
def hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder through which a test drives the served process's hook."""
    code, folder = tmp_path / "hook-code", tmp_path / "hook"
    code.mkdir()
    folder.mkdir()
    (code / "sitecustomize.py").write_text(HOOK)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(code), os.environ.get("PYTHONPATH", "")) if p))
    monkeypatch.setenv("ONETOONE_TEST_HOOK", str(folder))
    return folder


def _until(condition: object, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen")
        time.sleep(0.05)


def _job(client: httpx.Client, step: str, **args: object) -> dict:
    return client.post("/v1/jobs", json={"step": step, "args": args}).json()


def _run(client: httpx.Client, step: str, **args: object) -> dict:
    job = _wait(client, _job(client, step, **args)["job_id"])
    assert job["status"] == "succeeded", job
    return job


def _hold_job(hook: Path, client: httpx.Client, step: str, part: str) -> dict:
    """Submit ``step`` and return once it is held at ``part`` (what came before is written
    in its transaction, the rest not)."""
    (hook / "arm").write_text(part)
    job = _job(client, step)
    _until((hook / "held-job").exists, f"the {step} job reaching '{part}'")
    return job


def _sql(client: httpx.Client, query: str) -> list[list[object]]:
    answer = client.post("/v1/sql", json={"query": query, "limit": 100_000})
    assert answer.status_code == 200, answer.text
    return answer.json()["rows"]


#: Every table but ``jobs`` (which records the job itself) and ``audit_log`` (which records
#: each of these reads): rows and a checksum of their values.
FINGERPRINT = " UNION ALL ".join(
    f"SELECT '{name}', count(*), coalesce(sum(hash(x)), 0)::VARCHAR FROM \"{name}\" x"
    for name in TABLES if name not in ("jobs", "audit_log")) + " ORDER BY 1"


def _scored(tmp_path: Path) -> Server:
    """The demo company served (with the hook of the test), ingested, identified and scored
    (by jobs)."""
    server = _served_demo(tmp_path)
    with server.client("jobs") as client:
        for step in ("ingest", "identify", "score"):
            _run(client, step)
    return server


def test_kill_9_during_a_job_leaves_the_workspace_as_it_was(tmp_path: Path, hook: Path) -> None:
    server = _scored(tmp_path)
    try:
        with server.client("admin") as admin, server.client("jobs") as client:
            before = _sql(admin, FINGERPRINT)
            # value, needs and defection written in the job's transaction; monitor, KPIs not
            job = _hold_job(hook, client, "score", "defection monitor")
            assert _sql(admin, FINGERPRINT) == before  # other cursors see none of it
            assert _sql(admin, f"SELECT status FROM jobs WHERE job_id = '{job['job_id']}'"
                        ) == [["running"]]
        server.kill9()
        server.start()
        with server.client("admin") as admin:
            assert _sql(admin, FINGERPRINT) == before
            assert _sql(admin, f"SELECT status, error FROM jobs WHERE job_id = "
                        f"'{job['job_id']}'") == [
                ["interrupted", "The server stopped before the job ended."]]
        assert f"1 job(s) were interrupted by the last stop of the server: {job['job_id']}" \
            in server.log.read_text()
        assert not list((tmp_path / ".onetoone").glob("job-*"))  # the worker's copy is gone
    finally:
        server.stop()


def test_sigterm_cancels_the_job_answers_requests_in_flight_and_exits(
        tmp_path: Path, hook: Path) -> None:
    server = _scored(tmp_path)
    assert server.proc is not None
    with server.client("admin") as admin, server.client("jobs") as client:
        before = _sql(admin, FINGERPRINT)
        job = _hold_job(hook, client, "score", "defection monitor")
        answers: list[httpx.Response] = []
        in_flight = threading.Thread(target=lambda: answers.append(admin.post(
            "/v1/sql", json={"query": "SELECT 'held' AS answer"})))
        in_flight.start()
        _until((hook / "held-request").exists, "the request reaching the server")
        server.proc.send_signal(signal.SIGTERM)

        def refused() -> bool:
            try:
                httpx.get(f"{server.url}/healthz", timeout=2)
            except httpx.TransportError:
                return True
            return False

        _until(refused, "the server refusing new connections")
        (hook / "release").write_text("")
        in_flight.join(60)
    assert [a.status_code for a in answers] == [200]
    assert answers[0].json()["rows"] == [["held"]]
    assert server.proc.wait(60) == 128 + signal.SIGTERM
    assert not (tmp_path / ".onetoone" / "server.json").exists()
    with Workspace(tmp_path) as ws:
        status, error = ws.store.fetchall(
            "SELECT status, error FROM jobs WHERE job_id = ?", [job["job_id"]])[0]
        assert status == "cancelled"
        assert error == ("The server stopped while the job ran; nothing of it was kept (its "
                         "transaction was rolled back).")
        after = [list(r) for r in ws.store.fetchall(FINGERPRINT)]
    assert after == before


BRIDGE = '''
[sources.bridge]
entity = "customers"
path = "bridge/*.csv"
format = "csv"
[sources.bridge.columns]
source_id = "id"
email = "email"
[sources.bridge.identifiers]
customer_number = "crm_id"
'''


def test_events_during_identify_are_attached_to_the_right_customer(
        tmp_path: Path, hook: Path) -> None:
    """While an identify job merges customer B into A and links a new profile P, events
    arrive for B, for P's e-mail and for an e-mail no record has: after the job, none is lost
    and each is attached to the customer it belongs to, and the next identify keeps them."""
    (tmp_path / "bridge").mkdir()
    (tmp_path / "bridge" / "0.csv").write_text("id,email,crm_id\nb0,first.bridge@example.org,\n")
    server = _served_demo(tmp_path)
    server.stop()
    with (tmp_path / "onetoone.toml").open("a") as config:
        config.write(BRIDGE)
    server.start()
    try:
        with server.client("admin") as admin, server.client("jobs") as client:
            _run(client, "ingest")
            _run(client, "identify")
            (a, a_email, _), (b, b_email, b_number) = _sql(admin, """
                SELECT c.customer_id, c.email, min(i.value) FROM customers c
                JOIN customer_links l USING (customer_id) JOIN identifiers i USING (record_key)
                WHERE c.email IS NOT NULL AND i.type = 'customer_number'
                GROUP BY ALL ORDER BY c.customer_id LIMIT 2""")
            # a record with A's e-mail and B's customer number (B merges into A), and P
            (tmp_path / "bridge" / "1.csv").write_text(
                f"id,email,crm_id\nb1,{a_email},{b_number}\nb2,nouvelle.cliente@laposte.net,\n")
            _run(client, "ingest", source="bridge")
            job = _hold_job(hook, client, "identify", "attaching events to customers")
            with server.client("events") as events:
                sent = events.post("/v1/events", json={"events": [
                    {"event_id": f"e-{i}", "type": "page_view", "channel": "web",
                     "occurred_at": "2025-12-30T10:00:00Z", "customer": {"email": email}}
                    for i, email in enumerate([b_email, "nouvelle.cliente@laposte.net",
                                               "jamais.vue@laposte.net"])]})
                assert sent.status_code == 200, sent.text
            (hook / "go").write_text("")
            done = _wait(client, job["job_id"])
            assert done["status"] == "succeeded", done
            assert done["result"]["merges"] >= 1

            def owners() -> dict[str, list[object]]:
                """Each event's customer id and whether that customer exists."""
                return {r[0]: r[1:] for r in _sql(admin, """
                    SELECT event_id, customer_id,
                           customer_id IN (SELECT customer_id FROM customers)
                    FROM interactions WHERE event_id LIKE 'e-%'""")}

            def customers_of(email: str) -> list[object]:
                """The customers of the records that carry ``email``."""
                return [r[0] for r in _sql(admin, f"""
                    SELECT DISTINCT l.customer_id FROM customer_records r
                    JOIN customer_links l USING (record_key) WHERE r.email = '{email}'""")]

            def survivor(customer_id: str) -> str:
                merged = _sql(admin, "SELECT merged_into FROM customer_ids "
                              f"WHERE customer_id = '{customer_id}'")
                return customer_id if not merged or merged[0][0] is None else \
                    survivor(str(merged[0][0]))

            assert survivor(b) == a
            seen = owners()
            assert sorted(seen) == ["e-0", "e-1", "e-2"]  # none lost
            assert seen["e-0"] == [a, True]  # B's event now with A, which B merged into
            assert seen["e-2"] == [*customers_of("jamais.vue@laposte.net"), True]
            _run(client, "identify")
            again = owners()
            assert again["e-0"] == [a, True]
            assert again["e-2"] == seen["e-2"]  # the service's customer is kept
            # P and the customer the service made for its e-mail meanwhile are now one
            assert again["e-1"] == [*customers_of("nouvelle.cliente@laposte.net"), True]
    finally:
        server.stop()
