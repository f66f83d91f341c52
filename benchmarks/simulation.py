"""The decision engine replayed on simulated customers whose true response is known.

Prints, per policy (adaptive Thompson sampling, random action, static rule), the volumes, the
true incremental value, the value measured against the universal control group with its 95 %
interval, and the consent or cap violations found by independent checks: the table of
docs/service.md. ``--figure PATH`` also draws its chart (docs/service-simulation.svg).

    python benchmarks/simulation.py [--customers 10000] [--weeks 8] [--seed 0] [--figure PATH]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from onetoone.measure.simulation import compare, figure_svg


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", type=Path, help="write the chart (SVG) here")
    args = parser.parse_args()
    results = compare(customers=args.customers, weeks=args.weeks, seed=args.seed)
    rows = [{**r.row(), "decisions": r.decisions} for r in results]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(pd.DataFrame(rows).to_string(index=False))
    for r in results:
        print(f"{r.policy}: actions {r.actions}")
    if args.figure:
        args.figure.write_text(figure_svg(results), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
