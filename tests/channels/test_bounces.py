"""Bounces that come back after the SMTP session: a real relay (aiosmtpd) accepts a campaign's
messages, then, as a mail server would, delivery status notifications (RFC 3464) for some of
them land in a Maildir or an mbox, or are posted to the server; ``onetoone campaign bounces``,
the scheduled job and the route apply them once: hard bounces suppress the address for the
next campaign, soft ones only note the error, unmatched reports and other messages are left
alone."""

from __future__ import annotations

import email
import email.policy
import mailbox
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from onetoone import Workspace
from onetoone.channels.base import Message
from onetoone.channels.bounces import MAX_MESSAGE_BYTES, apply_message
from onetoone.channels.mail import build_email
from onetoone.channels.smtp import parse_dsn, verp_delivery_id
from onetoone.cli import app
from onetoone.config import parse_config
from onetoone.errors import ConfigError

pytest.importorskip("aiosmtpd")

AUTO_REPLY = (b"Return-Path: <client5@exemple.fr>\r\nFrom: Client5 <client5@exemple.fr>\r\n"
              b"To: bonjour@maison.example\r\nSubject: Absence\r\n"
              b"Auto-Submitted: auto-replied\r\n\r\nJe suis absente jusqu'au 4 janvier.\r\n")


def _cli(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "--workspace", str(root)])
    return result.exit_code, result.output


def _counts(output: str) -> dict[str, int]:
    """The counts of the ``campaign bounces`` table."""
    labels = {"messages read": "messages", "bounced (hard)": "bounced",
              "soft (delayed, 4.x.x)": "soft", "unmatched": "unmatched",
              "applied before": "already", "replies of customers": "replies",
              "other messages": "other"}
    found = {}
    for label, key in labels.items():
        match = re.search(re.escape(label) + r"\W+(\d+)", output)
        assert match, output
        found[key] = int(match.group(1))
    return found


def _deliveries(root: Path) -> dict[str, tuple[Any, ...]]:
    with duckdb.connect(str(root / "onetoone.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT delivery_id, status, error, updated_at, customer_id "
                           "FROM deliveries").fetchall()
    return {r[0]: r[1:] for r in rows}


def _sql(root: Path, query: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(root / "onetoone.duckdb"), read_only=True) as con:
        return con.execute(query).fetchall()


def _sent(relay: Any) -> dict[str, tuple[str, str, bytes]]:
    """recipient -> (delivery id, envelope sender, bytes) of what the relay accepted."""
    out = {}
    for mail_from, rcpt_tos, raw in relay.handler.received:
        head = email.message_from_bytes(raw, policy=email.policy.compat32)
        out[rcpt_tos[0]] = (str(head["X-Onetoone-Delivery"]), mail_from, raw)
    return out


def _verp(delivery_id: str) -> str:
    return f"bounces+{delivery_id}@maison.example"


def _run_spring(root: Path, relay: Any) -> dict[str, tuple[str, str, bytes]]:
    code, output = _cli(root, "campaign", "run", "spring")
    assert code == 0, output
    sent = _sent(relay)
    assert len(sent) == _sql(root, "SELECT count(*) FROM customers")[0][0] > 4
    return sent


def _never_sent() -> bytes:
    """A message whose delivery id this workspace never sent."""
    message = Message("m" + "0" * 23, "d0", "c0", "spring:once", "relay", "retention_offer",
                      "client9@exemple.fr", {"subject": "x", "text": "y"}, {})
    return build_email(message, "Maison <bonjour@maison.example>").as_bytes(
        policy=email.policy.SMTP)


def test_a_maildir_of_bounces_is_applied_once(relay_workspace, smtp_relay, make_dsn) -> None:
    root, _ = relay_workspace
    sent = _run_spring(root, smtp_relay)
    for delivery_id, mail_from, _raw in sent.values():  # one return path per message
        assert mail_from == _verp(delivery_id)
    gone, late, full, slow = (sent[f"client{i}@exemple.fr"] for i in (1, 3, 2, 4))
    with duckdb.connect(str(root / "onetoone.duckdb")) as con:  # reported delivered meanwhile
        con.execute("UPDATE deliveries SET status = 'delivered' WHERE delivery_id = ?",
                    [late[0]])
    box = mailbox.Maildir(root / "bounces", create=True)
    hard = make_dsn(gone[2], to=_verp(gone[0]), delivered_to=_verp(gone[0]))
    for raw in [
        hard,
        make_dsn(late[2], to=_verp(late[0]), returned="message"),
        make_dsn(full[2], to=_verp(full[0]), status="4.2.2",
                 diagnostic="smtp; 452 4.2.2 <client2@exemple.fr>: Mailbox full"),
        make_dsn(slow[2], to=_verp(slow[0]), action="delayed", status="4.4.1",
                 diagnostic="X-Postfix; connect to mail.exemple.fr[203.0.113.5]:25: "
                            "Connection timed out"),
        make_dsn(_never_sent(), to="bonjour@maison.example"),
        make_dsn(gone[2], to="bonjour@maison.example", returned=None),  # no id at all
        AUTO_REPLY,
    ]:
        box.add(raw)

    code, output = _cli(root, "campaign", "bounces")
    assert code == 0, output
    assert _counts(output) == {"messages": 7, "bounced": 2, "soft": 2, "unmatched": 2,
                               "already": 0, "replies": 0, "other": 1}
    rows = _deliveries(root)
    for hit in (gone, late):  # a late report turns a delivered message bounced too
        status, error, *_ = rows[hit[0]]
        assert status == "bounced" and error.startswith("bounced: 5.1.1 550 5.1.1")
        assert "User unknown" in error and "@" not in error
    assert rows[full[0]][:2] == ("sent", "soft bounce: 4.2.2 452 4.2.2 <address>: Mailbox full")
    assert rows[slow[0]][0] == "sent" and rows[slow[0]][1].startswith("delayed: 4.4.1 ")
    others = [r for d, r in rows.items() if d not in {gone[0], late[0], full[0], slow[0]}]
    assert [r[:2] for r in others] == [("sent", None)] * (len(sent) - 4)
    # applied reports are seen in cur; the unmatched ones and the auto-reply stay in new
    assert len(os.listdir(root / "bounces" / "new")) == 3
    applied = os.listdir(root / "bounces" / "cur")
    assert len(applied) == 4 and all(name.endswith(":2,S") for name in applied)
    # a bounce is no answer of the customer: nothing learned, no response; but it is in
    # the customer's timeline, once a decision
    assert _sql(root, "SELECT count(*) FROM responses") == [(0,)]
    assert _sql(root, "SELECT count(*), count(DISTINCT decision_id) FROM interactions "
                      "WHERE type = 'bounce'") == [(2, 2)]

    box.add(hard)  # the same report delivered twice
    code, output = _cli(root, "campaign", "bounces")
    assert code == 0, output
    assert _counts(output) == {"messages": 4, "bounced": 0, "soft": 0, "unmatched": 2,
                               "already": 1, "replies": 0, "other": 1}
    assert _deliveries(root) == rows  # nothing changed, not even a time
    audit = _sql(root, "SELECT actor, details FROM audit_log WHERE action = "
                       "'campaign.bounces' ORDER BY \"at\"")
    assert len(audit) == 2 and audit[0][0].startswith("cli:")
    assert '"bounced": 2' in audit[0][1] and "@" not in audit[0][1] + audit[1][1]

    # the next campaign writes to neither bounced address, and says why
    smtp_relay.handler.received.clear()
    code, output = _cli(root, "campaign", "run", "autumn")
    assert code == 0, output
    assert re.search(r"not sent: address bounced\W+2\b", output), output
    assert sorted(_sent(smtp_relay)) == sorted(
        a for a in sent if a not in ("client1@exemple.fr", "client3@exemple.fr"))


def test_verp_names_the_message_when_the_report_returns_nothing_of_it_and_mbox_is_read(
        relay_workspace, smtp_relay, make_dsn, tmp_path) -> None:
    root, _ = relay_workspace
    sent = _run_spring(root, smtp_relay)
    target, other = sent["client2@exemple.fr"], sent["client5@exemple.fr"]
    bare = make_dsn(target[2], to=_verp(target[0]), returned=None)
    assert parse_dsn(bare)[0][0] is None  # only the address it was sent to names it
    assert verp_delivery_id(bare, "bounces+{delivery_id}@maison.example") == target[0]
    mbox = tmp_path / "elsewhere" / "bounces.mbox"  # outside the workspace, read once
    mbox.parent.mkdir()
    box = mailbox.mbox(mbox)
    box.add(bare)
    box.add(AUTO_REPLY)
    box.flush()
    box.close()
    before = mbox.read_bytes()

    code, output = _cli(root, "campaign", "bounces", "--mailbox", str(mbox),
                        "--channel", "relay")
    assert code == 0, output
    assert _counts(output) == {"messages": 2, "bounced": 1, "soft": 0, "unmatched": 0,
                               "already": 0, "replies": 0, "other": 1}
    rows = _deliveries(root)
    assert rows[target[0]][0] == "bounced"
    code, output = _cli(root, "campaign", "bounces", "--mailbox", str(mbox))
    assert code == 0, output  # the only smtp channel is taken
    assert _counts(output)["bounced"] == 0 and _counts(output)["already"] == 1
    assert _deliveries(root) == rows and mbox.read_bytes() == before  # the mbox is only read

    # without VERP, the same kind of report names no message
    with Workspace(root) as ws:
        unnamed = make_dsn(other[2], to=_verp(other[0]), returned=None)
        assert apply_message(ws.decisions, unnamed, None).unmatched == 1
        assert ws.store.fetchall("SELECT status FROM deliveries WHERE delivery_id = ?",
                                 [other[0]]) == [("sent",)]


def _test_client(root: Path) -> Any:
    with warnings.catch_warnings():  # the test client's own deprecation notice
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient

    from onetoone.api.app import build_app

    application = build_app(root)
    return application, TestClient(application)


def test_the_route_takes_one_bounce_with_an_events_key(relay_workspace, smtp_relay,
                                                       make_dsn) -> None:
    root, keys = relay_workspace
    sent = _run_spring(root, smtp_relay)
    target = sent["client4@exemple.fr"]
    dsn = make_dsn(target[2], to=_verp(target[0]))
    url = "/v1/channels/relay/bounces"
    raw_type = {"Content-Type": "message/rfc822"}

    def key(name: str) -> dict[str, str]:
        return {**raw_type, "Authorization": f"Bearer {keys[name]}"}

    admin = {"Authorization": f"Bearer {keys['admin']}"}
    application, client = _test_client(root)
    with client:
        assert client.post(url, content=dsn, headers=raw_type).status_code == 401
        assert client.post(url, content=dsn, headers={
            **raw_type, "Authorization": "Bearer not-a-key"}).status_code == 401
        assert client.post(url, content=dsn, headers=key("reader")).status_code == 403
        too_large = client.post(url, content=dsn + b"x" * MAX_MESSAGE_BYTES,
                                headers=key("events"))
        assert too_large.status_code == 413
        assert f"at most {MAX_MESSAGE_BYTES} bytes" in too_large.json()["message"]
        assert client.post("/v1/channels/nope/bounces", content=dsn,
                           headers=key("events")).status_code == 404
        assert client.post(url, content=b"", headers=key("events")).status_code == 422
        store = application.state.workspace.store  # nothing refused was applied
        assert store.fetchall("SELECT status FROM deliveries WHERE delivery_id = ?",
                              [target[0]]) == [("sent",)]

        done = client.post(url, content=dsn, headers=key("events"))
        assert done.status_code == 200, done.text
        assert done.json() == {"messages": 1, "bounced": 1, "soft": 0, "unmatched": 0,
                               "already": 0, "replies": 0, "other": 0}
        again = client.post(url, content=dsn, headers=key("events")).json()
        assert again["bounced"] == 0 and again["already"] == 1
        assert client.post(url, content=AUTO_REPLY, headers=key("events")).json()["other"] == 1
        # the running service knows at once: no message to that address any more
        for address, given in (("client4@exemple.fr", False), ("client5@exemple.fr", True)):
            decision = client.post("/v1/decisions", headers=admin, json={
                "customer": {"email": address}, "channel": "email"}).json()
            assert bool(decision["actions"]) is given, decision
        status = client.get("/v1/campaigns/spring/status", headers=admin).json()
        assert status["bounced"] == 1
    rows = _deliveries(root)
    assert rows[target[0]][:2] == ("bounced", "bounced: 5.1.1 550 5.1.1 <address>: Recipient "
                                   "address rejected: User unknown in virtual mailbox table")


def _until_ended(client: Any, job_id: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] not in ("queued", "running"):
            return dict(job)
        time.sleep(0.1)
    raise AssertionError("the job did not end")


def test_the_schedule_and_the_cli_run_bounces_inside_the_server(
        relay_workspace, smtp_relay, make_dsn) -> None:
    from _service_server import Server

    root, keys = relay_workspace
    sent = _run_spring(root, smtp_relay)
    first, second = sent["client1@exemple.fr"], sent["client6@exemple.fr"]
    box = mailbox.Maildir(root / "bounces", create=True)
    box.add(make_dsn(first[2], to=_verp(first[0])))
    admin = {"Authorization": f"Bearer {keys['admin']}"}

    application, client = _test_client(root)
    with client:
        scheduler = application.state.scheduler
        due = scheduler.next_runs()["bounces"]
        assert due.minute % 15 == 0
        (job,) = scheduler.tick(due)
        assert job.step == "bounces"
        ended = _until_ended(client, job.job_id, admin)
        assert ended["status"] == "succeeded", ended
        assert ended["result"]["bounced"] == 1
    assert _deliveries(root)[first[0]][0] == "bounced"

    box.add(make_dsn(second[2], to=_verp(second[0]), returned=None))
    server = Server(root, keys).start()
    try:
        code, output = _cli(root, "campaign", "bounces")
        assert code == 0, output
        assert _counts(output)["bounced"] == 1
        with server.client("admin") as web:
            jobs = [j for j in web.get("/v1/jobs").json() if j["step"] == "bounces"]
            assert len(jobs) == 1 and jobs[0]["result"]["bounced"] == 1
            assert jobs[0]["args"]["actor"].startswith("key:")
            outside = web.post("/v1/jobs", json={"step": "bounces", "args": {
                "mailbox": "/etc/passwd", "channel": "relay"}}).json()
            for _ in range(300):
                outside = web.get(f"/v1/jobs/{outside['job_id']}").json()
                if outside["status"] not in ("queued", "running"):
                    break
                time.sleep(0.1)
            assert outside["status"] == "failed" and "inside its workspace" in outside["error"]
    finally:
        server.stop()
    assert _deliveries(root)[second[0]][0] == "bounced"
    audit = _sql(root, "SELECT actor FROM audit_log WHERE action = 'campaign.bounces' "
                       "ORDER BY \"at\"")
    assert [a for (a,) in audit] == ["job:bounces", jobs[0]["args"]["actor"]]


def test_mistakes_are_one_sentence(relay_workspace) -> None:
    root, _ = relay_workspace
    code, output = _cli(root, "campaign", "bounces")  # the Maildir does not exist yet
    assert code == 1 and "Traceback" not in output
    assert f"The bounce mailbox {root / 'bounces'} does not exist." in output
    assert "bounce_mailbox" in output
    (root / "bounces").mkdir()
    code, output = _cli(root, "campaign", "bounces")
    assert code == 1 and "is not a Maildir (it has no cur or new or tmp folder)" in output
    code, output = _cli(root, "campaign", "bounces", "--channel", "nope")
    assert code == 1 and "No channel 'nope' of type smtp." in output


def test_an_unreadable_mailbox_is_one_sentence(relay_workspace, tmp_path) -> None:
    root, _ = relay_workspace
    unreadable = tmp_path / "locked.mbox"
    unreadable.write_bytes(AUTO_REPLY)
    unreadable.chmod(0)
    try:
        if os.access(unreadable, os.R_OK):  # root reads everything
            pytest.skip("the tests run as a user who reads every file")
        code, output = _cli(root, "campaign", "bounces", "--mailbox", str(unreadable))
        assert code == 1 and "cannot be read: permission denied" in output
    finally:
        unreadable.chmod(0o600)


@pytest.mark.parametrize(("keys", "says"), [
    ('return_path = "bounces"\n', "return_path must be one address"),
    ('return_path = "a@b@c.example"\n', "return_path must be one address"),
    ('return_path = "b+{delivery_id}@{delivery_id}.example"\n',
     "return_path takes {delivery_id} once at most, before the @"),
    ('return_path = "{delivery_id}.{delivery_id}@m.example"\n',
     "return_path takes {delivery_id} once at most"),
    ('return_path = "b+{id}@m.example"\n', "return_path knows one placeholder"),
    (f'return_path = "{"b" * 41}{{delivery_id}}@m.example"\n', "exceeds 64 characters"),
    ('bounce_mailbox = " "\n', "bounce_mailbox must be the path"),
])
def test_the_keys_are_checked_at_load(keys: str, says: str) -> None:
    base = ('[channels.relay]\ntype = "smtp"\nhost = "127.0.0.1"\n'
            'from = "Maison <bonjour@maison.example>"\n')
    assert parse_config(base + 'return_path = "b+{delivery_id}@m.example"\n'
                        'bounce_mailbox = "/var/mail/b"\n').channels["relay"].return_path \
        == "b+{delivery_id}@m.example"
    with pytest.raises(ConfigError) as caught:
        parse_config(base + keys)
    assert says in caught.value.user_message()
    with pytest.raises(ConfigError, match="keys of a channel of type 'smtp'"):
        parse_config('[channels.hook]\ntype = "webhook"\nurl = "https://h.example"\n'
                     'secret_env = "X"\nbounce_mailbox = "b"\n')


def _reply(original: bytes, words: str, *, automatic: bool = False) -> bytes:
    """A customer's answer to ``original``, quoting it as mail programs do."""
    head = email.message_from_bytes(original, policy=email.policy.compat32)
    quoted = "\r\n".join("> " + line for line in ["Bonjour,", "Votre code : FIDELE20"])
    return (f"From: {head['To']}\r\nTo: {head['From']}\r\nSubject: Re: {head['Subject']}\r\n"
            f"Message-ID: <r{abs(hash(words))}@exemple.fr>\r\n"
            f"In-Reply-To: {head['Message-ID']}\r\nReferences: {head['Message-ID']}\r\n"
            + ("Auto-Submitted: auto-replied\r\n" if automatic else "")
            + "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{words}\r\n\r\nLe 8 déc. 2026 à 09:12, Maison a écrit :\r\n{quoted}\r\n"
            ).encode()


def test_a_customers_reply_is_heard_once(relay_workspace, smtp_relay) -> None:
    root, _ = relay_workspace
    sent = _run_spring(root, smtp_relay)
    (delivery, _, original), other = sent["client1@exemple.fr"], sent["client2@exemple.fr"]
    box = mailbox.Maildir(root / "bounces", create=True)
    box.add(_reply(original, "Merci, mais je préfère être appelée le soir."))
    box.add(_reply(other[2], "Je suis absente.", automatic=True))  # an automatic answer
    box.add(_reply(_never_sent(), "Bonjour ?"))  # to a message this workspace never sent
    code, output = _cli(root, "campaign", "bounces")
    assert code == 0, output
    assert _counts(output) == {"messages": 3, "bounced": 0, "soft": 0, "unmatched": 0,
                               "already": 0, "replies": 1, "other": 2}
    decision = _sql(root, f"SELECT decision_id FROM deliveries WHERE delivery_id = "
                          f"'{delivery}'")[0][0]
    assert _sql(root, "SELECT type, decision_id, text FROM interactions "
                      "WHERE type = 'reply'") == [
        ("reply", decision, "Merci, mais je préfère être appelée le soir.")]
    assert _sql(root, "SELECT decision_id, response FROM responses") == [
        (decision, "impression")]  # read, and nothing learned
    code, output = _cli(root, "campaign", "bounces")  # seen now: not read again
    assert _counts(output)["replies"] == 0 and _counts(output)["other"] == 2
    assert _sql(root, "SELECT count(*) FROM interactions WHERE type = 'reply'") == [(1,)]
