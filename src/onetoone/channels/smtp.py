"""E-mail over SMTP (docs/channels.md): one connection kept open for many messages, implicit
TLS, STARTTLS (required) or none, login with a password read from the environment, one
outcome per recipient from the server's replies, and :func:`parse_dsn` for the bounces that
come back later as delivery status notifications (RFC 3464). The envelope sender is the
channel's ``return_path`` (one address per message with ``{delivery_id}``: VERP, read back by
:func:`verp_delivery_id`), else the ``from`` address.

TLS verifies the server's certificate against the system store; ``SSL_CERT_FILE`` (read by
OpenSSL) points to another bundle, e.g. one holding a private CA. No address is ever written
to a log line, an exception or an outcome's error.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import email.utils
import logging
import os
import re
import smtplib
import ssl
from email.message import Message as MimeMessage
from email.parser import BytesHeaderParser, HeaderParser
from typing import Literal

from onetoone.channels.base import ChannelError, Message, Outcome
from onetoone.channels.mail import email_bytes
from onetoone.channels.settings import ChannelConfig

log = logging.getLogger("onetoone.channels.smtp")

DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "none": 25}

_ADDRESS = re.compile(r"<?[^\s<>\"'(),;:]+@[^\s<>\"'(),;:]+>?")
_QUEUE_ID = re.compile(r"\bqueued as ([A-Za-z0-9._-]+)|\bid=([A-Za-z0-9._-]+)", re.I)
#: a Message-ID's local part: the delivery id, or make_msgid's ``time.pid.random.id``
_MSGID = re.compile(r"<(?:\d+\.\d+\.\d+\.)?([^@<>\s]+)@[^<>\s]*>")
_MSGID_HEADER = re.compile(rb"^Message-ID:[ \t]*<([^>\r\n]+)>", re.I | re.M)
#: how a kept-open connection fails once the server closed it meanwhile: reconnect once
_RECONNECTABLE = (smtplib.SMTPServerDisconnected, ConnectionResetError, BrokenPipeError)


class SmtpChannel:
    """A channel that sends e-mails through an SMTP server (``type = "smtp"``)."""

    def __init__(self, name: str, config: ChannelConfig) -> None:
        if config.host is None or config.sender is None:
            raise ChannelError(f"channel '{name}' needs host and from", permanent=True)
        self.name, self.config = name, config
        self.host: str = config.host
        self.sender: str = config.sender
        self.port = config.port or DEFAULT_PORTS[config.security]
        self._envelope_from = email.utils.parseaddr(self.sender)[1] or self.sender
        self._return_path = config.return_path
        self._smtp: smtplib.SMTP | None = None
        #: connections opened so far (read by the tests and the benchmark)
        self.connections = 0
        if config.security == "none" and self.host not in ("localhost", "127.0.0.1", "::1"):
            log.warning("channel %s: security = none to %s: messages and password travel in "
                        "clear", name, self.host)

    # -- the Channel protocol

    def send(self, messages: list[Message]) -> list[Outcome]:
        """Send each message on the open connection (opened if needed). A failure before the
        first message raises (the caller retries or fails the batch); after it, the messages
        not yet handed over come back as ``retry`` (or ``failed`` when permanent)."""
        outcomes: list[Outcome] = []
        for index, message in enumerate(messages):
            try:
                outcomes.append(self._send_one(message))
            except (ChannelError, OSError) as exc:
                self._drop()
                error = _channel_error(exc)
                if not outcomes:
                    raise error from None
                status = "failed" if error.permanent else "retry"
                outcomes.extend(Outcome(m.delivery_id, status, error=str(error))
                                for m in messages[index:])
                break
        return outcomes

    def close(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(OSError):  # smtplib's errors are OSErrors
                self._smtp.quit()
            self._drop()

    # -- one message

    def _send_one(self, message: Message) -> Outcome:
        to = message.to.strip()
        if not to or "@" not in to or any(c in to for c in "\r\n<>"):
            return Outcome(message.delivery_id, "failed", error="invalid address")
        envelope = (verp_address(self._return_path, message.delivery_id)
                    if self._return_path else self._envelope_from)
        international = not (to.isascii() and envelope.isascii())
        try:
            data = email_bytes(message, self.sender)
            if international:
                data = _utf8_addresses(data, to, self.sender)
        except ValueError:
            return Outcome(message.delivery_id, "failed", error="invalid message headers")
        fresh = self._smtp is None or self._smtp.sock is None
        smtp = self._connection()
        try:
            return self._transaction(smtp, message, data, to, envelope, international)
        except _RECONNECTABLE:
            if fresh:
                raise
            log.info("channel %s: the server closed the connection; reconnecting", self.name)
            self._drop()
            return self._transaction(self._connection(), message, data, to, envelope,
                                     international)

    def _transaction(self, smtp: smtplib.SMTP, message: Message, data: bytes, to: str,
                     envelope: str, international: bool) -> Outcome:
        options: list[str] = []
        if international:
            if not smtp.has_extn("smtputf8"):
                return Outcome(message.delivery_id, "failed",
                               error="the server does not accept international addresses")
            options = ["SMTPUTF8", "BODY=8BITMIME"]
        elif not data.isascii() and smtp.has_extn("8bitmime"):
            options = ["BODY=8BITMIME"]
        try:
            code, reply = smtp.mail(envelope, options)
            if code != 250:
                return self._refused(smtp, message, code, reply, "sender refused")
            code, reply = smtp.rcpt(to)
            if code not in (250, 251):
                return self._refused(smtp, message, code, reply, "bounced")
            try:
                code, reply = smtp.data(data)
            except smtplib.SMTPDataError as exc:  # DATA itself refused
                return self._refused(smtp, message, exc.smtp_code, exc.smtp_error, "bounced")
            if code != 250:
                return self._refused(smtp, message, code, reply, "bounced")
        finally:
            smtp.command_encoding = "ascii"  # SMTPUTF8 lasts one transaction
        queue_id = _QUEUE_ID.search(reply.decode("utf-8", "replace"))
        if queue_id:
            provider_id: str | None = queue_id.group(1) or queue_id.group(2)
        else:
            message_id = _MSGID_HEADER.search(data.partition(b"\r\n\r\n")[0])
            provider_id = message_id.group(1).decode("utf-8", "replace") if message_id else None
        return Outcome(message.delivery_id, "sent", provider_id=provider_id)

    def _refused(self, smtp: smtplib.SMTP, message: Message, code: int, reply: bytes | str,
                 what: str) -> Outcome:
        """The outcome of a refused command: 5xx failed for good, anything else retried."""
        if code == -1:  # smtplib's code for a reply it could not read
            raise smtplib.SMTPResponseException(code, reply)
        if code == 421:  # the server is closing the connection
            self._drop()
        else:
            try:
                smtp.rset()
            except OSError:
                self._drop()
        text = f"{code} {_short(reply, message.to)}"
        if 500 <= code < 600:
            return Outcome(message.delivery_id, "failed", error=f"{what}: {text}")
        return Outcome(message.delivery_id, "retry", error=f"deferred: {text}")

    # -- the connection

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is not None and self._smtp.sock is not None:
            return self._smtp
        self._drop()
        password = self._password()
        timeout = self.config.timeout_seconds
        security = self.config.security
        smtp: smtplib.SMTP
        if security == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=timeout,
                                    context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=timeout)
        try:
            smtp.ehlo_or_helo_if_needed()
            if security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise ChannelError(
                        f"the SMTP server {self.host}:{self.port} does not offer STARTTLS, and "
                        "security = \"starttls\" forbids sending in clear", permanent=True)
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if self.config.username is not None and password is not None:
                smtp.login(self.config.username, password)
        except BaseException:
            _quietly_close(smtp)
            raise
        self._smtp = smtp
        self.connections += 1
        log.debug("channel %s: connected to %s:%s (%s)", self.name, self.host, self.port,
                  security)
        return smtp

    def _password(self) -> str | None:
        if self.config.username is None:
            return None
        variable = self.config.password_env
        if variable is None:
            raise ChannelError(f"channel '{self.name}' has a username but no password_env",
                               permanent=True)
        password = os.environ.get(variable)
        if password is None:
            raise ChannelError(f"the environment variable {variable} holding the SMTP "
                               "password is not set", permanent=True)
        return password

    def _drop(self) -> None:
        if self._smtp is not None:
            _quietly_close(self._smtp)
            self._smtp = None


def _quietly_close(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):
        smtp.close()


def _utf8_addresses(data: bytes, to: str, sender: str) -> bytes:
    """``data`` with its To (and, when not ASCII, From) header in UTF-8 as it is (RFC 6532):
    an address is never an RFC 2047 encoded word."""
    head, _, body = data.partition(b"\r\n\r\n")
    fields: list[bytes] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:  # a folded header goes on
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    plain = {b"to": f"To: {to}".encode()}
    if not sender.isascii():
        plain[b"from"] = f"From: {sender}".encode()
    fields = [plain.get(f.partition(b":")[0].strip().lower(), f) for f in fields]
    return b"\r\n".join(fields) + b"\r\n\r\n" + body


def _short(reply: bytes | str, *secrets: str) -> str:
    """A server's reply on one line, without addresses, at most 160 characters."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    for secret in secrets:
        if secret:
            text = re.sub(f"<?{re.escape(secret)}>?", "<address>", text, flags=re.I)
    text = " ".join(_ADDRESS.sub("<address>", text).split())
    return text[:157] + "..." if len(text) > 160 else text


def _channel_error(exc: BaseException) -> ChannelError:
    """A failure of the connection as a :class:`ChannelError` whose text holds no address."""
    if isinstance(exc, ChannelError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ChannelError(f"the SMTP server's certificate could not be verified "
                            f"({exc.verify_message}); trust its CA with SSL_CERT_FILE",
                            permanent=True)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return ChannelError(f"the SMTP server refused the login: {exc.smtp_code} "
                            f"{_short(exc.smtp_error)}", permanent=True)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return ChannelError("the SMTP server does not offer a login (AUTH) on this connection",
                            permanent=True)
    if isinstance(exc, smtplib.SMTPResponseException):
        return ChannelError(f"the SMTP server answered {exc.smtp_code} "
                            f"{_short(exc.smtp_error)}")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return ChannelError("the SMTP server closed the connection")
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or "connection failed"
        return ChannelError(f"{type(exc).__name__}: {_short(reason)}")
    return ChannelError(type(exc).__name__)


# -- delivery status notifications

Status = Literal["bounced", "delayed"]


def parse_dsn(raw: bytes) -> list[tuple[str | None, Status, str]]:
    """The recipients reported by a delivery status notification (``multipart/report;
    report-type=delivery-status``): one ``(delivery_id, status, diagnostic)`` each whose
    ``Action`` is ``failed`` (``bounced``; a hard bounce when its Status is 5.x.x) or
    ``delayed``. The delivery id comes from the returned original's ``X-Onetoone-Delivery``
    header, else from its Message-ID; None when the report returns neither. The diagnostic
    (Status, then the remote server's words) holds no address. Anything else: ``[]``."""
    mail = email.message_from_bytes(raw, policy=email.policy.compat32)
    if mail.get_content_type() != "multipart/report":
        return []
    recipients: list[MimeMessage] = []
    original: MimeMessage | None = None
    for part in mail.walk():
        kind = part.get_content_type()
        payload = part.get_payload()
        if kind == "message/delivery-status" and isinstance(payload, list):
            recipients.extend(block for block in payload
                              if isinstance(block, MimeMessage) and block.get("Action"))
        elif kind == "message/rfc822" and original is None and isinstance(payload, list) \
                and payload and isinstance(payload[0], MimeMessage):
            original = payload[0]
        elif kind == "text/rfc822-headers" and original is None:
            text = part.get_payload(decode=True) or b""
            original = HeaderParser(policy=email.policy.compat32).parsestr(
                text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text))
    delivery_id = _delivery_id(original)
    found: list[tuple[str | None, Status, str]] = []
    for block in recipients:
        action = str(block.get("Action", "")).strip().lower()
        status: Status | None = ("bounced" if action == "failed" else
                                 "delayed" if action == "delayed" else None)
        if status is None:
            continue
        code = (str(block.get("Status") or "").split() or [""])[0]
        diagnostic = str(block.get("Diagnostic-Code", "") or "")
        if ";" in diagnostic:
            diagnostic = diagnostic.split(";", 1)[1]
        final = str(block.get("Final-Recipient", "")).rpartition(";")[2].strip()
        found.append((delivery_id, status, _short(f"{code} {diagnostic}", final)))
    return found


#: headers in which a receiving MTA, or the report itself, names the address a bounce was
#: sent to: the VERP return path of the message it reports
_ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")


def verp_address(return_path: str, delivery_id: str) -> str:
    """The envelope sender of one message: ``return_path`` with the message's delivery id
    in place of ``{delivery_id}`` (VERP, variable envelope return path: the bounce comes back
    to an address naming the message)."""
    return return_path.replace("{delivery_id}", delivery_id)


def verp_delivery_id(raw: bytes, return_path: str | None) -> str | None:
    """The delivery id of the VERP address (of ``return_path``) a bounce was sent to, read
    from the headers that name it (``Delivered-To``, ``X-Original-To``, ``Envelope-To``, as
    the receiving MTA adds them, then ``To``): it attributes a delivery status notification
    that returns none of the original's headers. None without VERP or without a match."""
    if not return_path or "{delivery_id}" not in return_path:
        return None
    before, _, after = return_path.partition("{delivery_id}")
    pattern = re.compile(re.escape(before) + r"([A-Za-z0-9][A-Za-z0-9._=-]{0,99}?)"
                         + re.escape(after), re.I)
    head = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    for name in _ENVELOPE_HEADERS:
        values = [str(v) for v in head.get_all(name) or []]
        for _, address in email.utils.getaddresses(values):
            match = pattern.fullmatch(address.strip())
            if match:
                return match.group(1)
    return None


def _delivery_id(original: MimeMessage | None) -> str | None:
    if original is None:
        return None
    header = original.get("X-Onetoone-Delivery")
    if header and str(header).strip():
        return str(header).strip()
    match = _MSGID.search(str(original.get("Message-ID", "")))
    return match.group(1) if match else None
