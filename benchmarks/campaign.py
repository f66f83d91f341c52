"""A campaign to every customer of a scored workspace, into the outbox: select, decide,
render, write one e-mail file per customer, record each delivery. Beside it, in the same run,
the peer a user would otherwise pick: ``onetoone decide --channel email`` (the same selection,
decisions and rendering, written as one CSV list for an e-mail tool, with no delivery and no
per-message state).

Each is run as its own process on a copy of the workspace, with the time and the peak memory
(resident set) of that process. The campaign's action is a service message (consent by
default on e-mail), so every customer with an e-mail address is in it, but for the contact
policy's caps and the control group.

Usage::

    python benchmarks/campaign.py --workspace DIR [--keep]   # DIR: a scored workspace
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ACTION = """
[actions.bench_notice]
issue = "service"
kind = "service"
purpose = "service"
channels = ["email"]
value = 1
prior_propensity = 0.2
[actions.bench_notice.treatments.email.fr]
subject = "{{ first_name or 'Bonjour' }}, votre espace client change"
body = "Bonjour {{ first_name or '' }}, votre espace client fait peau neuve."
html = '''<p>Bonjour {{ first_name or "" }},</p>
<p>Votre espace <a href="https://shop.example/compte">client</a> fait peau neuve.</p>'''
[actions.bench_notice.treatments.email.en]
subject = "{{ first_name or 'Hello' }}, your account is changing"
body = "Hello {{ first_name or '' }}, your account gets a new look."

[contact_policy]
quiet_hours_start = ""            # a benchmark runs at any hour
quiet_hours_end = ""

[campaigns.bench]
channel = "email"
actions = ["bench_notice"]
control_share = 0.1
"""


def _copy(source: Path, name: str, scratch: Path) -> Path:
    target = scratch / name
    target.mkdir()
    for item in ("onetoone.toml", "onetoone.duckdb"):
        shutil.copy2(source / item, target / item)
    config = target / "onetoone.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace("[api]\n", '[api]\npublic_url = "https://crm.example.com"\n', 1) \
        if "[api]\n" in text else text + '\n[api]\npublic_url = "https://crm.example.com"\n'
    config.write_text(text + ACTION, encoding="utf-8")
    return target


def _run(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak memory (GiB, resident set) of ``onetoone ARGS`` in its own
    process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([sys.executable, "-m", "onetoone.cli", *args], stdout=out,
                                stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            out.seek(0)
            raise SystemExit(f"{' '.join(args)} failed:\n{out.read().decode()[-3000:]}")
    return seconds, usage.ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", type=Path, required=True, help="a scored workspace")
    parser.add_argument("--keep", action="store_true", help="keep the copies")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="onetoone-campaign-"))
    try:
        peer = _copy(args.workspace, "decide", scratch)
        ours = _copy(args.workspace, "campaign", scratch)
        rows = []
        seconds, peak = _run(["decide", "--channel", "email", "--workspace", str(peer)])
        with next((peer / "outbound").glob("*.csv")).open(newline="", encoding="utf-8") as f:
            listed = sum(1 for _ in csv.DictReader(f))
        rows.append(("onetoone decide (CSV list, no delivery)", seconds, peak, listed))
        seconds, peak = _run(["campaign", "run", "bench", "--workspace", str(ours)])
        mails = sum(1 for _ in (ours / "outbox" / "email").rglob("*.eml"))
        rows.append(("onetoone campaign run (outbox, deliveries)", seconds, peak, mails))
        import duckdb

        with duckdb.connect(str(ours / "onetoone.duckdb"), read_only=True) as con:
            customers = con.execute("SELECT count(*) FROM customers").fetchone()[0]
            sent = con.execute("SELECT count(*) FROM deliveries WHERE status = 'sent'"
                               ).fetchone()[0]
        print(f"{customers:,} customers; {sent:,} deliveries recorded as sent")
        print(f"{'run':<45} {'seconds':>9} {'peak GiB':>9} {'messages':>10} {'per s':>8}")
        for label, secs, gib, count in rows:
            print(f"{label:<45} {secs:>9.1f} {gib:>9.2f} {count:>10,} {count / secs:>8,.0f}")
    finally:
        if args.keep:
            print(f"kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
