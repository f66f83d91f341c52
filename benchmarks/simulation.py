"""The decision engine replayed on simulated customers whose true response is known.

Prints, per policy (adaptive Thompson sampling, random action, static rule), the volumes, the
true incremental value, the value measured against the universal control group with its 95 %
interval, and the consent or cap violations found by independent checks: the table of
docs/service.md. ``--figure PATH`` also draws its chart (docs/service-simulation.svg).

``--uplift-seeds N`` compares, over N populations, ranking by response propensity (adaptive)
with ranking by learned uplift (the uplift policy) in the second half of the weeks, once the
uplift policy has learned: true incremental value and do-not-disturbs contacted.

    python benchmarks/simulation.py [--customers 10000] [--weeks 8] [--seed 0] [--figure PATH]
    python benchmarks/simulation.py --customers 3000 --uplift-seeds 6
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from onetoone.demo.simulation import compare, figure_svg


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", type=Path, help="write the chart (SVG) here")
    parser.add_argument("--uplift-seeds", type=int, help="adaptive vs uplift over N seeds")
    args = parser.parse_args()
    if args.uplift_seeds:
        return uplift_against_propensity(args.customers, args.weeks, args.uplift_seeds)
    results = compare(customers=args.customers, weeks=args.weeks, seed=args.seed)
    rows = [{**r.row(), "decisions": r.decisions} for r in results]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(pd.DataFrame(rows).to_string(index=False))
    for r in results:
        print(f"{r.policy}: actions {r.actions}")
    if args.figure:
        args.figure.write_text(figure_svg(results), encoding="utf-8")
    return 0


def uplift_against_propensity(customers: int, weeks: int, seeds: int) -> int:
    from onetoone.demo.simulation import simulate

    half = weeks // 2
    print(f"{customers:,} customers, {weeks} weeks; weeks {half + 1}-{weeks}, after the uplift "
          "policy learned:")
    print("| seed | value, propensity | value, uplift | do-not-disturbs contacted, propensity "
          "| do-not-disturbs contacted, uplift | whole run value, propensity / uplift |")
    print("|---|---|---|---|---|---|")
    totals = [0.0] * 4
    for seed in range(seeds):
        a = simulate("adaptive", customers=customers, weeks=weeks, seed=seed)
        u = simulate("uplift", customers=customers, weeks=weeks, seed=seed)
        figures = [sum(a.weekly_value[half:]), sum(u.weekly_value[half:]),
                   sum(a.weekly_do_not_disturb[half:]), sum(u.weekly_do_not_disturb[half:])]
        totals = [t + f for t, f in zip(totals, figures, strict=True)]
        print(f"| {seed} | {figures[0]:,.0f} | {figures[1]:,.0f} | {figures[2]:,} | "
              f"{figures[3]:,} | {a.true_incremental_value:,.0f} / "
              f"{u.true_incremental_value:,.0f} |")
    mean = [t / seeds for t in totals]
    print(f"| mean | {mean[0]:,.0f} | {mean[1]:,.0f} ({mean[1] / mean[0] - 1:+.0%}) | "
          f"{mean[2]:,.0f} | {mean[3]:,.0f} ({mean[3] / mean[2] - 1:+.0%}) | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
