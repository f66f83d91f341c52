"""The whole pipeline a user runs, in order, on the demo company: each step timed and profiled.

Steps (each the command a user types, run as its own process):

1. ``generate``: ``onetoone demo --customers N --generate-only`` (the silos' exports);
2. ``ingest``: ``onetoone ingest``; beside it, in the same run, the peer a user would otherwise
   pick: ``duckdb-read``, DuckDB's own ``read_csv`` / ``read_json`` of the same exports into
   plain tables (types detected, malformed rows skipped without a word, no mapping, lineage,
   identifiers or idempotency; the Windows-1252 CRM export converted to UTF-8 first, as
   DuckDB's built-in readers take UTF-8 only), not counted in the total;
3. ``identify``: ``onetoone identify``;
4. ``score``: ``onetoone score`` (value, defection, needs, monitor);
5. ``report``: ``onetoone report``;
6. ``decide``: ``onetoone decide --channel email`` (the outbound list of a campaign);
7. ``serve``: ``onetoone serve`` until it answers a decision for a customer, with every profile
   loaded (the time and memory are those of that moment; the server is then stopped).

For each step the table gives the wall time, the peak memory (resident set) of its process, and
the share of its time spent in its three slowest functions of onetoone, each with its slowest
line (a sampling profiler charges the time of a library call, a DuckDB query or a pandas merge,
to the line of ours that made it); so the next slow line is found here, not by a user.
``--no-profile`` runs without the sampling profiler.

``--scaling 50000,200000`` runs the pipeline at each size and prints, for every step, how its
time grew against the number of people: close to linear is a ratio of times near the ratio of
sizes; a step that grows faster than ``sizes ** 1.25`` is flagged.

Usage::

    python benchmarks/pipeline.py --customers 1000000 [--workspace DIR] [--keep]
    python benchmarks/pipeline.py --scaling 50000,200000
    python benchmarks/pipeline.py --workspace DIR --steps score,report   # an existing one
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

STEPS = ("generate", "duckdb-read", "ingest", "identify", "score", "report", "decide", "serve")
PEERS = ("duckdb-read",)


def _duckdb_read(workspace: Path) -> None:
    """The peer of ``ingest``: every export of ``onetoone.toml`` read by DuckDB alone."""
    import tomllib

    import duckdb

    config = tomllib.loads((workspace / "onetoone.toml").read_text(encoding="utf-8"))
    target = workspace.parent / f"{workspace.name}-duckdb-read.duckdb"
    target.unlink(missing_ok=True)
    con = duckdb.connect(str(target))
    done: set[str] = set()
    for i, (_name, source) in enumerate(config.get("sources", {}).items()):
        path = str(workspace / source["path"])
        if path in done:  # a file read by two sources (orders and their lines) is read once
            continue
        done.add(path)
        if source.get("format", "csv") in ("json", "jsonl"):
            reader = f"read_json('{path}', ignore_errors = true)"
        else:
            encoding = source.get("encoding", "utf-8").lower()
            if not encoding.startswith("utf-8"):  # DuckDB reads UTF-8 without an extension
                utf8 = target.with_name(f"{target.stem}-{i}.csv")
                with open(path, encoding=encoding, newline="") as src, \
                        open(utf8, "w", encoding="utf-8", newline="") as dst:
                    while chunk := src.read(1 << 24):
                        dst.write(chunk)
                path = str(utf8)
            reader = (f"read_csv('{path}', delim = '{source.get('delimiter', ',')}', "
                      "ignore_errors = true)")
        con.execute(f"CREATE TABLE t{i} AS SELECT * FROM {reader}")
    con.close()
_ROOT = Path(__file__).resolve().parents[1]
_PACKAGE = str(_ROOT / "src" / "onetoone")


@dataclass
class StepResult:
    step: str
    seconds: float
    peak_rss: int  # bytes
    status: int
    hot: list[tuple[str, float]] = field(default_factory=list)  # (function, seconds)
    detail: str = ""


# -- the child: one CLI command under a sampling profiler -------------------------------------
class Sampler:
    """Every ``interval`` seconds, the innermost frame of onetoone's code on the main thread.

    Each sample is charged the time since the previous one, to the line of onetoone that is
    running or waiting on a library call (a DuckDB query, a numpy or pandas call): the time of a
    slow library call lands on the line of ours that made it. Sampling, unlike tracing every
    call, costs the step almost nothing.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.lines: dict[tuple[str, int, str], float] = {}
        self._target = threading.get_ident()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        last = time.perf_counter()
        while not self._stop.wait(self.interval):
            now = time.perf_counter()
            frame = sys._current_frames().get(self._target)
            key = ("<outside onetoone>", 0, "")
            while frame is not None:
                code = frame.f_code
                if code.co_filename.startswith(_PACKAGE):
                    key = (code.co_filename, frame.f_lineno, code.co_name)
                    break
                frame = frame.f_back
            self.lines[key] = self.lines.get(key, 0.0) + now - last
            last = now


def _child(stats_path: str, argv: list[str]) -> None:
    from onetoone.cli import main

    sys.argv = ["onetoone", *argv]
    code: int | str | None = 0
    with contextlib.ExitStack() as stack:
        sampler = stack.enter_context(Sampler()) if stats_path else None
        try:
            main()
        except SystemExit as exc:
            code = exc.code
    if sampler is not None:
        Path(stats_path).write_text(json.dumps([[*k, v] for k, v in sampler.lines.items()]))
    sys.exit(code)


# -- the profiler's view ---------------------------------------------------------------------
def hot_functions(stats_path: Path, top: int = 3) -> list[tuple[str, float]]:
    """onetoone's functions by the time spent in their lines, each with its slowest line."""
    by_function: dict[tuple[str, str], dict[int, float]] = {}
    for path, line, name, seconds in json.loads(stats_path.read_text()):
        by_function.setdefault((path, name), {})[line] = seconds
    ranked = sorted(by_function.items(), key=lambda kv: sum(kv[1].values()), reverse=True)
    out = []
    for (path, name), lines in ranked[:top]:
        line = max(lines, key=lines.__getitem__)
        short = "onetoone" + path[len(_PACKAGE) :] if path.startswith(_PACKAGE) else path
        out.append((f"{short}:{line} {name}".strip(), sum(lines.values())))
    return out


# -- running one step --------------------------------------------------------------------------
def _command(argv: list[str], stats: Path | None) -> list[str]:
    return [sys.executable, __file__, "--child", str(stats or ""), "--", *argv]


def _wait(proc: subprocess.Popen[bytes]) -> tuple[int, int]:
    """Exit status and peak RSS (bytes) of a child, from wait4's resource usage."""
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss * 1024


def _start(command: list[str], log: Path, title: str) -> tuple[subprocess.Popen[bytes], float]:
    """A child process writing to ``log`` after a ``$ title`` line, and when it started."""
    with log.open("ab") as out:
        out.write(f"\n$ {title}\n".encode())
        out.flush()
        return (subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT),
                time.perf_counter())


def run_step(step: str, argv: list[str], stats: Path | None, log: Path) -> StepResult:
    proc, started = _start(_command(argv, stats), log, f"onetoone {' '.join(argv)}")
    status, peak = _wait(proc)
    seconds = time.perf_counter() - started
    hot = hot_functions(stats) if stats is not None and stats.exists() else []
    return StepResult(step, seconds, peak, status, hot)


def run_peer(step: str, workspace: Path, log: Path) -> StepResult:
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import pipeline; pipeline._duckdb_read(pipeline.Path({str(workspace)!r}))")
    proc, started = _start([sys.executable, "-c", code], log,
                           f"(peer) DuckDB read_csv / read_json of {workspace}/exports")
    status, peak = _wait(proc)
    return StepResult(step, time.perf_counter() - started, peak, status, [],
                      "DuckDB read_csv / read_json of the same exports")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _post(url: str, key: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def run_serve(workspace: Path, stats: Path | None, log: Path, timeout: float = 600) -> StepResult:
    """Start ``onetoone serve``; ready = it answers a decision for a known customer."""
    import duckdb

    def apikey(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "onetoone.cli", "apikey", *args, "--workspace",
             str(workspace)], capture_output=True, text=True, check=check)

    apikey("revoke", "pipeline-bench", check=False)  # left by a run that was stopped
    created = apikey("create", "pipeline-bench", "--scopes", "decisions")
    key = created.stdout.strip().splitlines()[-1]
    with duckdb.connect(str(workspace / "onetoone.duckdb"), read_only=True) as con:
        row = con.execute(
            "SELECT customer_id FROM customers ORDER BY customer_id "
            "LIMIT 1 OFFSET (SELECT count(*) // 2 FROM customers)"
        ).fetchone()
    customer = str(row[0]) if row else "unknown"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    argv = ["serve", "--workspace", str(workspace), "--port", str(port)]
    proc, started = _start(_command(argv, stats), log, f"onetoone {' '.join(argv)}")
    ready, peak, detail = float("nan"), 0, ""
    try:
        while time.perf_counter() - started < timeout and proc.poll() is None:
            try:
                answer = _post(
                    f"{base}/v1/decisions",
                    key,
                    {"customer": {"customer_id": customer}, "channel": "web"},
                )
            except OSError:
                time.sleep(0.1)
                continue
            ready = time.perf_counter() - started
            peak = _vm_hwm(proc.pid)
            detail = (
                f"decision {answer.get('decision_id', '?')} for one of every customer loaded"
            )
            break
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        status, _ = _wait(proc) if proc.returncode is None else (proc.returncode, 0)
        apikey("revoke", "pipeline-bench", check=False)  # two keys never share a name
    hot = hot_functions(stats) if stats is not None and stats.exists() else []
    ok = (status or 1) if math.isnan(ready) else 0
    return StepResult("serve", ready, peak, ok, hot, detail)


def run_pipeline(
    customers: int, workspace: Path, steps: list[str], seed: int, profile: bool, log: Path
) -> list[StepResult]:
    ws = str(workspace)
    argvs = {
        "generate": [
            "demo",
            "--customers",
            str(customers),
            "--seed",
            str(seed),
            "--workspace",
            ws,
            "--generate-only",
        ],
        "ingest": ["ingest", "--workspace", ws],
        "identify": ["identify", "--workspace", ws],
        "score": ["score", "--workspace", ws],
        "report": ["report", "--workspace", ws],
        "decide": ["decide", "--channel", "email", "--workspace", ws],
    }
    results = []
    profiles = workspace.parent / f"{workspace.name}-profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    for step in steps:
        stats = profiles / f"{step}.json" if profile else None
        if step == "duckdb-read":
            result = run_peer(step, workspace, log)
        elif step == "serve":
            result = run_serve(workspace, stats, log)
        else:
            result = run_step(step, argvs[step], stats, log)
        results.append(result)
        print(_row(result), flush=True)
        if result.status != 0:
            print(f"{step} failed (exit {result.status}); see {log}", file=sys.stderr)
            break
    return results


# -- printing ----------------------------------------------------------------------------------
def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def _row(r: StepResult) -> str:
    hot = "; ".join(f"{name} {sec / r.seconds:.0%}" for name, sec in r.hot) if r.seconds else ""
    status = "" if r.status == 0 else f" FAILED ({r.status})"
    name = f"({r.step}, peer)" if r.step in PEERS else r.step
    return f"| {name}{status} | {r.seconds:,.1f} s | {_gib(r.peak_rss)} | {hot or r.detail} |"


def table(results: list[StepResult], people: str) -> str:
    lines = [
        f"Pipeline {people}",
        "| step | wall time | peak memory | three slowest functions (share of the step) |",
        "|---|---|---|---|",
    ]
    lines += [_row(r) for r in results]
    ours = [r for r in results if r.step not in PEERS]
    total = sum(r.seconds for r in ours)
    peak = max((r.peak_rss for r in ours), default=0)
    lines.append(f"| **total** | **{total:,.1f} s** | **{_gib(peak)}** | |")
    return "\n".join(lines)


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[4:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--workspace", type=Path, help="Workspace folder (default: a temporary one, deleted after)"
    )
    parser.add_argument("--keep", action="store_true", help="Keep the workspace")
    parser.add_argument(
        "--steps",
        default=",".join(STEPS),
        help=f"Comma-separated steps, in order (default: {','.join(STEPS)})",
    )
    parser.add_argument("--no-profile", action="store_true", help="Run without cProfile")
    parser.add_argument("--scaling", help="Comma-separated sizes, e.g. 50000,200000")
    args = parser.parse_args()
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = set(steps) - set(STEPS)
    if unknown:
        parser.error(f"unknown steps {sorted(unknown)}; known: {', '.join(STEPS)}")
    sizes = [int(s) for s in args.scaling.split(",")] if args.scaling else [args.customers]
    runs: dict[int, list[StepResult]] = {}
    print(
        f"onetoone pipeline benchmark, {os.cpu_count()} cores, load average {_load()}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        flush=True,
    )
    for size in sizes:
        temporary = args.workspace is None or len(sizes) > 1
        parent = Path(tempfile.mkdtemp(prefix="onetoone-pipeline-")) if temporary else None
        workspace = (parent / "ws") if parent else args.workspace.resolve()
        if "generate" in steps and workspace.exists() and (workspace / "onetoone.duckdb").exists():
            parser.error(f"{workspace} already holds a workspace; drop 'generate' from --steps")
        log = workspace.parent / f"{workspace.name}-pipeline.log"
        # without 'generate', the exports already there are read, whatever their size
        people = (f"at {size:,} people" if "generate" in steps
                  else f"on the exports already in {workspace}")
        print(f"\n{workspace}, pipeline {people} (log: {log})", flush=True)
        try:
            runs[size] = run_pipeline(size, workspace, steps, args.seed, not args.no_profile, log)
        finally:
            if parent is not None and not args.keep:
                shutil.rmtree(parent, ignore_errors=True)
        print("\n" + table(runs[size], people) + f"\n\nload average after: {_load()}",
              flush=True)
    failed = any(r.status != 0 for rs in runs.values() for r in rs)
    if len(sizes) > 1:
        scaling, faster = scaling_table(runs)
        print("\n" + scaling)
        if faster:
            print(f"Faster than linear: {', '.join(faster)}.", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def scaling_table(runs: dict[int, list[StepResult]]) -> tuple[str, list[str]]:
    """How each step's time grew with the number of people, and the steps whose time grew
    faster than ``size ratio ** 1.25``."""
    (small, a), (large, b) = sorted(runs.items())[0], sorted(runs.items())[-1]
    ratio = large / small
    lines = [
        f"Scaling from {small:,} to {large:,} people (x{ratio:g})",
        "| step | time small | time large | time ratio | exponent | |",
        "|---|---|---|---|---|---|",
    ]
    faster: list[str] = []
    for ra, rb in zip(a, b, strict=False):
        growth = rb.seconds / ra.seconds if ra.seconds else float("nan")
        exponent = math.log(growth) / math.log(ratio) if growth > 0 else float("nan")
        flag = "faster than linear" if exponent > 1.25 else "close to linear or better"
        if exponent > 1.25:
            faster.append(ra.step)
        lines.append(
            f"| {ra.step} | {ra.seconds:.1f} s | {rb.seconds:.1f} s | x{growth:.2f} | "
            f"{exponent:.2f} | {flag} |"
        )
    return "\n".join(lines), faster


if __name__ == "__main__":
    sys.exit(main())
