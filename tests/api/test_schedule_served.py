"""``[schedule]`` in a served workspace: a chain runs after its step succeeds on the real
server, ``onetoone status`` shows the next runs and last results, and a cron entry fires when
the scheduler's clock reaches it (driven by ``tick``: no waiting for the time to come)."""

from __future__ import annotations

import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from _service_server import Server, make_workspace
from onetoone.api.app import build_app
from onetoone.cli import app
from onetoone.demo import generate_demo

pytestmark = pytest.mark.slow

SCHEDULE = """
[schedule]
identify = "after ingest"
score = "0 2 * * *"
"""


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _until_ended(client: Any, step: str, count: int, timeout: float = 120) -> dict[str, Any]:
    """The newest job of ``step`` once there are ``count`` of them and it has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = [j for j in client.get("/v1/jobs").json() if j["step"] == step]
        if len(jobs) >= count and jobs[0]["status"] not in ("queued", "running"):
            return dict(jobs[0])
        time.sleep(0.2)
    raise AssertionError(f"no ended {step} job in time")


def test_chains_cron_runs_and_status_on_a_served_workspace(tmp_path: Path) -> None:
    company = generate_demo(tmp_path, customers=600, seed=3)
    keys = make_workspace(tmp_path, company.config_text() + SCHEDULE)
    where = ["--workspace", str(tmp_path)]
    server = Server(tmp_path, keys).start()
    try:
        # without any run yet: the next cron run, the chain, and nothing run
        code, out, _ = _cli("status", *where)
        assert code == 0 and "Schedule (Europe/Paris)" in out and "0 2 * * *" in out
        assert " 02:00 CE" in out and "when ingest succeeds" in out and "never run" in out
        assert "The server of this workspace runs this schedule." in out
        # an ingest job submitted through the API is followed by an identify job
        with server.client("admin") as client:
            ingest = client.post("/v1/jobs", json={"step": "ingest"}).json()
            assert _until_ended(client, "ingest", 1)["status"] == "succeeded"
            identify = _until_ended(client, "identify", 1)
            assert identify["status"] == "succeeded" and identify["result"]["customers"] > 0
            assert f"queued by the schedule: after ingest ({ingest['job_id']})" in identify["log"]
            schedule = client.get("/v1/status").json()["schedule"]
        assert schedule["served"] is True and schedule["timezone"] == "Europe/Paris"
        rows = {row["step"]: row for row in schedule["steps"]}
        assert rows["identify"]["after"] == "ingest" and rows["identify"]["next_run"] is None
        assert rows["identify"]["last"]["status"] == "succeeded"
        assert rows["score"]["next_run"][11:16] == "02:00" and rows["score"]["last"] is None
        code, out, _ = _cli("status", *where)
        assert code == 0 and "succeeded 20" in out
        # a failed ingest starts no identify
        with server.client("admin") as client:
            failed = client.post("/v1/jobs", json={"step": "ingest",
                                                   "args": {"source": "no_such_source"}})
            assert failed.status_code == 202
            assert _until_ended(client, "ingest", 2)["status"] == "failed"
            time.sleep(0.5)
            assert sum(j["step"] == "identify" for j in client.get("/v1/jobs").json()) == 1
    finally:
        server.stop()

    # without a server: the next run is computed, and status says the schedule is not running
    code, out, _ = _cli("status", *where)
    assert code == 0 and " 02:00 CE" in out and "succeeded 20" in out
    assert "The schedule runs only while 'onetoone serve' runs; no server runs now." in out

    # the score entry fires when the scheduler's clock reaches 02:00
    with warnings.catch_warnings():  # the test client's own deprecation notice
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient
    application = build_app(tmp_path)
    with TestClient(application) as client:
        client.headers["Authorization"] = f"Bearer {keys['admin']}"
        scheduler = application.state.scheduler
        due = scheduler.next_runs()["score"]
        assert (due.hour, due.minute, str(due.tzinfo)) == (2, 0, "Europe/Paris")
        assert scheduler.tick(due - timedelta(minutes=1)) == []
        (job,) = scheduler.tick(due)
        assert job.step == "score"
        assert scheduler.tick(due) == []  # planned again, for the next day
        assert scheduler.next_runs()["score"] > due
        score = _until_ended(client, "score", 1)
        assert score["status"] == "succeeded" and score["result"]["customers"] > 0
        assert any(line.startswith("queued by the schedule: '0 2 * * *' due at ")
                   for line in score["log"])
        rows = {r["step"]: r for r in client.get("/v1/status").json()["schedule"]["steps"]}
        assert rows["score"]["last"]["status"] == "succeeded"
