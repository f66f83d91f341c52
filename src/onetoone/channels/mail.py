"""E-mails as MIME messages: multipart text and HTML, one-click unsubscribe (RFC 8058), the
open pixel and signed click links of :mod:`onetoone.channels.tracking`.

:func:`email_bytes` writes the message directly (a campaign renders a million of them; the
standard library's ``EmailMessage`` takes a millisecond each); :func:`build_email` reads
those bytes back as an ``EmailMessage`` for code that wants one.
"""

from __future__ import annotations

import base64
import email
import email.policy
import html as html_lib
from email.header import Header
from email.message import EmailMessage
from email.utils import formatdate

from onetoone.channels.base import Message

DEFAULT_SENDER = "onetoone <no-reply@localhost>"


def _header(value: str) -> str:
    """A header value: as is when ASCII, else RFC 2047 encoded words (folded)."""
    value = value.replace("\r", " ").replace("\n", " ")
    if value.isascii():
        return value
    return Header(value, "utf-8", maxlinelen=76).encode()


def _part(kind: str, text: str) -> bytes:
    body = base64.encodebytes(text.encode("utf-8"))  # lines of 76 characters
    return (f'Content-Type: text/{kind}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n").encode() + body.replace(b"\n",
                                                                                   b"\r\n")


def html_body(message: Message) -> str:
    """The HTML part: the treatment's HTML (escaped when rendered), or the text escaped into
    paragraphs; with the open pixel and the unsubscribe link when the message has them."""
    body = message.html
    if body is None:
        body = "".join(f"<p>{html_lib.escape(p)}</p>" for p in message.text.split("\n\n") if p)
    pixel = message.links.get("open")
    if pixel:
        body += (f'<img src="{html_lib.escape(pixel, quote=True)}" width="1" height="1" '
                 'alt="" style="display:none">')
    unsubscribe = message.links.get("unsubscribe")
    if unsubscribe:
        body += (f'<p style="font-size:small"><a href="{html_lib.escape(unsubscribe, quote=True)}'
                 '">Unsubscribe</a></p>')
    return f"<!DOCTYPE html><html><body>{body}</body></html>"


def email_bytes(message: Message, sender: str | None = None, *, date: str | None = None) -> bytes:
    """The message as MIME bytes (CRLF line ends), ready for SMTP or a ``.eml`` file."""
    sender = sender or DEFAULT_SENDER
    domain = sender.rsplit("@", 1)[-1].strip(" >") or "localhost"
    boundary = f"=_onetoone_{message.delivery_id}"
    headers = [
        f"From: {_header(sender)}",
        f"To: {_header(message.to)}",
        f"Subject: {_header(message.subject)}",
        f"Date: {date or formatdate(localtime=False)}",
        # the same id when sent again: receivers drop the duplicate
        f"Message-ID: <{message.delivery_id}@{domain}>",
        f"X-Onetoone-Delivery: {message.delivery_id}",
        "MIME-Version: 1.0",
    ]
    unsubscribe = message.links.get("unsubscribe")
    text = message.text
    if unsubscribe:
        headers += [f"List-Unsubscribe: <{unsubscribe}>",
                    "List-Unsubscribe-Post: List-Unsubscribe=One-Click"]
        text += f"\n\n--\nUnsubscribe: {unsubscribe}"
    headers.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
    mark = f"--{boundary}\r\n".encode()
    return b"".join((
        ("\r\n".join(headers) + "\r\n\r\n").encode(),
        mark, _part("plain", text.replace("\r\n", "\n").replace("\n", "\r\n")), b"\r\n",
        mark, _part("html", html_body(message)), b"\r\n",
        f"--{boundary}--\r\n".encode()))


def build_email(message: Message, sender: str | None = None) -> EmailMessage:
    """The message as an ``EmailMessage`` (the same bytes as :func:`email_bytes`)."""
    parsed = email.message_from_bytes(email_bytes(message, sender), policy=email.policy.SMTP)
    assert isinstance(parsed, EmailMessage)
    return parsed
