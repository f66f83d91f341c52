"""Signed links of a message: the open pixel, click redirects, one-click unsubscribe and the
short link of a personalized QR code. Each link carries the delivery and decision it belongs
to and, for a redirect, its target, signed with the workspace's channel secret (HMAC-SHA256):
a forged or altered link is refused (404), and a redirect goes only where the message said.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

#: kinds of link: open pixel, click, unsubscribe, QR scan
KINDS = ("o", "c", "u", "r")
_HREF = re.compile(r'href="(https?://[^"]+)"', re.IGNORECASE)
#: a delivery id (``onetoone.channels.campaigns.delivery_id``)
_DELIVERY = re.compile(r"m[0-9a-f]{23}")
#: what a short token's MAC is of, before the delivery id (a long token's payload holds four
#: separators: never the same bytes)
_SCAN = b"r\x1f"


@dataclass(frozen=True)
class Link:
    """What a signed link says."""

    kind: str
    delivery_id: str
    decision_id: str
    channel: str
    target: str = ""


class Signer:
    """Makes and reads the signed tokens of links (``/t/<kind>/<token>``)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, payload: bytes) -> str:
        digest = hmac.new(self._secret, payload, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def token(self, link: Link) -> str:
        payload = "\x1f".join((link.kind, link.delivery_id, link.decision_id, link.channel,
                               link.target)).encode()
        body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{body}.{self._mac(payload)}"

    def short(self, delivery_id: str) -> str:
        """The short token of a delivery's QR code: its id and a MAC (the rest is read from
        the delivery when scanned, so that the code stays small)."""
        return f"{delivery_id}.{self._mac(_SCAN + delivery_id.encode())}"

    def read_short(self, token: str) -> str | None:
        """The delivery id of a short token, or None when forged, altered or not one."""
        delivery_id, _, mac = token.partition(".")
        if not _DELIVERY.fullmatch(delivery_id) or not mac:
            return None
        expected = self._mac(_SCAN + delivery_id.encode())
        return delivery_id if hmac.compare_digest(mac, expected) else None

    def read(self, token: str, kind: str) -> Link | None:
        """The link of a token of this kind, or None when forged, altered or malformed."""
        body, _, mac = token.partition(".")
        try:
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (ValueError, TypeError):
            return None
        if not mac or not hmac.compare_digest(mac, self._mac(payload)):
            return None
        parts = payload.decode("utf-8", "replace").split("\x1f")
        if len(parts) != 5 or parts[0] != kind:
            return None
        return Link(*parts)


def message_links(signer: Signer, base_url: str, delivery_id: str, decision_id: str,
                  channel: str) -> dict[str, str]:
    """The open pixel and unsubscribe links of one message."""
    base = base_url.rstrip("/")

    def url(kind: str, suffix: str = "") -> str:
        return f"{base}/t/{kind}/{signer.token(Link(kind, delivery_id, decision_id, channel))}" \
               + suffix

    return {"open": url("o", ".gif"), "unsubscribe": url("u")}


def click_url(signer: Signer, base_url: str, delivery_id: str, decision_id: str,
              channel: str, target: str) -> str:
    """A redirect through the server to ``target`` that records the click."""
    token = signer.token(Link("c", delivery_id, decision_id, channel, target))
    return f"{base_url.rstrip('/')}/t/c/{token}"


def scan_url(signer: Signer, base_url: str, delivery_id: str, decision_id: str,
             target: str) -> str:
    """The short link a personalized QR code encodes: records the scan, then redirects."""
    token = signer.token(Link("r", delivery_id, decision_id, "qr", target))
    return f"{base_url.rstrip('/')}/r/{token}"


def short_scan_url(signer: Signer, base_url: str, delivery_id: str) -> str:
    """The short link of a campaign's QR code: ``/r/<delivery id>.<MAC>`` (about 50
    characters, where :func:`scan_url` carries the page too); the server reads the decision
    and the page (the treatment's ``url``) from the delivery when it is scanned."""
    return f"{base_url.rstrip('/')}/r/{signer.short(delivery_id)}"


def web_address(url: str) -> bool:
    """Whether ``url`` is an http(s) address a browser may be sent to."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and url.isprintable() \
        and " " not in url


def track_clicks(body: str, signer: Signer, base_url: str, delivery_id: str,
                 decision_id: str, channel: str) -> str:
    """``body`` (HTML) with every ``href="http..."`` replaced by its click redirect."""
    def replace(match: re.Match[str]) -> str:
        target = html.unescape(match.group(1))
        link = click_url(signer, base_url, delivery_id, decision_id, channel, target)
        return f'href="{html.escape(link, quote=True)}"'

    return _HREF.sub(replace, body)
