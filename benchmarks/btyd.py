"""Benchmark of the buy-till-you-die models against lifetimes 0.11.3, in one run.

    PYTHONPATH=src python benchmarks/btyd.py [--sizes 100000 1000000] [--lifetimes-python PY]

Data: CDNOW (raw transactions through ``summary_from_transactions``, calibration = 39 weeks) and
synthetic cohorts drawn from the CDNOW BG/NBD parameters (vectorised, seed 42): first purchase
uniform over the 12 weeks of Q1, calibration end at day 272, purchase times rounded to whole days
as a transaction log gives them. Both libraries get the same summaries. lifetimes does not run
with numpy 2 / pandas 3, so it runs in its own interpreter (default
/tmp/lifetimes-venv/bin/python, ``pip install lifetimes==0.11.3 "numpy<2" "pandas<2"
"scipy<1.12"``) in a subprocess; without it, its columns are skipped with the reason printed.
Log-likelihoods of both libraries' estimates are evaluated by onetoone's likelihood on the
original time scale (lifetimes rescales time internally). Never a dependency of the package.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from onetoone.differentiate.btyd import BGNBD, GammaGamma, ParetoNBD, clv, summary_from_transactions
from onetoone.differentiate.btyd import bgnbd as bgnbd_module
from onetoone.differentiate.btyd import paretonbd as pnbd_module

CDNOW_BGNBD = {"r": 0.2425945, "alpha": 4.4136019, "a": 0.7929199, "b": 2.4258881}
CDNOW_GG = {"p": 6.25, "q": 3.74, "gamma": 15.44}
ROOT = Path(__file__).resolve().parents[1]

LIFETIMES_SCRIPT = textwrap.dedent(
    """
    import json, sys, time, warnings
    warnings.simplefilter("ignore")
    import numpy as np, pandas as pd
    from lifetimes import BetaGeoFitter, ParetoNBDFitter, GammaGammaFitter
    data = np.load(sys.argv[1]); todo = json.loads(sys.argv[2]); out = {}
    x, tx, T = (pd.Series(data[k]) for k in ("x", "t_x", "T"))
    if "bgnbd" in todo:
        t0 = time.perf_counter(); m = BetaGeoFitter().fit(x, tx, T)
        out["bgnbd_time"] = time.perf_counter() - t0
        out["bgnbd_params"] = [float(m.params_[k]) for k in ("r", "alpha", "a", "b")]
        if "score" in todo:
            mv = pd.Series(data["m"]); rep = x > 0
            g = GammaGammaFitter().fit(x[rep], mv[rep])
            t0 = time.perf_counter()
            m.conditional_probability_alive(x, tx, T)
            m.conditional_expected_number_of_purchases_up_to_time(52, x, tx, T)
            g.customer_lifetime_value(m, x, tx, T, mv, time=12, discount_rate=0.01, freq="W")
            out["score_time"] = time.perf_counter() - t0
            nan = np.isnan(m.conditional_probability_alive(x, tx, T)).sum()
            out["score_nan"] = int(nan)
    if "pnbd" in todo:
        t0 = time.perf_counter(); m = ParetoNBDFitter().fit(x, tx, T)
        out["pnbd_time"] = time.perf_counter() - t0
        out["pnbd_params"] = [float(m.params_[k]) for k in ("r", "alpha", "s", "beta")]
    print(json.dumps(out))
    """
)


def simulate_bgnbd(n: int, params: dict[str, float], seed: int = 42) -> pd.DataFrame:
    """Customers from the BG/NBD story (Fader, Hardie & Lee 2005), vectorised, in weeks.

    Given lambda, p and T: K ~ Poisson(lambda T) purchase opportunities, the customer drops out
    after the N-th repeat purchase, N ~ Geometric(p); x = min(K, N) and t_x is the x-th of K
    uniform times on (0, T), i.e. T * Beta(x, K - x + 1). Spend from the Gamma-Gamma model.
    """
    rng = np.random.default_rng(seed)
    first_day = rng.integers(0, 84, size=n)
    t_days = (272 - first_day).astype(float)
    big_t = t_days / 7.0
    lam = rng.gamma(params["r"], 1.0 / params["alpha"], size=n)
    p = rng.beta(params["a"], params["b"], size=n)
    k = rng.poisson(lam * big_t)
    x = np.minimum(k, rng.geometric(p))
    pos = x > 0
    frac = np.zeros(n)
    frac[pos] = rng.beta(x[pos], k[pos] - x[pos] + 1)
    t_x_days = np.where(pos, np.clip(np.ceil(frac * t_days), 1, t_days), 0.0)
    nu = rng.gamma(CDNOW_GG["q"], 1.0 / CDNOW_GG["gamma"], size=n)
    zbar = np.where(
        pos, rng.gamma(CDNOW_GG["p"] * np.maximum(x, 1), 1.0) / nu / np.maximum(x, 1), 0
    )
    return pd.DataFrame({"x": x.astype(float), "t_x": t_x_days / 7.0, "T": big_t, "m": zbar})


def run_lifetimes(python: str, data: pd.DataFrame, todo: list[str]) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.npz")
        np.savez(path, **{c: data[c].to_numpy() for c in data.columns})
        script = os.path.join(tmp, "run.py")
        Path(script).write_text(LIFETIMES_SCRIPT)
        proc = subprocess.run(
            [python, script, path, json.dumps(todo)], capture_output=True, text=True, check=False
        )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def ll_bgnbd(params: list[float], data: pd.DataFrame) -> float:
    d = bgnbd_module._Data.build(
        data["x"].to_numpy(), data["t_x"].to_numpy(), data["T"].to_numpy(), np.ones(len(data))
    )
    return bgnbd_module._loglik(np.array(params), d)[0]


def ll_pnbd(params: list[float], data: pd.DataFrame) -> float:
    d = pnbd_module._Data.build(
        data["x"].to_numpy(), data["t_x"].to_numpy(), data["T"].to_numpy(), np.ones(len(data))
    )
    return pnbd_module._loglik(np.array(params), d)


def cdnow() -> pd.DataFrame | None:
    base = Path(os.environ.get("ONETOONE_SHARED_DATA", ROOT / ".." / "shared" / "data"))
    raw = base / "cdnow" / "CDNOW_sample.txt"
    if not raw.exists():
        print(f"CDNOW skipped: {raw} not found")
        return None
    tx = pd.read_csv(
        raw, sep=r"\s+", header=None, names=["cid", "id", "date", "cds", "usd"], dtype={"date": str}
    )
    s = summary_from_transactions(
        tx,
        "id",
        "date",
        "usd",
        observation_period_end="1998-06-30",
        calibration_period_end="1997-09-30",
        datetime_format="%Y%m%d",
    )
    return pd.DataFrame(
        {
            "x": s["frequency"].astype(float),
            "t_x": s["recency"],
            "T": s["T"],
            "m": s["monetary_value"],
        }
    ).reset_index(drop=True)


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - t0


def score(models: list[Any], gg: GammaGamma, data: pd.DataFrame) -> None:
    """All per-customer predictions: P(alive), E[X(T, T+52)] and 12-month CLV."""
    x, t_x, big_t = data["x"], data["t_x"], data["T"]
    for model in models:
        model.p_alive(x, t_x, big_t)
        model.expected_purchases(52, x, t_x, big_t)
        clv(model, gg, x, t_x, big_t, data["m"], time_unit="week")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--lifetimes-python", default="/tmp/lifetimes-venv/bin/python")
    parser.add_argument(
        "--lifetimes-pnbd-max",
        type=int,
        default=100_000,
        help="largest cohort on which lifetimes' Pareto/NBD is run (slow)",
    )
    args = parser.parse_args()
    have_lifetimes = Path(args.lifetimes_python).exists()
    if not have_lifetimes:
        print(f"lifetimes skipped: no interpreter at {args.lifetimes_python}")

    datasets: list[tuple[str, pd.DataFrame]] = []
    c = cdnow()
    if c is not None:
        datasets.append(("CDNOW 2,357", c))
    for n in args.sizes:
        datasets.append((f"synthetic {n:,}", simulate_bgnbd(n, CDNOW_BGNBD)))

    rows = []
    for name, data in datasets:
        x, t_x, big_t = data["x"], data["t_x"], data["T"]
        bg, t_bg = timed(BGNBD().fit, x, t_x, big_t)
        pn, t_pn = timed(ParetoNBD().fit, x, t_x, big_t)
        row: dict[str, object] = {
            "data": name,
            "unique rows": bg.n_unique_,
            "BG/NBD s": t_bg,
            "BG/NBD LL": bg.log_likelihood_,
            "P/NBD s": t_pn,
            "P/NBD LL": pn.log_likelihood_,
        }
        print(name, "BG/NBD", bg.params_, "P/NBD", pn.params_, flush=True)
        if have_lifetimes:
            todo = ["bgnbd"]
            if len(data) <= args.lifetimes_pnbd_max:
                todo.append("pnbd")
            if len(data) >= 1_000_000:
                todo.append("score")
            lt = run_lifetimes(args.lifetimes_python, data, todo)
            print(name, "lifetimes", lt, flush=True)
            if "error" in lt:
                row["lifetimes"] = lt["error"]
            if "bgnbd_time" in lt:
                row["lt BG/NBD s"] = lt["bgnbd_time"]
                row["lt BG/NBD LL"] = ll_bgnbd(lt["bgnbd_params"], data)  # type: ignore[arg-type]
            if "pnbd_time" in lt:
                row["lt P/NBD s"] = lt["pnbd_time"]
                row["lt P/NBD LL"] = ll_pnbd(lt["pnbd_params"], data)  # type: ignore[arg-type]
            if "score_time" in lt:
                row["lt score s"] = lt["score_time"]
                row["lt score NaN"] = lt["score_nan"]
        if len(data) >= 1_000_000:
            rep = x > 0
            gg = GammaGamma().fit(x[rep], data["m"][rep])

            row["score s BG/NBD"] = timed(score, [bg], gg, data)[1]
            row["score s P/NBD"] = timed(score, [pn], gg, data)[1]
        rows.append(row)

    table = pd.DataFrame(rows).set_index("data")
    with pd.option_context(
        "display.width", 200, "display.max_columns", 30, "display.float_format", "{:.3f}".format
    ):
        print(table.T)
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, pandas {pd.__version__}")


if __name__ == "__main__":
    main()
