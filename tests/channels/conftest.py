"""Fixtures of the channel tests: a real SMTP relay (aiosmtpd) that records what it accepts,
a small workspace whose campaigns deliver through it, and delivery status notifications
(RFC 3464) as a mail server writes them."""

from __future__ import annotations

import email
import email.policy
import email.utils
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

import pytest

RELAY_SENDER = "Maison Dupont <bonjour@maison.example>"
VERP = "bounces+{delivery_id}@maison.example"
#: customers of the relay workspace, all with an e-mail consent
RELAY_CUSTOMERS = 6


@dataclass
class RelayHandler:
    """An aiosmtpd handler keeping each message it accepts: (MAIL FROM, RCPT TO, bytes)."""

    received: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos),
                              envelope.original_content or envelope.content))
        return f"250 2.0.0 Ok: queued as R{len(self.received):05d}"


@dataclass
class Relay:
    handler: RelayHandler
    port: int


@pytest.fixture(scope="module")
def smtp_relay() -> Iterator[Relay]:
    """A real SMTP server on 127.0.0.1 accepting every message, for a test module."""
    controller_module = pytest.importorskip("aiosmtpd.controller")
    from _service_server import free_port

    handler = RelayHandler()
    port = free_port()
    controller = controller_module.Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield Relay(handler, port)
    controller.stop()


def relay_config(port: int, *, return_path: str | None = VERP,
                 mailbox: str | None = "bounces", schedule: str = "") -> str:
    """The ``onetoone.toml`` of a workspace whose campaigns ``spring`` and ``autumn`` send
    through the relay on ``port`` (with a 4 MB request limit, above a bounce's 1 MiB)."""
    from _service_server import CONFIG, OPTIN, crm_sources

    channel = (f'\n[channels.relay]\ntype = "smtp"\nhost = "127.0.0.1"\nport = {port}\n'
               f'security = "none"\nfrom = "{RELAY_SENDER}"\nmax_attempts = 1\n')
    if return_path is not None:
        channel += f'return_path = "{return_path}"\n'
    if mailbox is not None:
        channel += f'bounce_mailbox = "{mailbox}"\n'
    campaigns = "".join(f'\n[campaigns.{name}]\nchannel = "email"\nactions = '
                        '["retention_offer"]\ncontrol_share = 0.0\ndeliver_with = "relay"\n'
                        for name in ("spring", "autumn"))
    config = CONFIG.replace("max_body_bytes = 300000", "max_body_bytes = 4000000")
    return (config + schedule + crm_sources({"source_id": "id", "first_name": "prenom",
                                             "email": "mail"}, OPTIN) + channel + campaigns)


@pytest.fixture(scope="module")
def relay_template(smtp_relay: Relay,
                   tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A workspace loaded and identified once per module (VERP, Maildir ``bounces``, the
    schedule reading it every 15 minutes): the folder and its API keys."""
    from _service_server import make_workspace
    from onetoone import Workspace

    root = tmp_path_factory.mktemp("relay-template")
    rows = [f"{i};Client{i};client{i}@exemple.fr" for i in range(1, RELAY_CUSTOMERS + 1)]
    (root / "crm.csv").write_text("id;prenom;mail\n" + "\n".join(rows) + "\n",
                                  encoding="utf-8")
    (root / "consents.csv").write_text("client;canal;ok;date\n" + "".join(
        f"{i};email;oui;2026-01-10\n" for i in range(1, RELAY_CUSTOMERS + 1)), encoding="utf-8")
    keys = make_workspace(root, relay_config(
        smtp_relay.port, schedule='\n[schedule]\nbounces = "*/15 * * * *"\n'))
    with Workspace(root) as ws:
        ws.ingest()
        ws.identify()
    return root, keys


@pytest.fixture
def relay_workspace(relay_template: tuple[Path, dict[str, str]], smtp_relay: Relay,
                    tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the module's relay workspace for one test (the relay's record emptied)."""
    root, keys = relay_template
    copy = tmp_path / "ws"
    shutil.copytree(root, copy)
    smtp_relay.handler.received.clear()
    return copy, keys


DsnBuilder = Callable[..., bytes]


@pytest.fixture
def make_dsn() -> DsnBuilder:
    """A delivery status notification (RFC 3464) for one recipient of ``original`` (the bytes
    the relay accepted), as a mail server sends it to the envelope sender ``to``:
    ``returned`` is ``"headers"`` (text/rfc822-headers), ``"message"`` (message/rfc822) or
    None (nothing of the original); ``delivered_to`` adds the header the receiving MTA
    prepends when it stores the report."""

    def build(original: bytes, *, to: str, action: str = "failed", status: str = "5.1.1",
              diagnostic: str | None = None, returned: str | None = "headers",
              delivered_to: str | None = None) -> bytes:
        sent = email.message_from_bytes(original, policy=email.policy.compat32)
        recipient = email.utils.parseaddr(str(sent["To"]))[1]
        diagnostic = diagnostic or (f"smtp; 550 5.1.1 <{recipient}>: Recipient address "
                                    "rejected: User unknown in virtual mailbox table")
        report = MIMEMultipart("report", report_type="delivery-status")
        report["From"] = "MAILER-DAEMON@mx.example.net (Mail Delivery System)"
        report["To"] = to
        report["Subject"] = "Undelivered Mail Returned to Sender"
        report["Date"] = email.utils.formatdate()
        report["Message-ID"] = email.utils.make_msgid(domain="mx.example.net")
        report["Auto-Submitted"] = "auto-replied"
        report.attach(MIMEText("This is the mail system at host mx.example.net.\n\nYour "
                               "message could not be delivered to one or more recipients.\n"))
        per_message, per_recipient = Message(), Message()
        per_message["Reporting-MTA"] = "dns; mx.example.net"
        per_message["Arrival-Date"] = email.utils.formatdate()
        per_recipient["Final-Recipient"] = f"rfc822; {recipient}"
        per_recipient["Original-Recipient"] = f"rfc822;{recipient}"
        per_recipient["Action"] = action
        per_recipient["Status"] = status
        per_recipient["Remote-MTA"] = "dns; mail.exemple.fr"
        per_recipient["Diagnostic-Code"] = diagnostic
        delivery_status = MIMEBase("message", "delivery-status")
        delivery_status.set_payload([per_message, per_recipient])
        report.attach(delivery_status)
        if returned == "headers":
            head = original.partition(b"\r\n\r\n")[0].decode("ascii")
            report.attach(MIMEText(head + "\n", "rfc822-headers"))
        elif returned == "message":
            report.attach(MIMEMessage(sent))
        raw = report.as_bytes(policy=email.policy.compat32.clone(linesep="\r\n"))
        prepended = "Return-Path: <>\r\n"
        if delivered_to:
            prepended += f"Delivered-To: {delivered_to}\r\n"
        return prepended.encode() + raw

    return build
