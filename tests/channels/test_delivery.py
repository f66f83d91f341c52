"""The delivery loop: rate limit, retries with doubling backoff, deliveries rows, dead letters
(a fake channel, a fake clock and sleep: no real waiting)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from onetoone.channels.base import ChannelError, Message, Outcome
from onetoone.channels.delivery import Deliverer, Limits


def _message(n: int) -> Message:
    return Message(delivery_id=f"d{n}", decision_id=f"dec{n}", customer_id=f"c{n}",
                   campaign="spring", channel="hooks", action_id="a1", to=f"c{n}@example.org",
                   fields={"text": "hello"})


class Clock:
    """A clock that moves only when slept on (or told to)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeChannel:
    """Answers with ``decide(message, try)``; each batch takes ``takes`` seconds of the clock."""

    name = "hooks"

    def __init__(self, clock: Clock, decide: Callable[[Message, int], Outcome] | None = None,
                 *, takes: float = 0.0) -> None:
        self.clock, self.takes = clock, takes
        self.decide = decide or (lambda m, n: Outcome(m.delivery_id, "sent", f"p-{m.delivery_id}"))
        self.batches: list[list[str]] = []
        self.tries: dict[str, int] = {}

    def send(self, messages: list[Message]) -> list[Outcome]:
        self.batches.append([m.delivery_id for m in messages])
        self.clock.now += self.takes
        outcomes = []
        for m in messages:
            self.tries[m.delivery_id] = self.tries.get(m.delivery_id, 0) + 1
            outcomes.append(self.decide(m, self.tries[m.delivery_id]))
        return outcomes

    def close(self) -> None:
        pass


class Rows:
    """The ``record`` of a Deliverer: every call, and the last row of each delivery."""

    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.last: dict[str, dict[str, Any]] = {}

    def __call__(self, rows: list[dict[str, Any]]) -> None:
        self.calls.append(rows)
        self.last.update({r["delivery_id"]: r for r in rows})


def _deliverer(channel: FakeChannel, clock: Clock, rows: Rows, **limits: Any) -> Deliverer:
    return Deliverer(channel, Limits(**limits), rows, sleep=clock.sleep, clock=clock)


def test_sent_messages_are_queued_then_recorded_sent() -> None:
    clock, rows = Clock(), Rows()
    tally = _deliverer(FakeChannel(clock, takes=1.0), clock, rows).deliver(
        [_message(1), _message(2)])
    assert tally.summary() == {"sent": 2, "failed": 0, "retried": 0, "errors": {}, "dead": 0}
    assert [r["status"] for r in rows.calls[0]] == ["queued", "queued"]
    assert {r["attempts"] for r in rows.calls[0]} == {0}
    row = rows.last["d1"]
    assert (row["status"], row["attempts"], row["provider_id"]) == ("sent", 1, "p-d1")
    assert row["sent_at"] is not None and row["customer_id"] == "c1"
    assert row["created_at"] == rows.calls[0][0]["created_at"]


def test_rate_limit_stretches_each_batch_to_its_floor() -> None:
    clock, rows = Clock(), Rows()
    channel = FakeChannel(clock, takes=0.25)
    _deliverer(channel, clock, rows, rate_per_second=100.0).deliver(
        [_message(n) for n in range(250)])
    assert [len(b) for b in channel.batches] == [100, 100, 50]
    # 100 messages at 100 a second take 1 s: the batch took 0.25 s, so 0.75 s of sleep
    assert clock.sleeps == pytest.approx([0.75, 0.75, 0.25])
    assert clock.now == pytest.approx(2.5)


def test_no_sleep_when_the_channel_is_slower_than_the_rate() -> None:
    clock, rows = Clock(), Rows()
    _deliverer(FakeChannel(clock, takes=3.0), clock, rows, rate_per_second=50.0).deliver(
        [_message(n) for n in range(100)])
    assert clock.sleeps == []


def test_retries_back_off_doubling_until_sent() -> None:
    clock, rows = Clock(), Rows()
    channel = FakeChannel(clock, lambda m, n: Outcome(m.delivery_id, "sent") if n == 4
                          else Outcome(m.delivery_id, "retry", error="HTTP 503"), takes=10.0)
    tally = _deliverer(channel, clock, rows, backoff_seconds=1.5, max_attempts=5).deliver(
        [_message(1)])
    assert clock.sleeps == [1.5, 3.0, 6.0]
    assert (tally.sent, tally.retried, tally.failed) == (1, 3, 0)
    assert [r["status"] for call in rows.calls for r in call] == [
        "queued", "queued", "queued", "queued", "sent"]
    assert rows.last["d1"]["attempts"] == 4


def test_only_the_messages_to_retry_are_sent_again() -> None:
    clock, rows = Clock(), Rows()
    channel = FakeChannel(clock, lambda m, n: Outcome(m.delivery_id, "retry", error="busy")
                          if m.delivery_id == "d2" and n == 1 else Outcome(m.delivery_id, "sent"),
                          takes=10.0)
    _deliverer(channel, clock, rows).deliver([_message(1), _message(2), _message(3)])
    assert channel.batches == [["d1", "d2", "d3"], ["d2"]]


def test_exhausted_retries_fail_without_dead_letters() -> None:
    clock, rows = Clock(), Rows()
    channel = FakeChannel(clock, lambda m, n: Outcome(m.delivery_id, "retry",
                                                      error="HTTP 500: boom"), takes=10.0)
    tally = _deliverer(channel, clock, rows, max_attempts=3).deliver([_message(1)])
    assert channel.tries == {"d1": 3}
    assert (tally.failed, tally.dead, tally.errors) == (1, 0, {"HTTP 500": 1})
    assert rows.last["d1"]["status"] == "failed"
    assert rows.last["d1"]["attempts"] == 3 and rows.last["d1"]["error"] == "HTTP 500: boom"


def test_dead_letters_take_the_exhausted_messages_only() -> None:
    clock, rows = Clock(), Rows()
    letters: list[tuple[list[str], str, set[str]]] = []

    def decide(m: Message, n: int) -> Outcome:
        if m.delivery_id == "d1":
            return Outcome(m.delivery_id, "sent")
        if m.delivery_id == "d2":
            return Outcome(m.delivery_id, "failed", error="HTTP 410 Gone")
        if m.delivery_id == "d3":
            return Outcome(m.delivery_id, "retry", error=f"HTTP 500 (try {n})")
        return Outcome(m.delivery_id, "retry", error="ConnectError: refused")

    def dead(messages: list[Message], error: str) -> None:
        # the rows are recorded after the dead letters are kept
        recorded = {i for i, r in rows.last.items() if r["status"] == "dead"}
        letters.append(([m.delivery_id for m in messages], error, recorded))

    channel = FakeChannel(clock, decide, takes=10.0)
    deliverer = Deliverer(channel, Limits(max_attempts=2), rows, sleep=clock.sleep,
                          clock=clock, dead_letters=dead)
    tally = deliverer.deliver([_message(n) for n in (1, 2, 3, 4)])
    assert sorted(letters) == [(["d3"], "HTTP 500 (try 2)", set()),
                               (["d4"], "ConnectError: refused", set())]
    assert {i: r["status"] for i, r in rows.last.items()} == {
        "d1": "sent", "d2": "failed", "d3": "dead", "d4": "dead"}
    assert rows.last["d3"]["attempts"] == 2 and rows.last["d3"]["error"] == "HTTP 500 (try 2)"
    assert (tally.sent, tally.failed, tally.dead, tally.retried) == (1, 3, 2, 2)


def test_messages_sharing_their_last_error_are_handed_over_together() -> None:
    clock, rows = Clock(), Rows()
    letters: list[tuple[list[str], str]] = []
    channel = FakeChannel(clock, lambda m, n: Outcome(m.delivery_id, "retry", error="HTTP 502"),
                          takes=10.0)
    Deliverer(channel, Limits(max_attempts=1), rows, sleep=clock.sleep, clock=clock,
              dead_letters=lambda ms, e: letters.append(([m.delivery_id for m in ms], e))
              ).deliver([_message(1), _message(2)])
    assert letters == [(["d1", "d2"], "HTTP 502")]
    assert clock.sleeps == []  # nothing left to retry: no backoff


def test_a_failing_dead_letter_store_leaves_the_rows_queued() -> None:
    clock, rows = Clock(), Rows()

    def broken(messages: list[Message], error: str) -> None:
        raise OSError("disk full")

    channel = FakeChannel(clock, lambda m, n: Outcome(m.delivery_id, "retry", error="HTTP 500"))
    deliverer = Deliverer(channel, Limits(max_attempts=1), rows, sleep=clock.sleep,
                          clock=clock, dead_letters=broken)
    with pytest.raises(OSError):
        deliverer.deliver([_message(1)])
    assert rows.last["d1"]["status"] == "queued"  # the next run sends it again


@pytest.mark.parametrize(("raised", "status"), [
    (ChannelError("relay refused the sender", permanent=True), "failed"),
    (ChannelError("relay busy"), "queued"),
    (ConnectionRefusedError(111, "Connection refused"), "queued"),
])
def test_an_exception_decides_for_the_whole_batch(raised: Exception, status: str) -> None:
    clock, rows = Clock(), Rows()

    class Raising(FakeChannel):
        def send(self, messages: list[Message]) -> list[Outcome]:
            super().send(messages)
            raise raised

    channel = Raising(clock)
    _deliverer(channel, clock, rows, max_attempts=2).deliver([_message(1), _message(2)])
    assert {r["status"] for r in rows.calls[1]} == {status}
    assert len(channel.batches) == (1 if status == "failed" else 2)


def test_a_message_without_an_answer_is_tried_again() -> None:
    clock, rows = Clock(), Rows()
    channel = FakeChannel(clock, takes=10.0)
    original = channel.send
    channel.send = lambda ms: original(ms)[:1]  # type: ignore[method-assign]
    tally = _deliverer(channel, clock, rows).deliver([_message(1), _message(2)])
    assert channel.batches == [["d1", "d2"], ["d2"]]
    assert (tally.sent, tally.retried) == (2, 1)
    assert rows.calls[1][1]["error"] == "no answer"


def test_cancelling_stops_before_the_next_batch() -> None:
    clock, rows = Clock(), Rows()
    channel = FakeChannel(clock, takes=10.0)
    _deliverer(channel, clock, rows).deliver([_message(n) for n in range(150)],
                                             cancelled=lambda: len(channel.batches) >= 1)
    assert [len(b) for b in channel.batches] == [100]
    assert sum(r["status"] == "sent" for r in rows.last.values()) == 100
    assert sum(r["status"] == "queued" for r in rows.last.values()) == 50
