"""SMS over an HTTP gateway (Kannel's sendsms, or a provider's HTTP API) and what comes back
from it: delivery reports and inbound messages, STOP among them (docs/channels.md).

:class:`HttpGateway` fills the ``[channels.NAME] url`` template for each message and calls it
with one reused HTTP client: a 2xx answer is sent, a 4xx refused for good (429 and 408 are
tried again), a 5xx or a connection error tried again. The phone number and the text of a
message never reach a log or an error message.

The gateway calls back the service with GET requests that cannot carry an API key: each URL
holds a token, an HMAC under the workspace's channel secret (:func:`callback_token`) of the
delivery id (delivery reports) or of ``"inbound"`` (inbound messages).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

import httpx

from onetoone.channels.base import Message, Outcome
from onetoone.channels.settings import ChannelConfig
from onetoone.errors import ConfigError

# -- encodings and segments (3GPP TS 23.038, formerly GSM 03.38) ------------------------

#: The GSM 7-bit default alphabet, in code order (0x1B, the escape to the extension table,
#: is not a character of its own).
GSM_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_BASIC = frozenset(GSM_BASIC_TABLE) - {"\x1b"}
#: The extension table: each of these takes two septets (the escape and its code).
GSM_EXTENSION = frozenset("\x0c^{}\\[~]|€")
#: septets (GSM-7) or UTF-16 code units (UCS-2) of one message, and of each part of a
#: concatenated one (the rest of a part holds the concatenation header)
LIMITS = {"GSM-7": (160, 153), "UCS-2": (70, 67)}
#: Kannel's ``coding`` of each encoding (the ``{coding}`` placeholder)
KANNEL_CODING = {"GSM-7": "0", "UCS-2": "2"}


def segments(text: str) -> tuple[str, int, int]:
    """(encoding, characters, segments) of an SMS of ``text``.

    GSM-7 when every character is in the GSM 7-bit alphabet or its extension table (whose
    characters, € { } [ ] ~ \\ ^ |, count two), else UCS-2, counted in UTF-16 code units (an
    emoji counts two). A message longer than one SMS (160 GSM-7, 70 UCS-2) is cut in parts of
    153 or 67; an escape pair or a surrogate pair is never split across two parts. The empty
    text counts one segment.
    """
    if all(c in GSM_BASIC or c in GSM_EXTENSION for c in text):
        encoding = "GSM-7"
        sizes = [2 if c in GSM_EXTENSION else 1 for c in text]
    else:
        encoding = "UCS-2"
        sizes = [2 if ord(c) > 0xFFFF else 1 for c in text]
    single, part = LIMITS[encoding]
    total = sum(sizes)
    if total <= single:
        return encoding, total, 1
    count, used = 1, 0
    for size in sizes:
        if used + size > part:
            count, used = count + 1, 0
        used += size
    return encoding, total, count


_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Plain text for an SMS: line ends as ``\\n``, other control characters (and lone
    surrogates) removed."""
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


# -- callbacks ----------------------------------------------------------------------------


def callback_token(secret: bytes, delivery_id: str) -> str:
    """The token of a gateway callback URL: HMAC-SHA256 of ``delivery_id`` (or ``"inbound"``)
    under the channel secret, 32 hexadecimal characters."""
    return hmac.new(secret, delivery_id.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def valid_token(secret: bytes, delivery_id: str, token: str | None) -> bool:
    """Whether ``token`` is the callback token of ``delivery_id`` (constant time)."""
    return bool(token) and hmac.compare_digest(
        callback_token(secret, delivery_id).encode("ascii"),
        (token or "").encode("utf-8", "replace"))


#: STOP keywords, compared without case, accents, spaces and trailing punctuation
STOP_WORDS = frozenset({"stop", "arret", "stopsms", "unsubscribe", "desinscrire"})


def is_stop(text: str) -> bool:
    """Whether an inbound SMS asks to stop: the whole message is STOP, ARRET (ARRÊT), STOP
    SMS, UNSUBSCRIBE or DESINSCRIRE, in any case, with or without accents and spaces,
    optionally followed by punctuation (``Stop.``, ``arrêt !``)."""
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c)).casefold()
    folded = "".join(folded.split())
    while folded and unicodedata.category(folded[-1]).startswith("P"):
        folded = folded[:-1]
    return folded in STOP_WORDS


#: Kannel's delivery report types (the ``%d`` of a dlr-url) and the ``deliveries`` status
#: each one gives, strongest first: 1 delivered to the phone, 2 not delivered to the phone,
#: 16 refused by the SMS centre, 8 accepted by the SMS centre, 4 buffered
_DLR_BITS = ((1, "delivered"), (2, "bounced"), (16, "failed"), (8, "sent"), (4, "sent"))
#: statuses after which a message moves no more (but for a later, final report)
FINAL_STATUSES = ("delivered", "bounced", "failed")


def dlr_status(kannel_code: int) -> str:
    """The ``deliveries`` status of a Kannel delivery report type: 1 ``delivered``,
    2 ``bounced``, 4 (buffered) and 8 (accepted by the SMS centre) ``sent``, 16 (refused by
    the SMS centre) ``failed``; combined values (Kannel's expired is 0x22) go by their
    strongest bit. ValueError for a code with none of these bits."""
    for bit, status in _DLR_BITS:
        if kannel_code > 0 and kannel_code & bit:
            return status
    raise ValueError(f"unknown delivery report type {kannel_code}")


_REPORT_ERRORS = {"bounced": "delivery report: not delivered to the phone",
                  "failed": "delivery report: refused by the SMS centre"}


def report_delivery(delivery_id: str, status: str, now: datetime) -> Callable[[Any], bool]:
    """A work for the service's writer setting a delivery's status from a report: True when
    the delivery exists. An intermediate report (``sent``) arriving after a final one is
    ignored (gateways send reports concurrently)."""

    def work(txn: Any) -> bool:
        cur = txn.cur
        found = cur.execute("SELECT status FROM deliveries WHERE delivery_id = ?",
                            [delivery_id]).fetchone()
        if found is None:
            return False
        if status not in FINAL_STATUSES and found[0] not in ("queued", "sent", None):
            return True
        reached = status in ("sent", "delivered")
        cur.execute(
            """UPDATE deliveries SET status = ?, updated_at = ?,
                      sent_at = CASE WHEN ? THEN coalesce(sent_at, ?) ELSE sent_at END,
                      error = coalesce(?, error)
               WHERE delivery_id = ?""",
            [status, now, reached, now, _REPORT_ERRORS.get(status), delivery_id])
        return True

    return work


def customers_with_phone(cur: Any, phone: str) -> list[str]:
    """Every customer whose records carry the (normalized) ``phone``."""
    rows = cur.execute(
        """SELECT DISTINCT l.customer_id FROM identifiers i
           JOIN customer_links l USING (record_key) JOIN customers c USING (customer_id)
           WHERE i.type = 'phone' AND i.value = ? ORDER BY 1""", [phone]).fetchall()
    return [r[0] for r in rows]


# -- the adapter --------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{(to|text|from|delivery_id|dlr_url|dlr_token|coding|username|"
                          r"password)\}")
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
#: a phone number as a gateway may echo it (7 digits or more, spaced or not)
_NUMBERS = re.compile(r"\+?[0-9][0-9 .\-]{5,}[0-9]")
_BLANKS = re.compile(r"\s+")
#: keys of a JSON answer that may hold the provider's message id
_ID_KEYS = ("id", "message_id", "messageId", "sid")


def _fill(template: str, values: Mapping[str, str], encode: bool) -> str:
    return _PLACEHOLDER.sub(
        lambda m: quote(values[m.group(1)], safe="") if encode else values[m.group(1)],
        template)


class HttpGateway:
    """A :class:`~onetoone.channels.base.Channel` sending SMS through an HTTP gateway.

    ``config.url`` is a template with the placeholders ``{to}`` (E.164, e.g.
    ``+33612345678``), ``{text}``, ``{from}``, ``{delivery_id}``, ``{dlr_url}``,
    ``{coding}`` (Kannel's: 0 GSM-7, 2 UCS-2), ``{username}`` and ``{password}`` (from the
    variable ``password_env``), each filled URL-encoded. With ``method = "POST"`` the query
    string of the template becomes form fields (the URL without it is called); a template
    without a query string posts ``to``, ``text``, ``from`` and ``dlr_url``.

    ``config.dlr_url`` may hold ``{delivery_id}`` and ``{dlr_token}`` (the callback token,
    which needs ``secret``); a path (``/v1/channels/sms/dlr?...``) is joined to
    ``server_url``. A text over ``max_segments`` segments is refused.
    """

    def __init__(self, name: str, config: ChannelConfig, *, secret: bytes | None = None,
                 server_url: str | None = None, max_segments: int = 10) -> None:
        if not config.url:
            raise ConfigError(f"The channel '{name}' has no url.",
                              hint="Set [channels.NAME] url to the gateway's URL template.")
        self.name, self.config, self.max_segments = name, config, max_segments
        self._secret = secret
        self._dlr = config.dlr_url or ""
        if self._dlr.startswith("/"):
            if not server_url:
                raise ConfigError(
                    f"The dlr_url of the channel '{name}' is a path, and the server's public "
                    "URL is unknown.", hint="Give the full URL of the delivery report route.")
            self._dlr = server_url.rstrip("/") + self._dlr
        if "{dlr_token}" in self._dlr and secret is None:
            raise ConfigError(f"The dlr_url of the channel '{name}' needs a callback token "
                              "and no channel secret was given.")
        self._password = ""
        if config.password_env:
            password = os.environ.get(config.password_env)
            if password is None:
                raise ConfigError(
                    f"The channel '{name}' takes its password from the environment variable "
                    f"{config.password_env}, which is not set.")
            self._password = password
        uses_password = "{password}" in config.url
        auth = (httpx.BasicAuth(config.username, self._password)
                if config.username and config.password_env and not uses_password else None)
        self._client = httpx.Client(timeout=config.timeout_seconds, follow_redirects=False,
                                    auth=auth, headers={"User-Agent": "onetoone"})

    # -- Channel ------------------------------------------------------------------------
    def send(self, messages: list[Message]) -> list[Outcome]:
        return [self._send_one(m) for m in messages]

    def close(self) -> None:
        self._client.close()

    # -- one message --------------------------------------------------------------------
    def _send_one(self, m: Message) -> Outcome:
        text = clean_text(m.text)
        if not text.strip():
            return Outcome(m.delivery_id, "failed", error="empty text: nothing to send")
        if not _E164.fullmatch(m.to or ""):
            return Outcome(m.delivery_id, "failed",
                           error="no phone number in E.164 format (+ and 8 to 15 digits)")
        encoding, chars, count = segments(text)
        if count > self.max_segments:
            return Outcome(m.delivery_id, "failed", error=(
                f"too long: {count} segments ({encoding}, {chars} characters), "
                f"at most {self.max_segments}"))
        values = {
            "to": m.to, "text": text, "from": self.config.sender or "",
            "delivery_id": m.delivery_id, "coding": KANNEL_CODING[encoding],
            "username": self.config.username or "", "password": self._password,
            "dlr_token": callback_token(self._secret, m.delivery_id) if self._secret else "",
        }
        values["dlr_url"] = _fill(self._dlr, values, encode=True) if self._dlr else ""
        try:
            response = self._request(values)
        except httpx.TransportError as exc:
            return Outcome(m.delivery_id, "retry",
                           error=f"gateway unreachable: {type(exc).__name__}")
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError):
            return Outcome(m.delivery_id, "failed", error="invalid gateway url")
        status = response.status_code
        if 200 <= status < 300:
            return Outcome(m.delivery_id, "sent",
                           provider_id=_provider_id(response) or m.delivery_id)
        if status in (408, 429) or status >= 500:
            return Outcome(m.delivery_id, "retry", error=f"gateway error: {status}")
        return Outcome(m.delivery_id, "failed", error=(
            f"refused: {status} {self._redact(response.text, m.to, text)}").rstrip())

    def _request(self, values: dict[str, str]) -> httpx.Response:
        template = self.config.url or ""
        if self.config.method == "GET":
            return self._client.get(_fill(template, values, encode=True))
        parts = urlsplit(template)
        fields = ([(k, _fill(v, values, encode=False)) for k, v in
                   parse_qsl(parts.query, keep_blank_values=True)] if parts.query else
                  [("to", values["to"]), ("text", values["text"]),
                   ("from", values["from"]), ("dlr_url", values["dlr_url"])])
        url = urlunsplit(parts._replace(query=""))
        return self._client.post(_fill(url, values, encode=True), data=dict(fields))

    def _redact(self, body: str, phone: str, text: str) -> str:
        """At most 100 characters of a refusal, without the number, the text or a secret."""
        body = body[:4000]
        for secret in (self._password, text, phone, phone.lstrip("+")):
            if len(secret) >= 3:
                body = body.replace(secret, "…")
        body = _NUMBERS.sub("…", _CONTROL.sub(" ", body))
        return _BLANKS.sub(" ", body).strip()[:100]


def _provider_id(response: httpx.Response) -> str | None:
    """The message id of a JSON answer (``id``, ``message_id``...), if any."""
    if not response.content.lstrip().startswith(b"{"):
        return None
    try:
        data = json.loads(response.content)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    for key in _ID_KEYS:
        value = data.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)[:200]
    return None


__all__ = ["FINAL_STATUSES", "GSM_BASIC", "GSM_EXTENSION", "HttpGateway", "callback_token",
           "clean_text", "customers_with_phone", "dlr_status", "is_stop", "report_delivery",
           "segments", "valid_token"]
