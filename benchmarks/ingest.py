"""Ingestion rate: onetoone vs DuckDB's own read_csv, same file, same run.

Writes N transaction rows (default 10 million) as a store-till CSV, then times
1. DuckDB ``read_csv`` into a plain table (types auto-detected): the reference rate;
2. ``onetoone ingest`` of the same file as a transactions source (validation, normalization,
   quarantine, lineage, idempotency, identifiers of the card holders).
Prints rows/s for both, their ratio and the peak memory of the onetoone load (streamed, so it
stays bounded whatever the file size). Usage: python benchmarks/ingest.py [--rows N]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

CONFIG = """[workspace]
name = "bench"

[sources.tickets]
entity = "transactions"
path = "tickets.csv"
delimiter = ","
[sources.tickets.columns]
source_id = "ticket_id"
occurred_at = "occurred_at"
amount = "amount"
store_id = "store"
channel = "channel"
[sources.tickets.identifiers]
loyalty_card = "card"
"""


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    chunk = 1_000_000
    with pacsv.CSVWriter(
        path,
        pa.schema(
            [
                ("ticket_id", pa.string()),
                ("card", pa.string()),
                ("occurred_at", pa.string()),
                ("amount", pa.string()),
                ("store", pa.string()),
                ("channel", pa.string()),
            ]
        ),
    ) as writer:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            ids = np.arange(start, start + n)
            cards = rng.integers(0, 1_000_000, n).astype(str)
            cards = np.where(rng.random(n) < 0.4, "", np.char.add("C", cards))
            seconds = rng.integers(0, 700 * 86400, n).astype("timedelta64[s]")
            when = np.datetime_as_string(np.datetime64("2024-01-01T00:00:00") + seconds)
            writer.write_table(
                pa.table(
                    {
                        "ticket_id": np.char.add("T", ids.astype(str)),
                        "card": cards,
                        "occurred_at": when,
                        "amount": np.round(rng.gamma(2.0, 25.0, n), 2).astype(str),
                        "store": rng.integers(1, 41, n).astype(str),
                        "channel": rng.choice(np.array(["store", "web"]), n),
                    }
                )
            )


def duckdb_reference(path: Path, work: Path) -> float:
    con = duckdb.connect(str(work / "plain.duckdb"))
    con.execute("SET enable_progress_bar = false")
    started = time.perf_counter()
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{path}')")
    elapsed = time.perf_counter() - started
    con.close()
    return elapsed


def onetoone_load(work: Path) -> tuple[float, float, int]:
    """Run the load in a child process so its peak memory is its own."""
    code = (
        "import time, resource; from onetoone import Workspace\n"
        f"ws = Workspace({str(work)!r})\n"
        "t = time.perf_counter(); [r] = ws.ingest(); e = time.perf_counter() - t\n"
        "print(e, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, r.total('rows_loaded'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    return float(out[0]), int(out[1]) / 1024, int(out[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="onetoone-bench-"))
    try:
        csv_path = work / "tickets.csv"
        started = time.perf_counter()
        write_csv(csv_path, args.rows)
        size = csv_path.stat().st_size / 1e6
        print(f"wrote {args.rows:,} rows ({size:,.0f} MB) in {time.perf_counter() - started:.1f} s")
        (work / "onetoone.toml").write_text(CONFIG, encoding="utf-8")
        reference = duckdb_reference(csv_path, work)
        elapsed, peak_mb, loaded = onetoone_load(work)
        assert loaded == args.rows, (loaded, args.rows)
        print(f"{'':24}{'seconds':>10}{'rows/s':>14}")
        print(f"{'duckdb read_csv':24}{reference:10.2f}{args.rows / reference:14,.0f}")
        print(f"{'onetoone ingest':24}{elapsed:10.2f}{args.rows / elapsed:14,.0f}")
        print(f"ratio onetoone/duckdb rate: {reference / elapsed:.2f} (goal >= 0.33)")
        print(f"onetoone peak memory: {peak_mb:,.0f} MB for a {size:,.0f} MB file")
        parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"parent peak memory: {parent:,.0f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
