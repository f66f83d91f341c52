"""Shared helpers for the BTYD tests: where the published data live, and simulators."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from onetoone.differentiate.btyd import summary_from_transactions

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def shared_data() -> Path:
    """<project root>/../shared/data, or $ONETOONE_SHARED_DATA."""
    env = os.environ.get("ONETOONE_SHARED_DATA")
    return Path(env) if env else PROJECT_ROOT / ".." / "shared" / "data"


def cdnow_dir() -> Path:
    path = shared_data() / "cdnow"
    if not (path / "CDNOW_sample.txt").exists():
        pytest.skip(f"CDNOW reference data not found in {path} (set ONETOONE_SHARED_DATA)")
    return path


def cdnow_transactions() -> pd.DataFrame:
    return pd.read_csv(
        cdnow_dir() / "CDNOW_sample.txt",
        sep=r"\s+",
        header=None,
        names=["customer_id", "id", "date", "n_cds", "dollars"],
        dtype={"date": str},
    )


def cdnow_summary() -> pd.DataFrame:
    """Calibration (39 weeks) and holdout summaries built from the raw CDNOW transactions."""
    return summary_from_transactions(
        cdnow_transactions(),
        "id",
        "date",
        "dollars",
        observation_period_end="1998-06-30",
        calibration_period_end="1997-09-30",
        time_unit="W",
        datetime_format="%Y%m%d",
    )


def simulate_bgnbd(n: int, r: float, alpha: float, a: float, b: float, seed: int) -> tuple:
    """BG/NBD customers (Fader, Hardie & Lee 2005 story) with T uniform on [20, 40] weeks."""
    rng = np.random.default_rng(seed)
    big_t = rng.uniform(20, 40, n)
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n)
    k = rng.poisson(lam * big_t)
    x = np.minimum(k, rng.geometric(p))
    t_x = np.zeros(n)
    pos = x > 0
    t_x[pos] = big_t[pos] * rng.beta(x[pos], k[pos] - x[pos] + 1)
    return x, t_x, big_t


def simulate_pareto(n: int, r: float, alpha: float, s: float, beta: float, seed: int) -> tuple:
    """Pareto/NBD customers (Schmittlein et al. 1987 story) with T uniform on [20, 40] weeks."""
    rng = np.random.default_rng(seed)
    big_t = rng.uniform(20, 40, n)
    lam = rng.gamma(r, 1 / alpha, n)
    mu = rng.gamma(s, 1 / beta, n)
    alive_until = np.minimum(rng.exponential(1 / mu), big_t)
    x = rng.poisson(lam * alive_until)
    t_x = np.where(x > 0, alive_until * rng.beta(np.maximum(x, 1), 1.0), 0.0)
    return x, t_x, big_t
