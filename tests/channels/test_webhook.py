"""Web hooks against a real local HTTP server: signatures, retries, permanent failures and
dead letters."""

from __future__ import annotations

import json
import socket
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from onetoone.channels.base import ChannelError, Message
from onetoone.channels.delivery import Deliverer, Limits
from onetoone.channels.settings import ChannelConfig
from onetoone.channels.webhook import Webhook, _retry_after, dead_letters, sign, verify
from onetoone.errors import ConfigError

SECRET = "s3cret-for-tests"
PAYLOAD_KEYS = {"delivery_id", "decision_id", "customer_id", "campaign", "action_id", "to",
                "fields", "links", "sent_at"}


@dataclass
class Seen:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    port: int


@dataclass
class Receiver:
    """A web hook receiver: records every request and answers what it is told per delivery id
    (queued answers first, then ``always``, then 200)."""

    url: str
    requests: list[Seen] = field(default_factory=list)
    answers: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    always: dict[str, int] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def queue(self, delivery_id: str, *answers: int | tuple[int, dict[str, str]]) -> None:
        self.answers.setdefault(delivery_id, []).extend(
            a if isinstance(a, tuple) else (a, {}) for a in answers)

    def answer(self, delivery_id: str) -> tuple[int, dict[str, str]]:
        with self.lock:
            queued = self.answers.get(delivery_id)
            if queued:
                return queued.pop(0)
        return self.always.get(delivery_id, 200), {}

    def of(self, delivery_id: str) -> list[Seen]:
        return [r for r in self.requests if r.headers.get("x-onetoone-delivery") == delivery_id]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state: Receiver

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the client's connection is reused

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            delivery = headers.get("x-onetoone-delivery", "")
            with state.lock:
                state.requests.append(Seen(self.path, headers, body, self.client_address[1]))
            time.sleep(state.delay.get(delivery, 0.0))
            status, extra = state.answer(delivery)
            reply = json.dumps({"ok": 200 <= status < 300}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.send_header("X-Request-Id", f"req-{len(state.requests)}")
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that gave up waiting (the timeout test): nothing to report

    server = Server(("127.0.0.1", 0), Handler)
    state = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hooks/onetoone")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _config(url: str, **more: Any) -> ChannelConfig:
    return ChannelConfig.model_validate({"type": "webhook", "url": url,
                                         "secret_env": "HOOK_SECRET", "timeout_seconds": 5,
                                         **more})


def _message(n: int = 1) -> Message:
    return Message(delivery_id=f"del-{n}", decision_id=f"dec-{n}", customer_id=f"C{n:04d}",
                   campaign="printemps", channel="hooks", action_id="welcome",
                   to=f"https://crm.example.org/customers/C{n:04d}",
                   fields={"subject": "Bonjour Zoé", "text": "Votre offre €"},
                   links={"unsubscribe": f"https://example.org/u/tok{n}"})


@pytest.fixture
def hook(receiver: Receiver) -> Iterator[Webhook]:
    channel = Webhook("hooks", _config(receiver.url))
    yield channel
    channel.close()


def _rows() -> tuple[dict[str, dict[str, Any]], Any]:
    last: dict[str, dict[str, Any]] = {}
    return last, lambda rows: last.update({r["delivery_id"]: r for r in rows})


def test_a_message_is_a_signed_json_post(receiver: Receiver, hook: Webhook) -> None:
    before = int(time.time())
    [outcome] = hook.send([_message()])
    assert (outcome.status, outcome.provider_id) == ("sent", "req-1")
    [seen] = receiver.requests
    assert seen.path == "/hooks/onetoone"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["x-onetoone-delivery"] == "del-1"
    timestamp = seen.headers["x-onetoone-timestamp"]
    assert before <= int(timestamp) <= time.time()
    signature = seen.headers["x-onetoone-signature"]
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify(SECRET.encode(), timestamp, seen.body, signature)
    body = json.loads(seen.body)
    assert set(body) == PAYLOAD_KEYS
    assert body["customer_id"] == "C0001" and body["fields"]["subject"] == "Bonjour Zoé"
    assert body["links"] == {"unsubscribe": "https://example.org/u/tok1"}
    assert body["sent_at"].endswith("Z") and body["sent_at"][:4].isdigit()


def test_a_tampered_body_or_another_secret_fails(receiver: Receiver, hook: Webhook) -> None:
    hook.send([_message()])
    [seen] = receiver.requests
    timestamp, signature = seen.headers["x-onetoone-timestamp"], seen.headers[
        "x-onetoone-signature"]
    tampered = seen.body.replace(b"C0001", b"C0002")
    assert tampered != seen.body
    assert not verify(SECRET.encode(), timestamp, tampered, signature)
    assert not verify(b"another secret", timestamp, seen.body, signature)
    assert not verify(SECRET.encode(), str(int(timestamp) + 1), seen.body, signature)
    assert not verify(SECRET.encode(), timestamp, seen.body, "sha256=" + "0" * 64)
    assert not verify(SECRET.encode(), timestamp, seen.body, "sha256=é")
    assert verify(SECRET.encode(), timestamp, seen.body, signature.removeprefix("sha256="))


def test_verify_refuses_old_and_malformed_timestamps() -> None:
    body, secret = b'{"delivery_id":"x"}', b"k"
    stamp = 1_700_000_000
    signature = sign(secret, str(stamp), body)
    assert verify(secret, str(stamp), body, signature, now=stamp + 299)
    assert not verify(secret, str(stamp), body, signature, now=stamp + 301)
    assert not verify(secret, str(stamp), body, signature, now=stamp - 301)  # from the future
    assert verify(secret, str(stamp), body, signature, now=stamp + 3000, tolerance_s=3600)
    assert not verify(secret, str(stamp), body, signature)  # the real clock: long ago
    now_stamp = str(int(time.time()))
    assert verify(secret, now_stamp, body, sign(secret, now_stamp, body))
    for bad in ("", "17e8", "-1", "1.5", "١٧٠٠", "9" * 40):
        assert not verify(secret, bad, body, signature, now=stamp)


def test_retries_then_success(receiver: Receiver, hook: Webhook) -> None:
    receiver.queue("del-1", 500, 503)
    clock = Clock()
    last, record = _rows()
    tally = Deliverer(hook, Limits(max_attempts=5, backoff_seconds=2.0), record,
                      sleep=clock.sleep, clock=clock).deliver([_message(1), _message(2)])
    assert (tally.sent, tally.retried, tally.failed) == (2, 2, 0)
    assert [s for s in clock.sleeps if s >= 1] == [2.0, 4.0]
    assert last["del-1"]["status"] == "sent" and last["del-1"]["attempts"] == 3
    assert last["del-2"]["attempts"] == 1
    tries = receiver.of("del-1")
    assert len(tries) == 3 and len(receiver.of("del-2")) == 1
    for seen in tries:  # each try signed anew
        assert verify(SECRET.encode(), seen.headers["x-onetoone-timestamp"], seen.body,
                      seen.headers["x-onetoone-signature"])
    # one client: the requests came over the same kept-alive connection
    assert len({s.port for s in receiver.requests}) == 1


def test_429_retry_after_is_honoured(receiver: Receiver) -> None:
    receiver.queue("del-1", (429, {"Retry-After": "7"}))
    clock = Clock()
    channel = Webhook("hooks", _config(receiver.url), sleep=clock.sleep, clock=clock)
    try:
        first, second = channel.send([_message(1), _message(2)])
    finally:
        channel.close()
    assert (first.status, first.error) == ("retry", "HTTP 429 Too Many Requests "
                                                    "(retry after 7 s)")
    assert second.status == "sent"
    assert clock.sleeps == [7.0]  # the next request waited


def test_retry_after_as_a_date_and_capped() -> None:
    assert _retry_after("120", 0.0) == 120.0
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412450.0) == 30.0
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412500.0) == 0.0
    assert _retry_after("soon", 0.0) is None and _retry_after(None, 0.0) is None


@pytest.mark.parametrize(("status", "outcome"), [
    (200, "sent"), (202, "sent"), (204, "sent"), (301, "failed"), (400, "failed"),
    (401, "failed"), (404, "failed"), (408, "retry"), (410, "failed"), (422, "failed"),
    (429, "retry"), (500, "retry"), (502, "retry"), (503, "retry"),
])
def test_answers(receiver: Receiver, hook: Webhook, status: int, outcome: str) -> None:
    receiver.queue("del-1", status)
    [result] = hook.send([_message()])
    assert result.status == outcome
    if outcome != "sent":
        assert result.error is not None and result.error.startswith(f"HTTP {status}")


def test_410_is_failed_for_good(receiver: Receiver, hook: Webhook, tmp_path: Path) -> None:
    receiver.always["del-1"] = 410
    last, record = _rows()
    clock = Clock()
    tally = Deliverer(hook, Limits(max_attempts=4), record, sleep=clock.sleep, clock=clock,
                      dead_letters=dead_letters(tmp_path, "hooks")).deliver([_message()])
    assert (tally.failed, tally.dead) == (1, 0)
    assert last["del-1"]["status"] == "failed" and last["del-1"]["attempts"] == 1
    assert "410" in last["del-1"]["error"]
    assert len(receiver.requests) == 1
    assert not (tmp_path / "outbox" / "dead").exists()


def test_always_500_goes_to_the_dead_letters(receiver: Receiver, hook: Webhook,
                                             tmp_path: Path) -> None:
    receiver.always["del-1"] = 500
    last, record = _rows()
    clock = Clock()
    tally = Deliverer(hook, Limits(max_attempts=3, backoff_seconds=1.0), record,
                      sleep=clock.sleep, clock=clock,
                      dead_letters=dead_letters(tmp_path, "hooks")).deliver(
        [_message(1), _message(2)])
    assert len(receiver.of("del-1")) == 3 and len(receiver.of("del-2")) == 1
    assert (tally.sent, tally.failed, tally.dead) == (1, 1, 1)
    assert last["del-1"]["status"] == "dead" and last["del-1"]["attempts"] == 3
    assert last["del-2"]["status"] == "sent"
    path = tmp_path / "outbox" / "dead" / "hooks.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [line] = path.read_text(encoding="utf-8").splitlines()
    letter = json.loads(line)
    assert letter["delivery_id"] == "del-1" and letter["customer_id"] == "C0001"
    assert letter["channel"] == "hooks" and letter["fields"]["text"] == "Votre offre €"
    assert letter["error"].startswith("HTTP 500") and letter["dead_at"].endswith("Z")
    # appended, never replaced
    dead_letters(tmp_path, "hooks")([_message(3)], "HTTP 502 Bad Gateway")
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2


def test_a_missing_secret_is_a_permanent_error(receiver: Receiver, hook: Webhook,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOOK_SECRET")
    with pytest.raises(ChannelError) as caught:
        hook.send([_message()])
    assert caught.value.permanent and "HOOK_SECRET" in str(caught.value)
    last, record = _rows()
    Deliverer(hook, Limits(), record, sleep=lambda s: None).deliver([_message()])
    assert last["del-1"]["status"] == "failed" and "HOOK_SECRET" in last["del-1"]["error"]
    assert receiver.requests == []


def test_the_secret_value_is_never_shown(receiver: Receiver) -> None:
    channel = Webhook("hooks", _config(receiver.url))
    receiver.always["del-1"] = 500
    try:
        [outcome] = channel.send([_message()])
    finally:
        channel.close()
    assert SECRET not in (outcome.error or "") and SECRET not in repr(channel.__dict__)


def test_an_unreachable_receiver_is_tried_again() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel = Webhook("hooks", _config(f"http://127.0.0.1:{port}/x"))
    try:
        outcomes = channel.send([_message(1), _message(2)])
    finally:
        channel.close()
    assert [o.status for o in outcomes] == ["retry", "retry"]
    assert all((o.error or "").startswith("ConnectError") for o in outcomes)


def test_a_slow_receiver_puts_off_the_rest_of_the_batch(receiver: Receiver) -> None:
    receiver.delay["del-1"] = 1.5
    channel = Webhook("hooks", _config(receiver.url, timeout_seconds=0.3))
    try:
        outcomes = channel.send([_message(1), _message(2), _message(3)])
    finally:
        channel.close()
    assert [o.status for o in outcomes] == ["retry"] * 3
    assert (outcomes[0].error or "").startswith("ReadTimeout")
    assert [r.headers["x-onetoone-delivery"] for r in receiver.requests] == ["del-1"]


@pytest.mark.parametrize("url", ["ftp://example.org/x", "not a url", "/relative"])
def test_the_url_must_be_http(url: str) -> None:
    with pytest.raises(ConfigError, match=r"\[channels.hooks\]"):
        Webhook("hooks", _config(url))
