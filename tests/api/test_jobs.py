"""Batch steps as jobs of the running server (``/v1/jobs``), and the CLI's ingest, identify,
score and kpis going through them on a served workspace."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from _service_server import SCOPE_SETS, Server
from onetoone import Workspace
from onetoone.cli import app
from onetoone.demo import generate_demo

pytestmark = pytest.mark.slow


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _served_demo(root: Path, people: int = 600) -> Server:
    company = generate_demo(root, customers=people, seed=3)
    with Workspace.init(root, config_text=company.config_text()) as ws:
        keys = {name: ws.keys.create(name, scopes) for name, scopes in
                {**SCOPE_SETS, "jobs": ["jobs"]}.items()}
    return Server(root, keys).start()


def _wait(client: object, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()  # type: ignore[attr-defined]
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end")


def test_the_cli_runs_batch_steps_through_the_server(tmp_path: Path) -> None:
    server = _served_demo(tmp_path)
    where = ["--workspace", str(tmp_path)]
    try:
        code, out, _ = _cli("ingest", *where)
        assert code == 0 and "crm" in out and "Done in" in out
        code, out, _ = _cli("identify", *where)
        assert code == 0 and "records ->" in out and "customers (full run" in out
        code, out, _ = _cli("score", *where)
        assert code == 0 and "customers scored into customer_scores" in out
        code, out, _ = _cli("kpis", "--months", "2", *where)
        assert code == 0 and "active customers" in out
        # a failing job: the same sentence and exit code as alone; the server keeps serving
        code, _, err = _cli("ingest", "no_such_source", *where)
        assert code == 1 and "No source named 'no_such_source'" in err
        code, _, err = _cli("ingest", str(tmp_path / "x.csv"), "--entity", "customers", *where)
        assert code == 1 and "No file or folder" in err  # an ad-hoc file, through the server
        with server.client("admin") as client:
            assert client.get("/v1/status").json()["tables"]["customer_scores"] > 0
        code, out, _ = _cli("sql", "select step, status from jobs order by created_at",
                            "--json", *where)
        assert [(j["step"], j["status"]) for j in json.loads(out)] == [
            ("ingest", "succeeded"), ("identify", "succeeded"), ("score", "succeeded"),
            ("kpis", "succeeded"), ("ingest", "failed"), ("ingest", "failed")]
    finally:
        server.stop()


def test_jobs_api_queue_cancel_refusals_and_interruption(tmp_path: Path) -> None:
    server = _served_demo(tmp_path)
    try:
        with server.client("decider") as client:
            assert client.post("/v1/jobs", json={"step": "score"}).status_code == 403
        with server.client("jobs") as client:
            bad = client.post("/v1/jobs", json={"step": "dance"})
            assert bad.status_code == 422 and "ingest, identify, score" in bad.json()["message"]
            bad = client.post("/v1/jobs", json={"step": "identify", "args": {"fast": True}})
            assert bad.status_code == 422 and "full" in bad.json()["message"]
            first = client.post("/v1/jobs", json={"step": "ingest"}).json()
            second = client.post("/v1/jobs", json={"step": "identify"}).json()
            third = client.post("/v1/jobs", json={"step": "score"}).json()
            assert second["status"] == "queued" and "queued behind" in second["log"][0]
            cancelled = client.delete(f"/v1/jobs/{third['job_id']}").json()
            assert cancelled["status"] == "cancelled" and cancelled["exit_code"] == 130
            assert _wait(client, first["job_id"])["status"] == "succeeded"
            done = _wait(client, second["job_id"])
            assert done["status"] == "succeeded" and done["result"]["customers"] > 0
            assert done["done"] == 1.0 and "building golden records" in done["log"]
            listed = [j["job_id"] for j in client.get("/v1/jobs").json()]
            assert listed == [third["job_id"], second["job_id"], first["job_id"]]
            assert client.get("/v1/jobs/job-nope").status_code == 404
            # decisions are answered while a job runs
            running = client.post("/v1/jobs", json={"step": "score"}).json()
        with server.client("decider") as client:
            answer = client.post("/v1/decisions", json={
                "customer": {"email": "someone@orange.fr"}, "channel": "email"})
            assert answer.status_code == 200
        server.kill9()  # during the score job (seconds long): the next start says so
        server.start()
        with server.client("admin") as client:
            rows = client.post("/v1/sql", json={
                "query": f"select status, error from jobs where job_id = '{running['job_id']}'"
            }).json()["rows"]
        assert rows == [["interrupted", "The server stopped before the job ended."]]
    finally:
        server.stop()


def test_after_a_score_job_decisions_use_the_new_scores(tmp_path: Path) -> None:
    server = _served_demo(tmp_path)

    def sql(client: object, query: str) -> list[list[object]]:
        return client.post("/v1/sql", json={"query": query}).json()["rows"]  # type: ignore[attr-defined]

    try:
        with server.client("jobs") as jobs:
            for step in ("ingest", "identify"):
                job = jobs.post("/v1/jobs", json={"step": step}).json()
                assert _wait(jobs, job["job_id"])["status"] == "succeeded"
        with server.client("admin") as admin, server.client("decider") as decider:
            ((customer_id, email),) = sql(admin, """
                SELECT l.customer_id, i.value FROM identifiers i
                JOIN customer_links l USING (record_key) WHERE i.type = 'email'
                ORDER BY l.customer_id LIMIT 1""")

            def segment_of_a_decision() -> object:
                answer = decider.post("/v1/decisions", json={
                    "customer": {"email": email}, "channel": "web"}).json()
                assert answer["customer_id"] == customer_id
                for _ in range(50):  # the decision log is written within [api] decision_log_ms
                    rows = sql(admin, "SELECT context->>'segment' FROM decisions WHERE "
                               f"decision_id = '{answer['decision_id']}' LIMIT 1")
                    if rows:
                        return rows[0][0]
                    time.sleep(0.1)
                raise AssertionError("the decision was not logged")

            assert segment_of_a_decision() == "all"  # no score yet: the profile has no tier
            with server.client("jobs") as jobs:
                job = jobs.post("/v1/jobs", json={"step": "score"}).json()
                done = _wait(jobs, job["job_id"])
            assert done["status"] == "succeeded"
            assert "refreshing the decision service's profiles" in done["log"]
            # computed in a worker process, copied back in the job's transaction
            assert {"copying the database for a worker process", "copying the worker's results",
                    "value: fitting and scoring"} <= set(done["log"])
            assert not list((tmp_path / ".onetoone").glob("job-*"))  # the copy is removed
            ((tier,),) = sql(admin, "SELECT value_tier FROM customer_scores WHERE "
                             f"customer_id = '{customer_id}' ORDER BY as_of DESC LIMIT 1")
            assert segment_of_a_decision() == f"value_tier={tier}"
    finally:
        server.stop()


def test_identity_decisions_go_through_the_server_and_decisions_follow(tmp_path: Path) -> None:
    server = _served_demo(tmp_path)
    where = ["--workspace", str(tmp_path)]
    try:
        assert _cli("ingest", *where)[0] == 0 and _cli("identify", *where)[0] == 0
        code, out, _ = _cli("identify", "review", *where)
        assert code == 0 and "Pairs to review" in out
        with server.client("admin") as admin:
            (a, b), = admin.post("/v1/sql", json={"query": """
                SELECT min(customer_id), max(customer_id) FROM
                (SELECT customer_id FROM customers ORDER BY customer_id LIMIT 2)"""}
            ).json()["rows"]
            bad = admin.post("/v1/jobs", json={"step": "merge", "args": {"customer_a": a}})
            assert bad.status_code == 422 and "customer_b" in bad.json()["message"]
        code, out, _ = _cli("identify", "merge", a, b, "--reason", "same person", *where)
        assert code == 0 and "1 merged" in out, out
        with server.client("decider") as decider:
            answers = {decider.post("/v1/decisions", json={
                "customer": {"customer_id": c}, "channel": "web"}).json()["customer_id"]
                for c in (a, b)}
        assert len(answers) == 1 and answers <= {a, b}  # the merged id answered as the other
        code, _, err = _cli("identify", "merge", a, "C-nobody", *where)
        assert code == 1 and "No customer C-nobody" in err
    finally:
        server.stop()
