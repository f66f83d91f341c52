"""Campaigns end to end into the outbox, and the answers coming back over HTTP: a preview
writes nothing, a run sends each customer one message per occurrence, the open pixel, click
redirect and one-click unsubscribe become responses, interactions and a withdrawal in force
for the next decision; forged links are 404."""

from __future__ import annotations

import email
import email.policy
import re
import time
from pathlib import Path

import duckdb
import httpx
import pytest
from typer.testing import CliRunner

from _service_server import CONFIG, OPTIN, Server, crm_sources, make_workspace
from onetoone import Workspace
from onetoone.cli import app
from onetoone.errors import ConfigError

CUSTOMERS = 40


def _crm() -> str:
    rows = ["id;prenom;mail;langue"]
    rows += [f"{i};Client{i};client{i}@exemple.fr;fr" for i in range(1, CUSTOMERS + 1)]
    return "\n".join(rows) + "\n"


def _consents() -> str:  # everyone but the last five consented to e-mail marketing
    rows = ["client;canal;ok;date"]
    rows += [f"{i};email;oui;2026-01-10" for i in range(1, CUSTOMERS - 4)]
    return "\n".join(rows) + "\n"


SOURCES = crm_sources({"source_id": "id", "first_name": "prenom", "email": "mail",
                       "language": "langue"}, OPTIN) + """
[campaigns.spring]
channel = "email"
actions = ["retention_offer"]
control_share = 0.2
"""


def _workspace(root: Path, public_url: str) -> dict[str, str]:
    (root / "crm.csv").write_text(_crm(), encoding="utf-8")
    (root / "consents.csv").write_text(_consents(), encoding="utf-8")
    config = CONFIG.replace(
        'body = "Votre code : FIDELE20"',
        'body = "Votre code : FIDELE20"\n'
        "html = '<p>Bonjour {{ first_name }}</p><a href=\"https://shop.example/offre?c=1\">"
        "Voir</a>'")
    config = config.replace("[api]\n", f'[api]\npublic_url = "{public_url}"\n')
    keys = make_workspace(root, config + SOURCES)
    with Workspace(root) as ws:
        ws.ingest()
        ws.identify()
    return keys


def _count(root: Path, sql: str) -> int:
    with duckdb.connect(str(root / "onetoone.duckdb"), read_only=True) as con:
        return int(con.execute(sql).fetchone()[0])


def test_preview_run_twice_and_the_answers_over_http(tmp_path: Path) -> None:
    server = Server(tmp_path, {})
    server.keys = _workspace(tmp_path, server.url)
    runner = CliRunner()
    where = ["--workspace", str(tmp_path)]

    preview = runner.invoke(app, ["campaign", "preview", "spring", *where])
    assert preview.exit_code == 0, preview.output
    assert "to send" in preview.output and "FIDELE20" in preview.output
    assert _count(tmp_path, "SELECT count(*) FROM decisions") == 0  # nothing written
    assert _count(tmp_path, "SELECT count(*) FROM outbound") == 0

    first = runner.invoke(app, ["campaign", "run", "spring", *where])
    assert first.exit_code == 0, first.output
    sent = _count(tmp_path, "SELECT count(*) FROM deliveries WHERE status = 'sent'")
    held = _count(tmp_path, "SELECT count(DISTINCT customer_id) FROM decisions "
                            "WHERE control_group = 'campaign'")
    # 35 consented: some held out as the campaign's control group, the others sent
    assert sent + held == CUSTOMERS - 5 and 2 <= held <= 15
    mails = sorted((tmp_path / "outbox" / "email" / "spring_once").glob("*.eml"))
    assert len(mails) == sent
    again = runner.invoke(app, ["campaign", "run", "spring", *where])
    assert again.exit_code == 0, again.output
    assert _count(tmp_path, "SELECT count(*) FROM deliveries") == sent  # nobody twice
    assert len(list((tmp_path / "outbox" / "email" / "spring_once").glob("*.eml"))) == sent

    message = email.message_from_bytes(mails[0].read_bytes(), policy=email.policy.default)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = message["List-Unsubscribe"].strip("<>")
    html = message.get_body(("html",)).get_content()
    pixel = re.search(r'<img src="([^"]+)"', html).group(1)
    click = re.search(r'<a href="([^"]+/t/c/[^"]+)"', html).group(1).replace("&amp;", "&")
    customer = message["To"]

    server.start()
    try:
        with httpx.Client(timeout=30) as web:
            assert web.get(pixel).headers["content-type"] == "image/gif"
            went = web.get(click, follow_redirects=False)
            assert went.status_code == 302
            assert went.headers["location"] == "https://shop.example/offre?c=1"
            forged = click[:-3] + ("AAA" if not click.endswith("AAA") else "BBB")
            assert web.get(forged, follow_redirects=False).status_code == 404
            assert web.get(unsubscribe).status_code == 200  # a page, not an unsubscription
            done = web.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
            assert done.status_code == 200
        with server.client("admin") as client:
            status = client.get("/v1/campaigns/spring/status").json()
            assert status["sent"] == sent and status["held_out"] == held
            assert status["opened"] == 1 and status["clicked"] == 1
            assert status["unsubscribed"] == 1
            assert status["lift"] and status["lift"][0]["run"] == "spring:once"
            # the withdrawal is in force for the very next decision
            decision = client.post("/v1/decisions", json={
                "customer": {"email": customer}, "channel": "email"}).json()
            assert decision["actions"] == []
            # a run through the server: a job, nothing new to send
            job = client.post("/v1/campaigns/spring/run").json()
            assert job["step"] == "campaign"
    finally:
        server.stop()
    assert _count(tmp_path, "SELECT count(*) FROM deliveries") == sent


def test_unknown_channel_action_and_field_are_refused_at_load(tmp_path: Path) -> None:
    base = CONFIG
    for extra, says in [
        ('[campaigns.x]\nchannel = "emial"\n', "channel = 'emial' is not an outbound channel"),
        ('[campaigns.x]\nchannel = "email"\nactions = ["nope"]\n', "the action 'nope'"),
        ('[campaigns.x]\nchannel = "email"\naudience = "vallue_tier == 1"\n',
         "unknown field 'vallue_tier'"),
        ('[campaigns.x]\nchannel = "email"\nschedule = "every day"\n', "schedule"),
    ]:
        (tmp_path / "onetoone.toml").write_text(base + extra, encoding="utf-8")
        with pytest.raises(ConfigError, match=re.escape(says)):
            Workspace(tmp_path)


def test_the_call_centre_answer_briefs_the_employee(server: Server) -> None:
    with server.client("admin") as client:
        decision = client.post("/v1/decisions", json={
            "customer": {"email": "briefing@exemple.fr"}, "channel": "call_centre",
            "context": {"reason": "late delivery"}}).json()
        briefing = decision["briefing"]
        assert set(briefing) >= {"customer", "value_tier", "defection_risk",
                                 "defection_reasons", "needs_segment", "why", "history"}
        assert [w["action"] for w in briefing["why"]] == [a["action"]
                                                          for a in decision["actions"]]
        web = client.post("/v1/decisions", json={
            "customer": {"email": "briefing@exemple.fr"}, "channel": "web"}).json()
        assert "briefing" not in web  # the hot path stays small
        query = ("SELECT details FROM audit_log WHERE action = 'customer.read' AND "
                 f"customer_id = '{decision['customer_id']}'")
        for _ in range(100):  # reads are audited with the next group commit
            audit = client.post("/v1/sql", json={"query": query}).json()["rows"]
            if audit:
                break
            time.sleep(0.05)
        assert any("briefing:call_centre" in row[0] for row in audit)


TRIGGER = """
[triggers.complaint]
event = "complaint"
delay_minutes = 0
"""
CARE = {"channel": "email", "actions": ["retention_offer"], "control_share": 0.0,
        "schedule": "trigger:complaint"}
TRIGGERED = TRIGGER + """
[campaigns.care]
channel = "email"
actions = ["retention_offer"]
control_share = 0.0
schedule = "trigger:complaint"
"""


def _event(event_id: str, email: str, kind: str) -> dict[str, object]:
    return {"event_id": event_id, "occurred_at": "2026-12-07T10:00:00+01:00",
            "customer": {"email": email}, "channel": "service", "type": kind}


@pytest.mark.parametrize("declared", ["in the file", "through the API"])
def test_a_complaint_triggers_one_message_per_event(tmp_path: Path, declared: str) -> None:
    api = declared == "through the API"
    server = Server(tmp_path, make_workspace(tmp_path, CONFIG + (TRIGGER if api
                                                                 else TRIGGERED))).start()
    outbox = tmp_path / "outbox" / "email"

    def mails() -> list[Path]:
        return sorted(outbox.rglob("*.eml")) if outbox.exists() else []

    def wait_for(count: int) -> list[Path]:
        for _ in range(300):
            if len(mails()) >= count:
                return mails()
            time.sleep(0.1)
        return mails()

    try:
        with server.client("admin") as client:
            if api:  # a campaign created while the server runs reacts as the file's
                made = client.post("/v1/campaigns", json={"name": "care", **CARE})
                assert made.status_code == 201, made.text
            created = client.post("/v1/events", json={"events": [
                _event("signup-1", "lea@exemple.fr", "signup")]})
            assert created.status_code == 200, created.text
            lea = client.get("/v1/customers", params={
                "identifier": "email:lea@exemple.fr"}).json()["customer_id"]
            assert client.put(f"/v1/customers/{lea}/consents", json={
                "channel": "email", "purpose": "marketing", "granted": True}).status_code == 200
            client.post("/v1/events", json={"events": [
                _event("complaint-1", "lea@exemple.fr", "complaint")]})
            first = wait_for(1)
            assert len(first) == 1 and "care_complaint-complaint-1" in str(first[0])
            # the same event again is one event; another complaint is another occurrence
            client.post("/v1/events", json={"events": [
                _event("complaint-1", "lea@exemple.fr", "complaint")]})
            client.post("/v1/events", json={"events": [
                _event("complaint-2", "lea@exemple.fr", "complaint")]})
            assert len(wait_for(2)) == 2
            time.sleep(6)  # another look of the server's triggers: nothing new
            assert len(mails()) == 2
            status = client.get("/v1/campaigns/care/status").json()
            assert status["sent"] == 2 and len(status["runs"]) == 2
    finally:
        server.stop()


RELEASE = """
[[contact_policy.caps]]
channel = "email"
max = 1
days = 7

[channels.broken]
type = "webhook"
url = "http://127.0.0.1:9/hook"
secret_env = "ONETOONE_TEST_HOOK_SECRET"
max_attempts = 1
backoff_seconds = 0

[channels.files]
type = "outbox"

[campaigns.first]
channel = "email"
actions = ["retention_offer"]
control_share = 0.0
deliver_with = "broken"

[campaigns.second]
channel = "email"
actions = ["retention_offer"]
control_share = 0.0
deliver_with = "files"
"""


def test_a_message_that_failed_for_good_gives_its_contact_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONETOONE_TEST_HOOK_SECRET", "s3cret")
    (tmp_path / "crm.csv").write_text(_crm(), encoding="utf-8")
    (tmp_path / "consents.csv").write_text(_consents(), encoding="utf-8")
    make_workspace(tmp_path, CONFIG + SOURCES + RELEASE)
    with Workspace(tmp_path) as ws:
        ws.ingest()
        ws.identify()
        first = ws.campaigns.run("first")  # nobody reached: the hook's port is closed
        assert first["to_send"] == CUSTOMERS - 5 and first["delivery"]["sent"] == 0
        assert first["delivery"]["failed"] == CUSTOMERS - 5
        second = ws.campaigns.run("second")  # the cap of 1 a week is free again
        assert second["delivery"]["sent"] == CUSTOMERS - 5
    with Workspace(tmp_path) as ws:  # read again from the tables: the same count
        preview = ws.campaigns.preview("first")
        assert preview["to_send"] == 0
        assert preview["not_sent"]["cap email 1 per 7 days"] == CUSTOMERS - 5


def test_a_hard_bounce_keeps_the_address_from_being_written_to_again(tmp_path: Path) -> None:
    controller_module = pytest.importorskip("aiosmtpd.controller")
    from _service_server import free_port

    class Relay:  # a real SMTP server that refuses one address for good
        async def handle_RCPT(self, server, session, envelope, address,
                              rcpt_options):
            if address.startswith("client3@"):
                return "550 5.1.1 User unknown"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    port = free_port()
    relay = controller_module.Controller(Relay(), hostname="127.0.0.1", port=port)
    relay.start()
    try:
        (tmp_path / "crm.csv").write_text(_crm(), encoding="utf-8")
        (tmp_path / "consents.csv").write_text(_consents(), encoding="utf-8")
        sources = SOURCES + (
                    f'\n[channels.relay]\ntype = "smtp"\nhost = "127.0.0.1"\nport = {port}\n'
                    'security = "none"\nfrom = "Maison <bonjour@maison.example>"\n'
                    '\n[campaigns.autumn]\nchannel = "email"\nactions = ["retention_offer"]\n'
                    'control_share = 0.0\ndeliver_with = "relay"\n')
        sources = sources.replace("control_share = 0.2\n",
                                  'control_share = 0.0\ndeliver_with = "relay"\n')
        make_workspace(tmp_path, CONFIG + sources)
        with Workspace(tmp_path) as ws:
            ws.ingest()
            ws.identify()
            spring = ws.campaigns.run("spring")
            assert spring["delivery"]["sent"] == CUSTOMERS - 6
            assert ws.store.fetchall("SELECT status, count(*) FROM deliveries GROUP BY ALL "
                                     "ORDER BY 1") == [("bounced", 1), ("sent", CUSTOMERS - 6)]
            ws.decisions.writer.sync()
            assert ws.store.fetchall("SELECT i.decision_id FROM interactions i JOIN "
                                     "deliveries d USING (decision_id) WHERE i.type = "
                                     "'bounce' AND d.status = 'bounced'") != []
            autumn = ws.campaigns.preview("autumn")
            assert autumn["not_sent"]["address bounced"] == 1
        with Workspace(tmp_path) as ws:  # read again from the tables
            assert ws.campaigns.preview("autumn")["not_sent"]["address bounced"] == 1
    finally:
        relay.stop()
