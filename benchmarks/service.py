"""Benchmark of the decision service: decision latency and throughput, durable event ingestion.

Starts ``onetoone serve`` on a fresh workspace (loopback) in its own process, seeds customers
through the events API, then measures from this process, in the same run and with the same load
generator:

* decision latency (p50/p99) at fixed request rates (open loop: requests are sent on schedule
  whatever the answers, and latency counts from the scheduled time, so a server that falls
  behind is not hidden by a waiting client) and throughput at increasing concurrency (closed
  loop), side by side with the bare route ``GET /v1/ping`` of the same app;
* events acknowledged durably per second, in batches, at increasing concurrency.

The load generator is a minimal HTTP/1.1 keep-alive client over asyncio (uvloop when installed)
with prebuilt requests: a few tens of microseconds of CPU per request, so that on a small
machine it takes little from the server. The server's CPU time per request is printed too.

Usage: ``python benchmarks/service.py [--customers 10000] [--events 150000] [--seconds 10]``;
``--workspace DIR --during-job score`` serves an existing workspace (the demo company, ingested
and identified) and also measures the decisions while a score job runs in the server.
Figures go to docs/service.md ("Benchmarks"); nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

from onetoone import Workspace
from onetoone.errors import NotFoundError

CONFIG = """
[workspace]
name = "bench"
[actions.retention_offer]
channels = ["email", "web"]
eligibility = "value_tier in ['top', None]"
value = 30
prior_propensity = 0.2
[actions.retention_offer.treatments.web.fr]
banner = "{{ first_name or 'Bonjour' }}, -20 % pour vous"
[actions.retention_offer.treatments.web.en]
banner = "{{ first_name or 'Hello' }}, 20% off for you"
[actions.new_collection]
channels = ["email", "web"]
value = 12
prior_propensity = 0.1
[actions.new_collection.context_weights]
"context_page == 'home'" = 1.5
[actions.loyalty_points]
channels = ["email", "web", "store"]
value = 8
prior_propensity = 0.1
[actions.delivery_apology]
kind = "service"
purpose = "service"
channels = ["email"]
eligibility = "context_late_delivery == true"
value = 100
[actions.new_collection.treatments.email.fr]
subject = "La nouvelle collection"
[actions.new_collection.treatments.email.en]
subject = "The new collection"
[contact_policy]
quiet_hours_start = ""
quiet_hours_end = ""
[control_groups]
universal_share = 0.05
[api]
log_level = "warning"
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000, q)) if values else float("nan")


def fsync_ms(folder: Path, n: int = 200) -> tuple[float, float]:
    """p50 and p99 of appending 200 bytes to a file in ``folder`` and flushing it to the disk:
    the floor of a durable commit's latency on this machine."""
    path = folder / ".fsync-probe"
    took = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(n):
            t = time.perf_counter()
            os.write(fd, b"x" * 200)
            os.fsync(fd)
            took.append(1000 * (time.perf_counter() - t))
    finally:
        os.close(fd)
        path.unlink()
    return _pct(took, 50), _pct(took, 99)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux), 0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: one request at a time, answer parsed minimally."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.need = -1
        self.status = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.need < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            self.status = int(head[9:12])
            at = head.find(b"content-length:")
            length = int(head[at + 15 : head.find(b"\r\n", at)]) if at >= 0 else 0
            self.need = end + 4 + length
        if len(self.buf) >= self.need:
            del self.buf[: self.need]
            self.need = -1
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(self.status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    async def request(self, data: bytes) -> int:
        assert self.transport is not None
        if self.closed or self.transport.is_closing():
            raise ConnectionError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        try:
            return await asyncio.wait_for(self.waiter, 60)
        except TimeoutError:
            self.transport.close()
            raise ConnectionError("no answer") from None


class Load:
    """Prebuilt requests sent over a pool of keep-alive connections."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[_Conn] = []
        self.opened = 0

    async def _get(self) -> _Conn:
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:  # the server may close an idle connection
                return conn
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(_Conn, "127.0.0.1", self.port)
        conn.transport.get_extra_info("socket").setsockopt(  # type: ignore[union-attr]
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.opened += 1
        return conn

    async def send(self, data: bytes) -> int:
        conn = await self._get()
        try:
            status = await conn.request(data)
        except ConnectionError:
            return 0
        self.idle.append(conn)
        return status

    async def open_loop(self, requests: Callable[[int], bytes], rate: float,
                        seconds: float) -> tuple[list[float], int]:
        """Requests at a fixed rate; latency of each from its scheduled time, and errors."""
        loop = asyncio.get_running_loop()
        latencies: list[float] = []
        errors = 0
        n = int(rate * seconds)
        done = loop.create_future()
        left = n
        start = loop.time() + 0.05
        offset = time.perf_counter() - loop.time()

        async def one(i: int, due: float) -> None:
            nonlocal errors, left
            # The loop's timer may fire up to a millisecond early: count from the later of
            # the scheduled time and the actual start.
            sent = time.perf_counter()
            status = await self.send(requests(i))
            latencies.append(time.perf_counter() - min(sent, due + offset))
            errors += status != 200
            left -= 1
            if left == 0:
                done.set_result(None)

        for i in range(n):
            due = start + i / rate
            loop.call_at(due, lambda i=i, due=due: loop.create_task(one(i, due)))
        await done
        return latencies, errors

    async def closed_loop(self, requests: Callable[[int], bytes], concurrency: int,
                          seconds: float) -> tuple[float, list[float], int]:
        """``concurrency`` clients, each sending its next request on the answer."""
        latencies: list[float] = []
        errors = 0
        stop = time.perf_counter() + seconds
        counter = iter(range(10**9))

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                errors += await self.send(requests(next(counter))) != 200
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(latencies) / (time.perf_counter() - started), latencies, errors


def _http(method: str, path: str, key: str, body: dict[str, object] | None = None) -> bytes:
    payload = json.dumps(body).encode() if body is not None else b""
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {key}\r\n")
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
    return (head + "\r\n").encode() + payload


async def ingest(url: str, key: str, customers: int, events: int) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        print("\n## Events acknowledged durably (batches of 500)\n")
        print("| concurrent requests | events | seconds | events/s |")
        print("|---|---|---|---|")
        for concurrency in (1, 4, 16):
            total = events // 3
            batches = [json.dumps({"events": [
                {"event_id": f"ev-{concurrency}-{b}-{i}",
                 "occurred_at": "2026-11-24T10:00:00+01:00",
                 "customer": {"email": f"client{(b * 500 + i) % customers}@exemple.fr"},
                 "channel": "web", "type": "page_view", "properties": {"page": "/"}}
                for i in range(500)]}).encode() for b in range(total // 500)]
            queue = list(batches)
            t0 = time.perf_counter()

            async def sender(queue: list[bytes] = queue) -> None:
                while queue:
                    r = await client.post("/v1/events", content=queue.pop(),
                                          headers={"Content-Type": "application/json"})
                    assert r.status_code == 200, r.text

            await asyncio.gather(*(sender() for _ in range(concurrency)))
            seconds = time.perf_counter() - t0
            n = len(batches) * 500
            print(f"| {concurrency} | {n:,} | {seconds:.1f} | {n / seconds:,.0f} |")


async def consent(url: str, key: str, emails: list[str], channel: str) -> None:
    """Every customer opts in to ``channel``, so that decisions there are contacts."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        queue = list(emails)

        async def worker() -> None:
            while queue:
                email = queue.pop()
                found = await client.get("/v1/customers", params={"identifier": f"email:{email}"})
                if found.status_code != 200:
                    continue
                r = await client.put(f"/v1/customers/{found.json()['customer_id']}/consents",
                                     json={"channel": channel, "granted": True})
                assert r.status_code == 200, r.text

        await asyncio.gather(*(worker() for _ in range(8)))


async def latency(port: int, key: str, emails: list[str], pid: int, seconds: float,
                  rates: list[int], concurrencies: list[int], job: str | None = None,
                  channel: str = "web") -> None:
    customers = len(emails)
    decisions = [_http("POST", "/v1/decisions", key, {
        "customer": {"email": email}, "channel": channel,
        "context": {"page": "home"}}) for email in emails]
    ping = _http("GET", "/v1/ping", key)
    routes: list[tuple[str, Callable[[int], bytes]]] = [
        ("POST /v1/decisions", lambda i: decisions[i % customers]),
        ("GET /v1/ping (bare)", lambda i: ping),
    ]
    load = Load(port)
    await load.closed_loop(routes[0][1], 4, 2.0)  # warm-up

    print(f"\n## Latency at a fixed request rate (open loop, {seconds:g} s each)\n")
    print("| route | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | server CPU ms/req |")
    print("|---|---|---|---|---|---|---|---|")
    for rate in rates:
        for name, make in routes:
            cpu = _cpu_seconds(pid)
            lat, errors = await load.open_loop(make, rate, seconds)
            per = 1000 * (_cpu_seconds(pid) - cpu) / max(len(lat), 1)
            print(f"| {name} | {rate} | {_pct(lat, 50):.1f} | {_pct(lat, 90):.1f} | "
                  f"{_pct(lat, 99):.1f} | {_pct(lat, 100):.1f} | {errors} | {per:.2f} |",
                  flush=True)

    if job is not None:
        await during_job(load, port, key, routes, rates[0], job)

    print(f"\n## Throughput at increasing concurrency (closed loop, {seconds:g} s each)\n")
    print("| route | concurrency | req/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    for concurrency in concurrencies:
        for name, make in routes:
            rps, lat, errors = await load.closed_loop(make, concurrency, seconds)
            print(f"| {name} | {concurrency} | {rps:,.0f} | {_pct(lat, 50):.1f} | "
                  f"{_pct(lat, 99):.1f} | {errors} |", flush=True)
    print(f"\n({load.opened} connections opened by the load generator)")


async def during_job(load: Load, port: int, key: str,
                     routes: list[tuple[str, Callable[[int], bytes]]], rate: int,
                     step: str) -> None:
    """Decisions (and the bare route, alternately, 2 s each) at ``rate`` while a ``step`` job
    runs in the server (``POST /v1/jobs``), until it ends."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers,
                                 timeout=60) as client:
        job = (await client.post("/v1/jobs", json={"step": step})).json()
        started = time.perf_counter()
        measured: dict[str, tuple[list[float], int]] = {name: ([], 0) for name, _ in routes}
        status = job["status"]
        turn = 0
        while status in ("queued", "running"):
            name, make = routes[turn % len(routes)]
            lat, errors = await load.open_loop(make, rate, 2.0)
            measured[name] = (measured[name][0] + lat, measured[name][1] + errors)
            status = (await client.get(f"/v1/jobs/{job['job_id']}")).json()["status"]
            turn += 1
        took = time.perf_counter() - started
    print(f"\n## Latency while a '{step}' job runs in the server ({took:.0f} s, {status}; "
          f"open loop, {rate} req/s, the routes alternating 2 s each)\n")
    print("| route | requests | p50 ms | p90 ms | p99 ms | max ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for name, (lat, errors) in measured.items():
        print(f"| {name} | {len(lat):,} | {_pct(lat, 50):.1f} | {_pct(lat, 90):.1f} | "
              f"{_pct(lat, 99):.1f} | {_pct(lat, 100):.1f} | {errors} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=150_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rates", default="100,200,300,400")
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--workspace", type=Path, help="An existing workspace (e.g. the demo "
                        "company, ingested and identified) instead of a fresh one; decisions "
                        "are asked by its customers' e-mails")
    parser.add_argument("--channel", default="web",
                        help="Channel of the decisions; on an outbound one (email) every "
                        "customer opts in first, so that each decision with an action is a "
                        "contact, answered once it is committed")
    parser.add_argument("--during-job", choices=["ingest", "identify", "score", "kpis"],
                        help="Also measure the decisions while this job runs in the server")
    args = parser.parse_args()
    given = args.workspace is not None
    root = args.workspace.resolve() if given else Path(tempfile.mkdtemp(prefix="onetoone-bench-"))
    if given:
        with Workspace(root) as ws:
            with contextlib.suppress(NotFoundError):  # left by a run that was stopped
                ws.keys.revoke("bench")
            key = ws.keys.create("bench", ["admin"])
            emails = [r[0] for r in ws.store.fetchall(
                "SELECT DISTINCT value FROM identifiers WHERE type = 'email' ORDER BY value "
                "LIMIT ?", [args.customers])]
    else:
        with Workspace.init(root, config_text=CONFIG) as ws:
            key = ws.keys.create("bench", ["admin"])
        emails = [f"client{i}@exemple.fr" for i in range(args.customers)]
    port = _port()
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "onetoone.cli", "serve", "--workspace",
                             str(root), "--port", str(port)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if proc.poll() is not None:
                raise SystemExit(f"onetoone serve exited with code {proc.returncode}; "
                                 f"see {log.name}")
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit(f"onetoone serve did not answer /healthz in 30 s; see {log.name}")
        try:
            import uvloop  # type: ignore[import-not-found]

            loop_name = "uvloop"
        except ImportError:
            uvloop, loop_name = None, "asyncio"
        print(f"# onetoone service benchmark: {platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}, {args.customers:,} customers, "
              f"decisions on {args.channel}, load "
              f"average {os.getloadavg()[0]:.2f} at start; client loop {loop_name}")
        if not given:
            asyncio.run(ingest(url, key, args.customers, args.events))
        if args.channel != "web":
            asyncio.run(consent(url, key, emails, args.channel))
        p50, p99 = fsync_ms(root)
        print(f"\nThe disk: a 200-byte append with fsync takes {p50:.1f} ms (p50), "
              f"{p99:.1f} ms (p99); a contact waits for one commit.")
        runner = uvloop.run if uvloop is not None else asyncio.run
        runner(latency(port, key, emails, proc.pid, args.seconds,
                       [int(r) for r in args.rates.split(",")],
                       [int(c) for c in args.concurrency.split(",")], args.during_job,
                       args.channel))
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        if given:
            with Workspace(root) as ws:
                ws.keys.revoke("bench")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
