"""Benchmark of the decision service: decision latency and throughput, durable event ingestion.

Starts ``onetoone serve`` on a fresh workspace (loopback), seeds customers through the events
API, then measures, in the same run and with the same load generator (httpx, asyncio):

* decision latency (p50/p99) at fixed request rates (open loop) and throughput at increasing
  concurrency (closed loop), side by side with the bare route ``GET /v1/ping`` of the same app;
* events acknowledged durably per second, in batches, at increasing concurrency.

Usage: ``python benchmarks/service.py [--customers 10000] [--events 200000]``. Figures go to
docs/service.md ("Benchmarks"); nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from onetoone import Workspace
from onetoone.api.keys import create_key

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
    return float(np.percentile(np.array(values) * 1000, q))


async def _open_loop(client: httpx.AsyncClient, make: object, rate: float,
                     seconds: float) -> tuple[list[float], int]:
    """Requests started at a fixed rate; latency of each, and the errors."""
    latencies: list[float] = []
    errors = 0
    interval = 1.0 / rate
    start = time.perf_counter()

    async def one(i: int) -> None:
        nonlocal errors
        t0 = time.perf_counter()
        try:
            r = await make(client, i)  # type: ignore[operator]
        except httpx.TransportError:
            errors += 1
            return
        latencies.append(time.perf_counter() - t0)
        if r.status_code != 200:
            errors += 1

    tasks = []
    n = int(rate * seconds)
    for i in range(n):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return latencies, errors


async def _closed_loop(client: httpx.AsyncClient, make: object, concurrency: int,
                       seconds: float) -> tuple[float, list[float]]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def worker() -> None:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            await make(client, next(counter))  # type: ignore[operator]
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - started), latencies


async def run(url: str, key: str, customers: int, events: int) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60,
                                 limits=limits) as client:
        # -- event ingestion, in batches ---------------------------------------------------
        print("\n## Events acknowledged durably (batches of 500)\n")
        print("| concurrent requests | events | seconds | events/s |")
        print("|---|---|---|---|")
        sent = 0
        for concurrency in (1, 4, 16):
            total = events // 3
            batches = [[{"event_id": f"ev-{concurrency}-{b}-{i}",
                         "occurred_at": "2026-11-24T10:00:00+01:00",
                         "customer": {"email": f"client{(b * 500 + i) % customers}@exemple.fr"},
                         "channel": "web", "type": "page_view", "properties": {"page": "/"}}
                        for i in range(500)] for b in range(total // 500)]
            queue = list(batches)
            t0 = time.perf_counter()

            async def sender(queue: list[list[dict[str, object]]] = queue) -> None:
                while queue:
                    batch = queue.pop()
                    r = await client.post("/v1/events", json={"events": batch})
                    assert r.status_code == 200, r.text

            await asyncio.gather(*(sender() for _ in range(concurrency)))
            seconds = time.perf_counter() - t0
            n = len(batches) * 500
            sent += n
            print(f"| {concurrency} | {n:,} | {seconds:.1f} | {n / seconds:,.0f} |")

        async def decide(c: httpx.AsyncClient, i: int) -> httpx.Response:
            return await c.post("/v1/decisions", json={
                "customer": {"email": f"client{i % customers}@exemple.fr"}, "channel": "web",
                "context": {"page": "home"}})

        async def ping(c: httpx.AsyncClient, i: int) -> httpx.Response:
            return await c.get("/v1/ping")

        await _closed_loop(client, decide, 16, 2.0)  # warm-up

        print("\n## Latency at a fixed request rate (open loop, 10 s each)\n")
        print("| route | req/s | p50 ms | p99 ms | errors |")
        print("|---|---|---|---|---|")
        for rate in (100, 200, 400):
            for name, make in (("POST /v1/decisions", decide), ("GET /v1/ping (bare)", ping)):
                lat, errors = await _open_loop(client, make, rate, 10)
                print(f"| {name} | {rate} | {_pct(lat, 50):.1f} | {_pct(lat, 99):.1f} | "
                      f"{errors} |")

        print("\n## Throughput at increasing concurrency (closed loop, 8 s each)\n")
        print("| route | concurrency | req/s | p50 ms | p99 ms |")
        print("|---|---|---|---|---|")
        for concurrency in (1, 4, 16, 64):
            for name, make in (("POST /v1/decisions", decide), ("GET /v1/ping (bare)", ping)):
                rps, lat = await _closed_loop(client, make, concurrency, 8)
                print(f"| {name} | {concurrency} | {rps:,.0f} | {_pct(lat, 50):.1f} | "
                      f"{_pct(lat, 99):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=150_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="onetoone-bench-"))
    with Workspace.init(root, config_text=CONFIG) as ws:
        key = create_key(ws.store, "bench", ["admin"])
    port = _port()
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "onetoone.cli", "serve", "--workspace",
                             str(root), "--port", str(port)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        print(f"# onetoone service benchmark: {platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}, {args.customers:,} customers")
        asyncio.run(run(url, key, args.customers, args.events))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
