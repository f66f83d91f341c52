"""Campaigns created, changed and retired through ``/v1/campaigns``: checked with the sentences
of the configuration's load, run like those of onetoone.toml (preview, a run as a job,
status, a cron schedule), retired without losing their status, refused for a name of the
file, and found by the command line with or without a server."""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from _service_server import CONFIG, OPTIN, Server, crm_sources, make_workspace
from onetoone import Workspace
from onetoone.api.app import build_app
from onetoone.cli import app as cli
from onetoone.config import parse_config
from onetoone.errors import ConfigError
from onetoone.schema import SCHEMA_VERSION

with warnings.catch_warnings():  # the test client's own deprecation notice
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

CUSTOMERS = 30
FILE_CAMPAIGN = """
[campaigns.spring]
channel = "email"
actions = ["retention_offer"]
"""
SOURCES = crm_sources({"source_id": "id", "first_name": "prenom", "email": "mail",
                       "language": "langue"}, OPTIN) + FILE_CAMPAIGN
WINBACK = {"channel": "email", "actions": ["retention_offer"], "control_share": 0.2}


def _workspace(root: Path) -> dict[str, str]:
    """Thirty customers, the first 25 consenting to e-mail marketing; the keys of the server
    tests and ``marketing`` (scope ``campaigns``, reads and runs)."""
    rows = ["id;prenom;mail;langue", *(f"{i};Client{i};client{i}@exemple.fr;fr"
                                       for i in range(1, CUSTOMERS + 1))]
    (root / "crm.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    optins = ["client;canal;ok;date", *(f"{i};email;oui;2026-01-10" for i in range(1, 26))]
    (root / "consents.csv").write_text("\n".join(optins) + "\n", encoding="utf-8")
    keys = make_workspace(root, CONFIG + SOURCES)
    with Workspace(root) as ws:
        ws.ingest()
        ws.identify()
        keys["marketing"] = ws.keys.create("marketing", ["campaigns", "customers:read", "jobs"])
    return keys


@contextmanager
def _served(root: Path, keys: dict[str, str]) -> Iterator[tuple[Any, Any]]:
    """(a client of the real application with the ``marketing`` key, the application)."""
    application = build_app(root)
    with TestClient(application) as client:
        client.headers["Authorization"] = f"Bearer {keys['marketing']}"
        yield client, application


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, dict]]:
    root = tmp_path_factory.mktemp("definitions")
    keys = _workspace(root)
    with _served(root, keys) as (client, application):
        yield client, application, keys


def _as(keys: dict[str, str], name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys[name]}"}


def _ended(client: Any, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return dict(job)
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not end")


def _audit(root: Path) -> list[tuple[str, str, str]]:
    with duckdb.connect(str(root / "onetoone.duckdb"), read_only=True) as con:
        return [tuple(r) for r in con.execute(
            "SELECT action, actor, details->>'campaign' FROM audit_log "
            "WHERE action LIKE 'campaign.%' ORDER BY \"at\"").fetchall()]


def test_created_listed_previewed_run_and_its_status(served: Any) -> None:
    client, _, _ = served
    created = client.post("/v1/campaigns", json={"name": "winback", **WINBACK})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["source"] == "api" and body["created_by"] == "marketing"
    assert body["control_share"] == 0.2 and body["schedule"] == "once"
    assert body["retired_at"] is None

    listed = client.get("/v1/campaigns").json()
    assert [(c["name"], c["source"]) for c in listed][:2] == [("spring", "config"),
                                                             ("winback", "api")]
    assert client.get("/v1/campaigns/winback").json()["actions"] == ["retention_offer"]
    # the same request sent again creates nothing
    again = client.post("/v1/campaigns", json={"name": "winback", **WINBACK})
    assert again.status_code == 200 and again.json()["created_at"] == body["created_at"]

    preview = client.get("/v1/campaigns/winback/preview")
    assert preview.status_code == 200, preview.text
    result = preview.json()
    assert result["campaign"] == "winback" and result["audience"] == CUSTOMERS
    assert result["to_send"] + result["held_out"] == 25 and result["to_send"] > 0

    queued = client.post("/v1/campaigns/winback/run")
    assert queued.status_code == 202, queued.text
    job = _ended(client, queued.json()["job_id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["run_id"] == "winback:once"
    sent = job["result"]["delivery"]["sent"]
    assert sent == result["to_send"]

    status = client.get("/v1/campaigns/winback/status").json()
    assert status["runs"] == ["winback:once"] and status["sent"] == sent
    assert status["held_out"] == result["held_out"]


def test_changed_then_retired_it_runs_no_more_and_its_status_stays(served: Any) -> None:
    client, _, _ = served
    assert client.post("/v1/campaigns",
                       json={"name": "autumn", **WINBACK}).status_code == 201
    first = client.get("/v1/campaigns/autumn").json()
    changed = client.put("/v1/campaigns/autumn", json={**WINBACK, "control_share": 0.3,
                                                        "send_window": "00:00-24:00"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["control_share"] == 0.3
    assert changed.json()["updated_at"] > first["updated_at"]
    assert client.get("/v1/campaigns/autumn").json()["send_window"] == "00:00-24:00"
    job = _ended(client, client.post("/v1/campaigns/autumn/run").json()["job_id"])
    assert job["status"] == "succeeded", job

    retired = client.delete("/v1/campaigns/autumn")
    assert retired.status_code == 200 and retired.json()["retired_at"] is not None
    for refused in (client.post("/v1/campaigns/autumn/run"),
                    client.get("/v1/campaigns/autumn/preview"),
                    client.put("/v1/campaigns/autumn", json=WINBACK)):
        assert refused.status_code == 409, refused.text
        assert "retired" in refused.json()["message"]
    status = client.get("/v1/campaigns/autumn/status")
    assert status.status_code == 200 and status.json()["runs"] == ["autumn:once"]
    assert "autumn" not in [c["name"] for c in client.get("/v1/campaigns").json()]
    assert "autumn" in [c["name"] for c in
                        client.get("/v1/campaigns", params={"retired": True}).json()]
    # its name keeps its runs: other settings are refused, its own bring it back
    other = client.post("/v1/campaigns", json={"name": "autumn", **WINBACK})
    assert other.status_code == 409 and "retired" in other.json()["message"]
    back = client.post("/v1/campaigns", json={
        "name": "autumn", **WINBACK, "control_share": 0.3, "send_window": "00:00-24:00"})
    assert back.status_code == 201 and back.json()["retired_at"] is None
    assert client.get("/v1/campaigns/autumn/preview").status_code == 200


def test_a_campaign_of_the_file_is_not_changed_through_the_api(served: Any) -> None:
    client, _, _ = served
    for response in (client.post("/v1/campaigns", json={"name": "spring", **WINBACK}),
                     client.put("/v1/campaigns/spring", json=WINBACK),
                     client.delete("/v1/campaigns/spring")):
        assert response.status_code == 409, response.text
        assert "onetoone.toml" in response.json()["message"]
    spring = client.get("/v1/campaigns/spring").json()
    assert spring["source"] == "config" and spring["control_share"] == 0.1


@pytest.mark.parametrize(("settings", "toml"), [
    ({"channel": "emial"}, 'channel = "emial"'),
    ({"channel": "email", "audience": "vallue_tier == 1"},
     'channel = "email"\naudience = "vallue_tier == 1"'),
    ({"channel": "email", "actions": ["nope"]}, 'channel = "email"\nactions = ["nope"]'),
    ({"channel": "email", "schedule": "every day"}, 'channel = "email"\nschedule = "every day"'),
    ({"channel": "email", "tiers": ["gold"]}, 'channel = "email"\ntiers = ["gold"]'),
    ({"channel": "email", "send_window": "25:00-26:00"},
     'channel = "email"\nsend_window = "25:00-26:00"'),
    ({"channel": "email", "colour": "red"}, 'channel = "email"\ncolour = "red"'),
])
def test_invalid_settings_get_the_sentence_of_the_file_load(
        served: Any, settings: dict[str, Any], toml: str) -> None:
    client, _, _ = served
    with pytest.raises(ConfigError) as loaded:
        parse_config(CONFIG + f"\n[campaigns.x]\n{toml}\n")
    # the file's errors name their line; the request's, the body
    expected = re.sub(r"\(onetoone\.toml, line \d+\)", "(request body)",
                      loaded.value.user_message())
    response = client.post("/v1/campaigns", json={"name": "x", **settings})
    assert response.status_code == 422, response.text
    assert response.json() == {"error": "InvalidInputError", "message": expected}
    assert client.get("/v1/campaigns/x").status_code == 404


def test_names_and_triggers_the_api_refuses(served: Any) -> None:
    client, _, _ = served
    for name in ("", "a b", "x" * 65, "été"):
        response = client.post("/v1/campaigns", json={"name": name, **WINBACK})
        assert response.status_code == 422, name
        assert "letters, digits" in response.json()["message"]
    assert client.post("/v1/campaigns", json=WINBACK).status_code == 422  # no name
    triggered = client.post("/v1/campaigns", json={"name": "care", "channel": "email",
                                                   "schedule": "trigger:complaint"})
    assert triggered.status_code == 422  # no such trigger: the file's sentence
    assert "not a [triggers.NAME]" in triggered.json()["message"]
    assert client.put("/v1/campaigns/nothing", json=WINBACK).status_code == 404
    assert client.delete("/v1/campaigns/nothing").status_code == 404


def test_a_key_without_the_scope_is_403(served: Any) -> None:
    client, _, keys = served
    reader = _as(keys, "reader")
    for method, path in (("POST", "/v1/campaigns"), ("PUT", "/v1/campaigns/scoped"),
                         ("DELETE", "/v1/campaigns/scoped")):
        response = client.request(method, path, json={"name": "scoped", **WINBACK},
                                  headers=reader)
        assert response.status_code == 403, (method, response.text)
        assert "'campaigns'" in response.json()["message"]
    assert client.get("/v1/campaigns/scoped").status_code == 404
    # admin grants every scope
    admin = client.post("/v1/campaigns", json={"name": "scoped", **WINBACK},
                        headers=_as(keys, "admin"))
    assert admin.status_code == 201 and admin.json()["created_by"] == "admin"


def test_a_cron_campaign_is_scheduled_and_the_changes_are_audited(tmp_path: Path) -> None:
    keys = _workspace(tmp_path)
    weekly = {**WINBACK, "schedule": "30 8 * * MON-FRI"}
    with _served(tmp_path, keys) as (client, application):
        scheduler = application.state.scheduler
        assert client.post("/v1/campaigns", json={"name": "weekly", **weekly}).status_code \
            == 201
        due = scheduler.next_runs()["campaign:weekly"]
        assert (due.hour, due.minute) == (8, 30)
        assert client.put("/v1/campaigns/weekly", json=WINBACK).status_code == 200
        assert "campaign:weekly" not in scheduler.next_runs()  # once: run by hand
        assert client.put("/v1/campaigns/weekly", json=weekly).status_code == 200
        assert "campaign:weekly" in scheduler.next_runs()
    # a server started later plans it from the table
    with _served(tmp_path, keys) as (client, application):
        scheduler = application.state.scheduler
        assert "campaign:weekly" in scheduler.next_runs()
        (job,) = scheduler.tick(scheduler.next_runs()["campaign:weekly"])
        assert job.step == "campaign" and job.args["name"] == "weekly"
        assert _ended(client, job.job_id)["status"] == "succeeded"
        assert client.delete("/v1/campaigns/weekly").status_code == 200
        assert "campaign:weekly" not in scheduler.next_runs()
    assert _audit(tmp_path) == [
        ("campaign.create", "key:marketing", "weekly"),
        ("campaign.change", "key:marketing", "weekly"),
        ("campaign.change", "key:marketing", "weekly"),
        ("campaign.run", "job:schedule", "weekly"),
        ("campaign.retire", "key:marketing", "weekly")]


def test_a_campaign_the_file_no_longer_allows_does_not_run(tmp_path: Path) -> None:
    keys = _workspace(tmp_path)
    with _served(tmp_path, keys) as (client, _):
        assert client.post("/v1/campaigns", json={
            "name": "news", "channel": "email", "actions": ["newsletter"]}).status_code == 201
    config = tmp_path / "onetoone.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('[actions.newsletter]\nissue = "growth"\n'
                                   'channels = ["email", "web", "store"]\nvalue = 5\n'
                                   "prior_propensity = 0.1\n", ""), encoding="utf-8")
    with _served(tmp_path, keys) as (client, _):
        (news,) = [c for c in client.get("/v1/campaigns").json() if c["name"] == "news"]
        assert "the action 'newsletter', which the catalog does not hold" in news["problem"]
        preview = client.get("/v1/campaigns/news/preview")
        assert preview.status_code == 409
        assert "no longer passes the checks of onetoone.toml" in preview.json()["message"]
        assert client.post("/v1/campaigns/news/run").status_code == 409
        assert client.put("/v1/campaigns/news", json=WINBACK).status_code == 200
        assert client.get("/v1/campaigns/news/preview").status_code == 200


def test_the_cli_previews_a_campaign_created_through_the_api(tmp_path: Path) -> None:
    server = Server(tmp_path, _workspace(tmp_path))
    where = ["--workspace", str(tmp_path)]
    runner = CliRunner()
    server.start()
    try:
        with server.client("marketing") as client:
            created = client.post("/v1/campaigns", json={"name": "winback", **WINBACK})
            assert created.status_code == 201, created.text
        served = runner.invoke(cli, ["campaign", "preview", "winback", *where])
        assert served.exit_code == 0, served.output
        assert "Campaign winback on email (preview)" in served.output
    finally:
        server.stop()
    alone = runner.invoke(cli, ["campaign", "preview", "winback", *where])  # from the table
    assert alone.exit_code == 0, alone.output
    assert "to send" in alone.output and "FIDELE20" in alone.output
    unknown = runner.invoke(cli, ["campaign", "preview", "nothing", *where])
    assert unknown.exit_code == 1 and "No campaign 'nothing'" in unknown.output


def test_an_older_workspace_gets_the_table(tmp_path: Path) -> None:
    with Workspace.init(tmp_path) as ws:
        ws.store.execute("DROP TABLE campaign_definitions")
        ws.store.execute("UPDATE onetoone_meta SET value = '7' WHERE key = 'schema_version'")
    with Workspace(tmp_path) as ws:
        assert ws.store.schema_version() == SCHEMA_VERSION == 8
        assert ws.store.scalar("SELECT count(*) FROM campaign_definitions") == 0
