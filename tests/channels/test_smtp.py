"""The SMTP channel against a real SMTP server (aiosmtpd) started here: plain, STARTTLS and
implicit TLS with a certificate made by ``openssl`` for a throwaway CA trusted through
``SSL_CERT_FILE``, login, refused recipients, connection reuse, the delivery loop while the
server is down, and delivery status notifications."""

from __future__ import annotations

import email
import email.policy
import logging
import shutil
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiosmtpd")

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from onetoone.channels import ChannelConfig, ChannelError, Deliverer, Limits, Message
from onetoone.channels.mail import build_email
from onetoone.channels.smtp import SmtpChannel, parse_dsn

USER, PASSWORD, PASSWORD_ENV = "relay-user", "s3cret-Pa55", "ONETOONE_TEST_SMTP_PASSWORD"
SENDER = "Maison Dupont <bonjour@maison-dupont.fr>"


class Recorder:
    """An aiosmtpd handler: keeps what it receives, refuses the recipients of ``refuse``."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes, Any]] = []
        self.received_options: list[list[str]] = []
        self.refuse: dict[str, str] = {}
        self.queue_ids = True
        self.ehlo = 0
        self.sessions: list[Any] = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.ehlo += 1
        session.host_name = hostname
        if not any(s is session for s in self.sessions):
            self.sessions.append(session)
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos),
                              envelope.original_content or envelope.content, session))
        self.received_options.append(list(envelope.mail_options))
        if not self.queue_ids:
            return "250 OK"
        return f"250 2.0.0 Ok: queued as Q{len(self.received):05d}"


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode() \
        and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)  # aiosmtpd answers 535 when refused


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    handler: Recorder
    port: int
    controller: Controller

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def start_server() -> Iterator[Callable[..., Server]]:
    """Start an aiosmtpd server on 127.0.0.1 (``tls``: STARTTLS offered, login required;
    ``implicit``: TLS from the first byte); every one is stopped at the end."""
    started: list[Server] = []

    def start(*, tls: ssl.SSLContext | None = None, implicit: ssl.SSLContext | None = None,
              port: int | None = None, handler: Recorder | None = None) -> Server:
        handler = handler or Recorder()
        port = port or _free_port()
        kwargs: dict[str, Any] = {}
        if tls is not None:
            kwargs = {"tls_context": tls, "auth_required": True, "auth_require_tls": True,
                      "authenticator": _authenticator}
        elif implicit is not None:
            # aiosmtpd only counts STARTTLS as TLS: its AUTH is offered here by saying so
            kwargs = {"ssl_context": implicit, "auth_required": True, "auth_require_tls": False,
                      "authenticator": _authenticator}
        controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        server = Server(handler, port, controller)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.controller._thread is not None:
            server.stop()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway CA and a server certificate it signed, for 127.0.0.1 and localhost."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is absent")
    folder = tmp_path_factory.mktemp("tls")
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, csr = folder / "server.pem", folder / "server.key", folder / "server.csr"
    ext = folder / "server.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for command in (
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=onetoone test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", ext],
    ):
        subprocess.run(["openssl", *map(str, command)], check=True, capture_output=True)
    return {"ca": ca, "cert": cert, "key": key}


def _server_context(certificates: dict[str, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates["cert"], certificates["key"])
    return context


@pytest.fixture
def trust_ca(certificates: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates["ca"]))
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


def _config(port: int, security: str = "none", *, login: bool = False,
            **more: Any) -> ChannelConfig:
    values: dict[str, Any] = {"type": "smtp", "host": "127.0.0.1", "port": port,
                              "security": security, "from": SENDER, "timeout_seconds": 10}
    if login:
        values |= {"username": USER, "password_env": PASSWORD_ENV}
    return ChannelConfig.model_validate(values | more)


def _message(i: int, to: str | None = None, **fields: Any) -> Message:
    return Message(
        delivery_id=f"d-{i:04d}", decision_id=f"dec-{i}", customer_id=f"c-{i}",
        campaign="summer", channel="email", action_id="new_collection",
        to=to or f"client{i}@example.com",
        fields={"subject": "Vos économies d'été", "text": f"Bonjour {i},\n\nÀ bientôt.",
                **fields},
        links={"unsubscribe": f"https://shop.example/u/{i}", "open": f"https://shop.example/o/{i}"})


@pytest.fixture
def channels() -> Iterator[Callable[[str, ChannelConfig], SmtpChannel]]:
    opened: list[SmtpChannel] = []

    def make(name: str, config: ChannelConfig) -> SmtpChannel:
        channel = SmtpChannel(name, config)
        opened.append(channel)
        return channel

    yield make
    for channel in opened:
        channel.close()


def _parsed(raw: bytes) -> email.message.EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


def test_multipart_message_with_unsubscribe_headers(start_server, channels):
    server = start_server()
    channel = channels("email", _config(server.port))
    message = _message(1, html="<p>Bonjour <b>1</b></p>")
    [outcome] = channel.send([message])
    assert outcome.status == "sent" and outcome.provider_id == "Q00001"
    [(mail_from, rcpt_tos, raw, _)] = server.handler.received
    assert mail_from == "bonjour@maison-dupont.fr" and rcpt_tos == ["client1@example.com"]
    mail = _parsed(raw)
    assert mail["Subject"] == "Vos économies d'été"
    assert mail["From"] == SENDER and mail["To"] == "client1@example.com"
    assert mail["List-Unsubscribe"] == "<https://shop.example/u/1>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["X-Onetoone-Delivery"] == "d-0001"
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    assert "À bientôt." in text.get_content()
    assert "https://shop.example/u/1" in text.get_content()
    assert "<b>1</b>" in html.get_content() and "https://shop.example/o/1" in html.get_content()
    assert raw.partition(b"\r\n\r\n")[0].isascii()  # headers RFC 2047 encoded
    # 8-bit content is announced (BODY=8BITMIME), 7-bit content needs nothing
    assert server.handler.received_options == [[] if raw.isascii() else ["BODY=8BITMIME"]]


def test_starttls_and_login(start_server, channels, certificates, trust_ca):
    server = start_server(tls=_server_context(certificates))
    channel = channels("email", _config(server.port, "starttls", login=True))
    outcomes = channel.send([_message(1), _message(2)])
    assert [o.status for o in outcomes] == ["sent", "sent"]
    assert len(server.handler.received) == 2
    session = server.handler.received[0][3]
    assert session.authenticated and session.ssl is not None  # logged in, over TLS


def test_starttls_refuses_a_server_without_it(start_server, channels, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    server = start_server()  # plain SMTP, no STARTTLS
    channel = channels("email", _config(server.port, "starttls", login=True))
    with pytest.raises(ChannelError) as caught:
        channel.send([_message(1)])
    assert caught.value.permanent and "STARTTLS" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    # through the delivery loop: failed for good at once, nothing sent in clear
    rows: list[dict[str, Any]] = []
    tally = Deliverer(channel, Limits(max_attempts=5), rows.extend,
                      sleep=lambda s: None).deliver([_message(2)])
    assert tally.failed == 1 and tally.retried == 0
    assert server.handler.received == []


def test_untrusted_certificate_and_wrong_password(start_server, channels, certificates,
                                                  monkeypatch):
    server = start_server(tls=_server_context(certificates))
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    channel = channels("email", _config(server.port, "starttls", login=True))
    with pytest.raises(ChannelError) as caught:  # the system store does not know this CA
        channel.send([_message(1)])
    assert caught.value.permanent and "SSL_CERT_FILE" in str(caught.value)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates["ca"]))
    with pytest.raises(ChannelError) as caught:
        channel.send([_message(1)])
    assert caught.value.permanent and "login" in str(caught.value)
    assert "wrong" not in str(caught.value)
    assert server.handler.received == []


def test_missing_password_variable(start_server, channels, monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    server = start_server()
    channel = channels("email", _config(server.port, "none", login=True))
    with pytest.raises(ChannelError) as caught:
        channel.send([_message(1)])
    assert caught.value.permanent and PASSWORD_ENV in str(caught.value)
    assert server.handler.ehlo == 0  # found before connecting


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_implicit_tls(start_server, channels, certificates, trust_ca):
    server = start_server(implicit=_server_context(certificates))
    channel = channels("email", _config(server.port, "ssl", login=True))
    [outcome] = channel.send([_message(1)])
    assert outcome.status == "sent"
    [(_, rcpt_tos, _, session)] = server.handler.received
    assert rcpt_tos == ["client1@example.com"] and session.authenticated


def test_refused_recipients(start_server, channels, caplog):
    server = start_server()
    server.handler.refuse = {
        "gone@example.com": "550 5.1.1 <gone@example.com>: Recipient address rejected: "
                            "User unknown",
        "full@example.com": "451 4.2.2 <full@example.com>: mailbox full, try again later",
    }
    channel = channels("email", _config(server.port))
    batch = [_message(1), _message(2, "gone@example.com"), _message(3, "full@example.com"),
             _message(4)]
    with caplog.at_level(logging.DEBUG, logger="onetoone"):
        outcomes = {o.delivery_id: o for o in channel.send(batch)}
    assert outcomes["d-0001"].status == outcomes["d-0004"].status == "sent"
    bounced, deferred = outcomes["d-0002"], outcomes["d-0003"]
    assert bounced.status == "failed" and bounced.error is not None
    assert bounced.error.startswith("bounced: 550 5.1.1") and "User unknown" in bounced.error
    assert deferred.status == "retry" and deferred.error is not None
    assert deferred.error.startswith("deferred: 451")
    for outcome in outcomes.values():
        assert "@" not in (outcome.error or "")
    assert [r[1] for r in server.handler.received] == [["client1@example.com"],
                                                        ["client4@example.com"]]
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("onetoone")]
    assert ours and not any("@" in line for line in ours)
    # in the delivery loop: the 550 fails at once (permanent), the 451 until max_attempts
    rows: list[dict[str, Any]] = []
    sleeps: list[float] = []
    tally = Deliverer(channel, Limits(max_attempts=3, backoff_seconds=2), rows.extend,
                      sleep=sleeps.append).deliver(batch[1:3])
    assert tally.failed == 2 and tally.retried == 2
    assert tally.errors == {"bounced": 1, "deferred": 1}
    last = {r["delivery_id"]: r for r in rows}
    assert last["d-0002"]["attempts"] == 1 and last["d-0003"]["attempts"] == 3
    assert 2 in sleeps and 4 in sleeps  # the backoff, doubled
    assert server.handler.ehlo == 1  # the connection survived the refusals


def test_connection_reuse(start_server, channels):
    server = start_server()
    channel = channels("email", _config(server.port))
    outcomes = channel.send([_message(i) for i in range(50)])
    assert [o.status for o in outcomes] == ["sent"] * 50
    assert len({o.provider_id for o in outcomes}) == 50
    server.handler.queue_ids = False  # a reply without a queue id: the Message-ID instead
    outcomes = channel.send([_message(i) for i in range(50, 60)])  # a second batch
    assert [o.status for o in outcomes] == ["sent"] * 10
    assert all(o.provider_id and o.delivery_id in o.provider_id
               and o.provider_id.endswith("@maison-dupont.fr") for o in outcomes)
    assert len(server.handler.received) == 60
    assert server.handler.ehlo == 1 and len(server.handler.sessions) == 1
    assert channel.connections == 1


def test_server_down_then_up(start_server, channels):
    port = _free_port()
    server = start_server(port=port)
    channel = channels("email", _config(port))
    rows: list[dict[str, Any]] = []
    sleeps: list[float] = []
    limits = Limits(rate_per_second=1000, max_attempts=3, backoff_seconds=1)
    batch = [_message(i) for i in range(6)]

    def unsent() -> list[Message]:  # what a caller resumes: the messages not recorded sent
        last = {r["delivery_id"]: r["status"] for r in rows}
        return [m for m in batch if last.get(m.delivery_id) != "sent"]

    first = Deliverer(channel, limits, rows.extend, sleep=sleeps.append).deliver(batch[:2])
    assert first.sent == 2
    server.stop()  # the open connection goes with it
    down = Deliverer(channel, limits, rows.extend, sleep=sleeps.append).deliver(unsent())
    assert down.sent == 0 and down.failed == 4 and down.retried == 8
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 4 and all(r["attempts"] == 3 for r in failed)
    assert all("Connection refused" in r["error"] for r in failed)
    assert [s for s in sleeps if s >= 1] == [1, 2]  # the backoff, never a real wait
    again = start_server(port=port)
    up = Deliverer(channel, limits, rows.extend, sleep=sleeps.append).deliver(unsent())
    assert up.sent == 4 and up.failed == 0
    assert unsent() == []
    delivered = [r[1][0] for r in server.handler.received + again.handler.received]
    assert sorted(delivered) == sorted(m.to for m in batch)  # each message once
    assert channel.connections == 2


BOUNCE = ("smtp; 550 5.1.1 <jean.martin@example.com>: Recipient address\r\n"
          "    rejected: User unknown in virtual mailbox table")


def _dsn(original: bytes, *, action: str = "failed", status: str = "5.1.1",
         diagnostic: str = BOUNCE, headers_only: bool = True) -> bytes:
    """A delivery status notification as Postfix writes one."""
    boundary = "4F2Qx05Jq4z9sWL.1796637600/mx.example.net"
    head, _, _ = original.partition(b"\r\n\r\n")
    returned = (b"Content-Description: Undelivered Message Headers\r\n"
                b"Content-Type: text/rfc822-headers\r\n\r\n" + head + b"\r\n") if headers_only \
        else (b"Content-Description: Undelivered Message\r\n"
              b"Content-Type: message/rfc822\r\n\r\n" + original + b"\r\n")
    return (
        f"Return-Path: <>\r\n"
        f"From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
        f"To: bonjour@maison-dupont.fr\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\n"
        f"Auto-Submitted: auto-replied\r\n"
        f"MIME-Version: 1.0\r\n"
        f"Content-Type: multipart/report; report-type=delivery-status;\r\n"
        f"\tboundary=\"{boundary}\"\r\n\r\n"
        f"This is a MIME-encapsulated message.\r\n\r\n"
        f"--{boundary}\r\n"
        f"Content-Description: Notification\r\n"
        f"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"This is the mail system at host mx.example.net.\r\n\r\n"
        f"I'm sorry to have to inform you that your message could not\r\n"
        f"be delivered to one or more recipients.\r\n\r\n"
        f"--{boundary}\r\n"
        f"Content-Description: Delivery report\r\n"
        f"Content-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example.net\r\n"
        f"X-Postfix-Queue-ID: 4F2Qx05Jq4z9sWL\r\n"
        f"Arrival-Date: Mon,  7 Dec 2026 10:00:00 +0100 (CET)\r\n\r\n"
        f"Final-Recipient: rfc822; jean.martin@example.com\r\n"
        f"Original-Recipient: rfc822;jean.martin@example.com\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        f"Remote-MTA: dns; mail.example.com\r\n"
        f"Diagnostic-Code: {diagnostic}\r\n\r\n"
        f"--{boundary}\r\n"
    ).encode() + returned + f"\r\n--{boundary}--\r\n".encode()


def test_parse_dsn():
    original = build_email(_message(7, "jean.martin@example.com"), SENDER)
    wire = original.as_bytes(policy=email.policy.SMTP)
    [(delivery_id, status, diagnostic)] = parse_dsn(_dsn(wire))
    assert (delivery_id, status) == ("d-0007", "bounced")
    assert diagnostic.startswith("5.1.1") and "User unknown" in diagnostic
    assert "jean.martin" not in diagnostic
    # the whole original returned, known by its Message-ID only
    del original["X-Onetoone-Delivery"]
    wire = original.as_bytes(policy=email.policy.SMTP)
    delayed = _dsn(wire, headers_only=False, action="delayed", status="4.4.1",
                   diagnostic="X-Postfix; connect to mail.example.com[203.0.113.5]:25: "
                              "Connection timed out")
    assert parse_dsn(delayed) == [("d-0007", "delayed", "4.4.1 connect to "
                                   "mail.example.com[203.0.113.5]:25: Connection timed out")]
    unknown = build_email(_message(8), SENDER)  # neither header: no id, still reported
    del unknown["X-Onetoone-Delivery"], unknown["Message-ID"]
    assert parse_dsn(_dsn(unknown.as_bytes(policy=email.policy.SMTP)))[0][:2] == (
        None, "bounced")
    assert parse_dsn(b"From: a\r\nSubject: hello\r\n\r\nnot a report\r\n") == []


def test_international_address(start_server, channels):
    server = start_server()  # aiosmtpd offers SMTPUTF8
    channel = channels("email", _config(server.port))
    [outcome] = channel.send([_message(1, "josé@exemple.fr")])
    assert outcome.status == "sent"
    [(_, rcpt_tos, raw, _)] = server.handler.received
    assert rcpt_tos == ["josé@exemple.fr"] and "josé@exemple.fr" in raw.decode("utf-8")
    assert server.handler.received_options == [["SMTPUTF8", "BODY=8BITMIME"]]
