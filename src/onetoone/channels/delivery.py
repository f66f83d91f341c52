"""Hand messages to a channel with a rate limit, retries with exponential backoff, and one
``deliveries`` row per message, written after each batch: a run that stops part way leaves
the sent messages recorded, and the next run sends only the others."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from onetoone.channels.base import Channel, ChannelError, Message, Outcome
from onetoone.clock import utcnow

#: messages handed to a channel at once
BATCH = 100
#: Writes ``deliveries`` rows (replacing the rows with the same delivery_id).
Record = Callable[[list[dict[str, Any]]], None]
#: Keeps the messages that exhausted their tries, given with their last error.
DeadLetters = Callable[[list[Message], str], None]


@dataclass
class Tally:
    """What a delivery run did (``dead``: those of ``failed`` handed to the dead letters)."""

    sent: int = 0
    failed: int = 0
    retried: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    dead: int = 0
    #: the messages that failed for good (or went to the dead letters), and those of them
    #: whose address bounced
    failed_ids: set[str] = field(default_factory=set)
    bounced_ids: set[str] = field(default_factory=set)

    def summary(self) -> dict[str, Any]:
        return {"sent": self.sent, "failed": self.failed, "retried": self.retried,
                "errors": self.errors, "dead": self.dead}


@dataclass
class Limits:
    """How a channel is driven (``[channels.NAME]``)."""

    rate_per_second: float = 50.0
    max_attempts: int = 5
    backoff_seconds: float = 1.0
    #: messages handed to the channel (and recorded) at once
    batch: int = BATCH
    #: record every message as ``queued`` before the first try: a channel whose delivery
    #: reports may come back before its send call returns (an SMS gateway) needs the row
    #: there to update; others record each message once, when it is sent or failed
    queue_first: bool = True


class Deliverer:
    """Sends messages through one channel and records each one.

    With ``dead_letters``, the messages still failing after ``max_attempts`` tries are handed
    to it (with their last error) before their rows are recorded with the status ``dead``;
    permanent failures stay ``failed``."""

    def __init__(self, channel: Channel, limits: Limits, record: Record, *,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 dead_letters: DeadLetters | None = None) -> None:
        self.channel, self.limits, self.record = channel, limits, record
        self.sleep, self.clock = sleep, clock
        self.dead_letters = dead_letters

    def deliver(self, messages: Iterable[Message],
                cancelled: Callable[[], bool] = lambda: False) -> Tally:
        tally = Tally()
        attempts: dict[str, int] = {}
        pending = list(messages)
        created = {m.delivery_id: utcnow() for m in pending}
        if self.limits.queue_first:
            self.record([_row(m, "queued", 0, None, None, created[m.delivery_id])
                         for m in pending])
        wait = self.limits.backoff_seconds
        while pending and not cancelled():
            again: list[Message] = []
            size = self.limits.batch
            for start in range(0, len(pending), size):
                if cancelled():
                    break
                batch = pending[start:start + size]
                began = self.clock()
                outcomes = self._send(batch)
                rows = []
                dead: dict[str, list[Message]] = {}
                by_id = {m.delivery_id: m for m in batch}
                for outcome in outcomes:
                    message = by_id[outcome.delivery_id]
                    tries = attempts[message.delivery_id] = attempts.get(
                        message.delivery_id, 0) + 1
                    status = outcome.status
                    if status == "failed" and (outcome.error or "").startswith("bounced"):
                        status = "bounced"  # the provider refused the address for good
                    if status == "retry" and tries >= self.limits.max_attempts:
                        status = "failed"
                        if self.dead_letters is not None:
                            status = "dead"
                            dead.setdefault(outcome.error or "failed", []).append(message)
                    if status == "sent":
                        tally.sent += 1
                    elif status in ("failed", "dead", "bounced"):
                        tally.failed += 1
                        tally.failed_ids.add(message.delivery_id)
                        if status == "bounced":
                            tally.bounced_ids.add(message.delivery_id)
                        if status == "dead":
                            tally.dead += 1
                        key = (outcome.error or "failed").split(":")[0][:80]
                        tally.errors[key] = tally.errors.get(key, 0) + 1
                    else:
                        tally.retried += 1
                        again.append(message)
                    rows.append(_row(message, "queued" if status == "retry" else status,
                                     tries, outcome.provider_id, outcome.error,
                                     created[message.delivery_id],
                                     sent=status == "sent"))
                if self.dead_letters is not None:
                    for error, letters in dead.items():
                        self.dead_letters(letters, error)
                self.record(rows)
                # the rate limit: a batch of n takes at least n / rate seconds
                spent = self.clock() - began
                floor = len(batch) / self.limits.rate_per_second
                if spent < floor:
                    self.sleep(floor - spent)
            pending = again
            if pending and not cancelled():
                self.sleep(wait)
                wait *= 2
        return tally

    def _send(self, batch: list[Message]) -> list[Outcome]:
        """The channel's outcomes; an exception fails (or retries) the whole batch."""
        try:
            outcomes = self.channel.send(batch)
        except ChannelError as exc:
            status = "failed" if exc.permanent else "retry"
            return [Outcome(m.delivery_id, status, error=str(exc)) for m in batch]
        except OSError as exc:  # the provider cannot be reached: try again later
            reason = f"{type(exc).__name__}: {exc.strerror or 'connection failed'}"
            return [Outcome(m.delivery_id, "retry", error=reason) for m in batch]
        answered = {o.delivery_id for o in outcomes}
        return [*outcomes, *(Outcome(m.delivery_id, "retry", error="no answer")
                             for m in batch if m.delivery_id not in answered)]


def _row(m: Message, status: str, attempts: int, provider_id: str | None,
         error: str | None, created: Any, *, sent: bool = False) -> dict[str, Any]:
    now = utcnow()
    return {"delivery_id": m.delivery_id, "decision_id": m.decision_id,
            "customer_id": m.customer_id, "campaign": m.campaign, "channel": m.channel,
            "action_id": m.action_id, "provider_id": provider_id, "status": status,
            "attempts": attempts, "error": error, "created_at": created,
            "sent_at": now if sent else None, "updated_at": now}
