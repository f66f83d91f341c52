"""E-mails as MIME messages: multipart text and HTML, one-click unsubscribe (RFC 8058), the
open pixel and signed click links of :mod:`onetoone.channels.tracking`."""

from __future__ import annotations

import html as html_lib
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from onetoone.channels.base import Message

DEFAULT_SENDER = "onetoone <no-reply@localhost>"


def build_email(message: Message, sender: str | None = None) -> EmailMessage:
    """The MIME message of ``message``: text, and HTML when the treatment has one (or made
    from the text), with ``List-Unsubscribe`` headers when the message has its links."""
    mail = EmailMessage()
    mail["From"] = sender or DEFAULT_SENDER
    mail["To"] = message.to
    mail["Subject"] = message.subject
    mail["Date"] = formatdate(localtime=False)
    domain = (sender or DEFAULT_SENDER).rsplit("@", 1)[-1].strip(" >") or "localhost"
    mail["Message-ID"] = make_msgid(idstring=message.delivery_id, domain=domain)
    mail["X-Onetoone-Delivery"] = message.delivery_id
    unsubscribe = message.links.get("unsubscribe")
    if unsubscribe:
        mail["List-Unsubscribe"] = f"<{unsubscribe}>"
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    text = message.text
    if unsubscribe:
        text += f"\n\n--\nUnsubscribe: {unsubscribe}"
    mail.set_content(text)
    body = message.html
    if body is None:  # the text, escaped, as HTML paragraphs
        body = "".join(f"<p>{html_lib.escape(p)}</p>" for p in message.text.split("\n\n") if p)
    pixel = message.links.get("open")
    if pixel:
        body += (f'<img src="{html_lib.escape(pixel, quote=True)}" width="1" height="1" '
                 'alt="" style="display:none">')
    if unsubscribe:
        body += (f'<p style="font-size:small"><a href="{html_lib.escape(unsubscribe, quote=True)}'
                 '">Unsubscribe</a></p>')
    mail.add_alternative(f"<!DOCTYPE html><html><body>{body}</body></html>", subtype="html")
    return mail
