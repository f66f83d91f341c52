"""Web hooks: each message is a signed JSON ``POST`` to the receiver's URL (docs/channels.md).

The body is ``{"delivery_id", "decision_id", "customer_id", "campaign", "action_id", "to",
"fields", "links", "sent_at"}``; ``X-Onetoone-Signature: sha256=<hex>`` is the HMAC-SHA256 of
``timestamp + "." + body`` under the secret held by the environment variable ``secret_env``,
and receivers check it with :func:`verify`. Messages still refused after their tries go to the
dead letters, ``outbox/dead/<channel>.jsonl`` (:func:`dead_letters`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onetoone.channels.base import ChannelError, Message, Outcome
from onetoone.channels.settings import ChannelConfig
from onetoone.errors import ConfigError, OneToOneError

if TYPE_CHECKING:
    import httpx

#: seconds from now beyond which :func:`verify` refuses a timestamp (replays, skewed clocks)
TOLERANCE_S = 300
#: a receiver's ``Retry-After`` is honoured up to this many seconds
MAX_RETRY_AFTER = 120.0
#: answers tried again later (with 5xx)
RETRY_STATUSES = frozenset({408, 429})


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: the HMAC-SHA256 of ``timestamp + "." + body`` under ``secret``."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(secret: bytes, timestamp: str, body: bytes, signature: str, *,
           tolerance_s: float = TOLERANCE_S, now: float | None = None) -> bool:
    """Whether a request comes from onetoone: ``signature`` (the ``X-Onetoone-Signature``
    header, ``sha256=<hex>``) signs the raw ``body`` with ``timestamp`` (the
    ``X-Onetoone-Timestamp`` header, unix seconds), and that timestamp lies within
    ``tolerance_s`` seconds of ``now`` (default: the clock), which refuses replayed requests.
    The signatures are compared in constant time."""
    timestamp = timestamp.strip()
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance_s:
        return False
    given = signature.strip()
    if not given.startswith("sha256="):
        given = f"sha256={given}"
    return hmac.compare_digest(sign(secret, timestamp, body).encode("ascii"),
                               given.lower().encode("utf-8"))


def payload(message: Message, sent_at: str) -> dict[str, Any]:
    """The JSON object posted for ``message``."""
    return {"delivery_id": message.delivery_id, "decision_id": message.decision_id,
            "customer_id": message.customer_id, "campaign": message.campaign,
            "action_id": message.action_id, "to": message.to, "fields": message.fields,
            "links": message.links, "sent_at": sent_at}


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"),
                      default=str).encode("utf-8")


def _httpx() -> Any:
    try:
        import httpx
    except ImportError:  # pragma: no cover - depends on the environment
        raise OneToOneError("Web hooks need httpx.",
                            hint="pip install 'onetoone[channels]'.") from None
    return httpx


class Webhook:
    """A channel that posts each message to ``config.url``, signed, through one HTTP client
    kept open until :meth:`close`."""

    def __init__(self, name: str, config: ChannelConfig, *, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], float] = time.time) -> None:
        if not config.url or not config.secret_env:
            raise ConfigError(f"[channels.{name}] of type webhook needs url and secret_env.")
        self._httpx = _httpx()
        try:
            scheme = self._httpx.URL(config.url).scheme
        except self._httpx.InvalidURL:
            scheme = ""
        if scheme not in ("http", "https"):
            raise ConfigError(f"The url of [channels.{name}] is not an http:// or https:// "
                              "URL.")
        self.name, self.url, self.secret_env = name, config.url, config.secret_env
        self.client: httpx.Client = client or self._httpx.Client(
            timeout=config.timeout_seconds, follow_redirects=False,
            headers={"User-Agent": "onetoone-webhook"})
        self.sleep, self.clock, self.now = sleep, clock, now
        #: no request before this ``clock()`` time (a receiver's Retry-After)
        self.not_before = 0.0

    def send(self, messages: list[Message]) -> list[Outcome]:
        secret = self._secret()
        outcomes: list[Outcome] = []
        for index, message in enumerate(messages):
            wait = self.not_before - self.clock()
            if wait > 0:
                self.sleep(wait)
            try:
                outcomes.append(self._post(message, secret))
            except self._httpx.TimeoutException as exc:
                # the receiver is slow: the rest of the batch is tried again later instead of
                # each waiting its own timeout
                reason = f"{type(exc).__name__}: no answer in time"
                outcomes += [Outcome(m.delivery_id, "retry", error=reason)
                             for m in messages[index:]]
                break
            except self._httpx.TransportError as exc:
                outcomes.append(Outcome(message.delivery_id, "retry",
                                        error=f"{type(exc).__name__}: {exc}"[:300]))
        return outcomes

    def close(self) -> None:
        self.client.close()

    def _secret(self) -> bytes:
        value = os.environ.get(self.secret_env)
        if not value:
            raise ChannelError(f"the environment variable {self.secret_env} holding the "
                               f"signing secret of the web hook '{self.name}' is not set",
                               permanent=True)
        return value.encode("utf-8")

    def _post(self, message: Message, secret: bytes) -> Outcome:
        stamp = int(self.now())
        timestamp = str(stamp)
        sent_at = datetime.fromtimestamp(stamp, UTC).isoformat().replace("+00:00", "Z")
        body = _json(payload(message, sent_at))
        response = self.client.post(self.url, content=body, headers={
            "Content-Type": "application/json",
            "X-Onetoone-Timestamp": timestamp,
            "X-Onetoone-Signature": sign(secret, timestamp, body),
            "X-Onetoone-Delivery": message.delivery_id,
        })
        code = response.status_code
        said = f"HTTP {code} {response.reason_phrase}".strip()
        if 200 <= code < 300:
            return Outcome(message.delivery_id, "sent",
                           provider_id=response.headers.get("X-Request-Id"))
        if code in RETRY_STATUSES or code >= 500:
            delay = _retry_after(response.headers.get("Retry-After"), self.now())
            if delay is not None:
                delay = min(delay, MAX_RETRY_AFTER)
                self.not_before = max(self.not_before, self.clock() + delay)
                said += f" (retry after {delay:g} s)"
            return Outcome(message.delivery_id, "retry", error=said)
        if code == 410:
            said += ": the receiver no longer takes these messages"
        elif 300 <= code < 400:
            said += ": redirects are not followed (set url to the final address)"
        return Outcome(message.delivery_id, "failed", error=said)


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def dead_letters(workspace: Path, channel: str) -> Callable[[list[Message], str], None]:
    """The ``dead_letters`` of a :class:`~onetoone.channels.delivery.Deliverer`: appends each
    message to ``outbox/dead/<channel>.jsonl`` under ``workspace`` (readable by its owner
    only), one JSON object a line: the web hook's payload without ``sent_at``, with
    ``channel``, ``error`` and ``dead_at``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in channel) or "_"
    path = workspace / "outbox" / "dead" / f"{safe}.jsonl"

    def keep(messages: list[Message], error: str) -> None:
        dead_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        lines = b"".join(_json({**{k: v for k, v in payload(m, "").items() if k != "sent_at"},
                                "channel": channel, "error": error, "dead_at": dead_at})
                         + b"\n" for m in messages)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(lines)

    return keep
