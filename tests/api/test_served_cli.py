"""The CLI on a served workspace: ``onetoone serve`` writes ``.onetoone/server.json`` and the
commands that can go through it do; ``onetoone sql`` reads, with or without a server."""

from __future__ import annotations

import csv
import io
import json
import stat
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from _service_server import Server, make_workspace
from onetoone import Workspace
from onetoone.api.local import server_file
from onetoone.cli import app


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_sql_reads_and_refuses_writes_without_a_server(tmp_path: Path) -> None:
    with Workspace.init(tmp_path) as ws:
        ws.keys.create("crm", ["decisions"])
        ws.keys.create("=HYPERLINK(1)", ["admin"])
    where = ["--workspace", str(tmp_path)]
    code, out, _ = _cli("sql", "select name, scopes from api_keys order by name", *where)
    assert code == 0 and "crm" in out and "decisions" in out
    code, out, _ = _cli("sql", "select name from api_keys order by name", "--csv", *where)
    assert code == 0
    assert list(csv.reader(io.StringIO(out))) == [["name"], ["'=HYPERLINK(1)"], ["crm"]]
    code, out, _ = _cli("sql", "from api_keys select name, scopes order by name", "--json",
                        *where)
    assert code == 0 and json.loads(out)[1] == {"name": "crm", "scopes": ["decisions"]}
    code, _, err = _cli("sql", "select * from range(5)", "--limit", "2", *where)
    assert code == 0 and "Only the first 2 rows" in err
    for bad, says in [("delete from api_keys", "not DELETE"),
                      ("select 1; drop table api_keys", "exactly one statement"),
                      ("selec 1", "does not parse"),
                      ("select * from no_such_table", "no_such_table"),
                      ("attach 'other.duckdb'", "not ATTACH")]:
        code, out, err = _cli("sql", bad, *where)
        assert code == 1 and says in err and "Traceback" not in out + err, bad
    code, _, err = _cli("sql", "select 1", "--csv", "--json", *where)
    assert code == 1 and "not both" in err
    with Workspace(tmp_path) as ws:
        assert ws.store.scalar("SELECT count(*) FROM api_keys") == 2


@pytest.mark.slow
def test_commands_go_through_the_running_server(tmp_path: Path) -> None:
    server = Server(tmp_path, make_workspace(tmp_path)).start()
    where = ["--workspace", str(tmp_path)]
    try:
        address = server_file(tmp_path)
        info = json.loads(address.read_text())
        assert server.proc is not None
        assert info["url"] == server.url and info["pid"] == server.proc.pid
        assert stat.S_IMODE(address.stat().st_mode) == 0o600
        assert stat.S_IMODE(address.parent.stat().st_mode) == 0o700
        # the database is the server's: only a command that goes through it can succeed
        from onetoone.errors import WorkspaceError

        with pytest.raises(WorkspaceError, match="in use by another onetoone process"):
            Workspace(tmp_path)
        code, out, _ = _cli("status", *where)
        assert code == 0 and "api_keys" in out
        code, out, _ = _cli("apikey", "create", "web", "--scopes", "decisions", *where)
        assert code == 0
        key = out.strip().splitlines()[-1]
        assert httpx.get(f"{server.url}/v1/ping",
                         headers={"Authorization": f"Bearer {key}"}).status_code == 200
        code, out, _ = _cli("sql", "select name from api_keys where name = 'web'", "--json",
                            *where)
        assert code == 0 and json.loads(out) == [{"name": "web"}]
        code, out, _ = _cli("apikey", "list", *where)
        assert code == 0 and "web" in out and key not in out
        code, out, _ = _cli("apikey", "revoke", "web", *where)
        assert code == 0 and "1 key(s)" in out
        assert httpx.get(f"{server.url}/v1/ping",
                         headers={"Authorization": f"Bearer {key}"}).status_code == 401
        code, _, err = _cli("sql", "update api_keys set name = 'x'", *where)
        assert code == 1 and "not UPDATE" in err
        # customer and report read on their own cursor while the server serves
        with server.client("events") as client:
            assert client.post("/v1/events", json={"events": [
                {"event_id": f"e{i}", "type": "purchase", "channel": "web",
                 "customer": {"email": "ana.martin@orange.fr"},
                 "occurred_at": f"2026-11-{i + 1:02d}T10:00:00", "properties": {"amount": 30}}
                for i in range(3)]}).status_code == 200
        code, out, _ = _cli("sql", "select customer_id from customers", "--csv", *where)
        customer_id = out.strip().splitlines()[-1]
        code, out, _ = _cli("customer", customer_id, "--why", *where)
        assert code == 0 and "ana.martin@orange.fr" in out and "Source records" in out
        code, out, _ = _cli("report", *where)
        assert code == 0 and (tmp_path / "report" / "index.html").is_file()
        code, _, err = _cli("report", "--output", str(tmp_path.parent / "elsewhere.html"), *where)
        assert code == 1 and "inside its workspace folder" in err
        with server.client("admin") as client:
            bad = client.post("/v1/report", json={"output": "a\u0000b"})
            assert bad.status_code == 422 and "not a file path" in bad.json()["message"]
        code, _, err = _cli("report", "--output", str(tmp_path / ("x" * 300 + ".html")), *where)
        assert code == 1 and "Cannot write the report" in err
        # the local token is the server's own: not in the database, gone with the server
        code, out, _ = _cli("sql", "select count(*) AS n from api_keys "
                            "where name = 'local-cli'", "--json", *where)
        assert json.loads(out) == [{"n": 0}]
        server.stop()  # SIGTERM: a clean stop removes the address file
        assert not address.exists()
        server.start()
        assert address.exists()
        server.kill9()  # a crash leaves it: the next command removes it and runs alone
        assert address.exists()
        code, out, err = _cli("status", *where)
        assert code == 0 and "no longer runs" in err and "api_keys" in out
        assert not address.exists()
    finally:
        server.stop()


def test_decide_goes_through_the_server_and_refuses_an_unknown_channel(tmp_path: Path) -> None:
    server = Server(tmp_path, make_workspace(tmp_path)).start()
    try:
        where = ["--workspace", str(tmp_path)]
        done = CliRunner().invoke(app, ["decide", "--channel", "email", *where])
        assert done.exit_code == 0, done.output
        assert "customers in the outbound list" in done.output
        wrong = CliRunner().invoke(app, ["decide", "--channel", "emial", *where])
        assert wrong.exit_code == 1 and "Unknown channel 'emial'" in wrong.output
        assert "email" in wrong.output
    finally:
        server.stop()


def test_an_ad_hoc_file_loads_through_the_server_from_inside_the_workspace(
        tmp_path: Path) -> None:
    server = Server(tmp_path, make_workspace(tmp_path)).start()
    try:
        (tmp_path / "exports").mkdir()
        (tmp_path / "exports" / "fair.csv").write_text(
            "id;mail\n1;ana@exemple.fr\n2;bruno@exemple.fr\n", encoding="utf-8")
        outside = tmp_path.parent / f"{tmp_path.name}-outside.csv"
        outside.write_text("id;mail\n1;x@exemple.fr\n", encoding="utf-8")
        where = ["--workspace", str(tmp_path)]
        loaded = CliRunner().invoke(app, [
            "ingest", str(tmp_path / "exports" / "fair.csv"), "--entity", "customers",
            "--map", "source_id=id", "--map", "email=mail", "--delimiter", ";", *where])
        assert loaded.exit_code == 0, loaded.output
        assert "Done in" in loaded.output
        refused = CliRunner().invoke(app, [
            "ingest", str(outside), "--entity", "customers", "--map", "source_id=id", *where])
        assert refused.exit_code == 1 and "reads inside its workspace folder only" \
            in refused.output
        with server.client("admin") as client:  # nor by naming the file as the source
            job = client.post("/v1/jobs", json={"step": "ingest", "args": {
                "source": str(outside), "entity": "customers"}})
            ended = job.json()
            for _ in range(200):
                if ended["status"] not in ("queued", "running"):
                    break
                time.sleep(0.05)
                ended = client.get(f"/v1/jobs/{ended['job_id']}").json()
            assert ended["status"] == "failed"
            assert "reads inside its workspace folder only" in ended["error"]
            rows = client.post("/v1/sql", json={
                "query": "SELECT count(*) FROM customer_records"}).json()["rows"]
            assert rows == [[2]]
    finally:
        server.stop()
