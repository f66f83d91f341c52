"""BG/NBD and MBG/NBD numerics: extreme parameters and customers, the compressed likelihood."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
import pytest
from _btyd_data import simulate_bgnbd
from scipy import special

from onetoone.differentiate.btyd import BGNBD, ModifiedBGNBD
from onetoone.differentiate.btyd import bgnbd as bgnbd_module
from onetoone.errors import ModelError

try:
    import mpmath
except ImportError:  # pragma: no cover - mpmath ships with sympy, not always installed
    mpmath = None


def _fixed(model_cls: type, **params: float) -> Any:
    model = model_cls()
    model.params_ = params
    return model


@functools.cache
def _ref_mean(a: float, big_b: float, k: float, u: float) -> float:
    """E[(1 - (1 + p u)^-k) / p], p ~ Beta(a, B): mpmath at 25 digits, else the a, B -> inf
    limit (1 - (1 + p u)^-k) / p with p = a / (a + B) (relative error O(1/(a+B)))."""
    if u == 0:
        return 0.0
    if mpmath is None:
        p = a / (a + big_b)
        return float(-np.expm1(-k * np.log1p(p * u)) / p)
    with mpmath.workdps(25):
        a_, b_, k_, u_ = (mpmath.mpf(float(v)) for v in (a, big_b, k, u))
        if a_ != 1 and a_ < 1000 and k_ < 1000:  # closed form (eq. 10 after Euler's transformation)
            c = a_ + b_ - 1
            z = u_ / (1 + u_)
            h = (1 + u_) ** (1 - a_) * mpmath.hyp2f1(c - k_, a_ - 1, c, z, maxterms=10**5)
            return float(c / (a_ - 1) * (1 - h))
        # Large a or r (the 2F1 has huge parameters), a = 1: the beta integral itself.
        log_norm = mpmath.loggamma(a_ + b_) - mpmath.loggamma(a_) - mpmath.loggamma(b_)

        def density_times_f(p: Any, q: Any) -> Any:  # q = 1 - p, passed exactly
            f = -mpmath.expm1(-k_ * mpmath.log1p(p * u_)) / p
            return f * mpmath.exp(log_norm + (a_ - 1) * mpmath.log(p) + (b_ - 1) * mpmath.log(q))

        # Split [0, 1] around the mass of the beta density (very narrow for large a + B); the
        # part above the mean is integrated in q = 1 - p so that q is never rounded to 0.
        mean = a_ / (a_ + b_)
        sd = mpmath.sqrt(mean * (1 - mean) / (a_ + b_ + 1))
        cuts = [mean + c * sd for c in (-30, -8, -2, 0) if 0 < mean + c * sd < 1]
        lower = [mpmath.mpf(0), *cuts]
        upper_q = sorted(
            {mpmath.mpf(0), 1 - mean}
            | {1 - (mean + c * sd) for c in (2, 8, 30) if 0 < mean + c * sd < 1}
        )
        left = mpmath.quad(lambda p: density_times_f(p, 1 - p), lower)
        right = mpmath.quad(lambda q: density_times_f(1 - q, q), upper_q)
        return float(left + right)


def _ref_p_alive(
    params: dict[str, float], shift: float, x: float, t_x: float, big_t: float
) -> float:
    r, alpha, a, b = (params[k] for k in ("r", "alpha", "a", "b"))
    if x == 0 and shift == 1.0:
        return 1.0
    log_odds = np.log(a / (b + x - shift)) + (r + x) * np.log1p((big_t - t_x) / (alpha + t_x))
    return float(special.expit(-log_odds))


EXTREME = [
    # The fit found every customer with the same drop-out probability (a, b ~ 1e6).
    pytest.param({"r": 0.2426, "alpha": 4.4136, "a": 1e6, "b": 3e6}, id="large-a-b"),
    pytest.param({"r": 0.2426, "alpha": 4.4136, "a": 3e8, "b": 1e9}, id="huge-a-b"),
    # Every customer with the same purchase rate (r, alpha ~ 1e6).
    pytest.param({"r": 1e6, "alpha": 4e6, "a": 0.79, "b": 2.43}, id="large-r-alpha"),
    pytest.param({"r": 1e6, "alpha": 4e6, "a": 1e6, "b": 3e6}, id="all-large"),
    pytest.param({"r": 0.2426, "alpha": 4.4136, "a": 1.0, "b": 2.43}, id="a-equals-1"),
    pytest.param({"r": 0.2426, "alpha": 4.4136, "a": 120.0, "b": 0.05}, id="large-a-small-b"),
]
X = np.array([0, 0, 1, 2, 26, 500, 500, 2000])
T_X = np.array([0, 0, 0.5, 30.43, 30.857, 428.0, 1.4, 521.0])
BIG_T = np.array([38.86, 0, 0.5, 38.86, 31.0, 428.0, 521.0, 521.0])  # T = 0; t_x = T


@pytest.mark.slow
@pytest.mark.parametrize("cls", [BGNBD, ModifiedBGNBD])
@pytest.mark.parametrize("params", EXTREME)
def test_predictions_finite_and_exact_for_extreme_parameters(
    cls: type, params: dict[str, float]
) -> None:
    if mpmath is None and not (params["a"] > 1e5 and params["b"] > 1e5 and params["r"] < 10):
        pytest.skip("needs mpmath for a reference (the limit form holds for large a, b only)")
    model = _fixed(cls, **params)
    shift = 1.0 if cls is BGNBD else 0.0
    horizons = np.array([0.0, 1e-6, 1.0, 52.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        alive = model.p_alive(X, T_X, BIG_T)
        future = [model.expected_purchases(t, X, T_X, BIG_T) for t in (1.0, 52.0)]
        new = model.expected_purchases_new(horizons)
    for values in (alive, new, *future):
        assert np.all(np.isfinite(values)) and np.all(values >= 0)
    r, alpha, a, b = (params[k] for k in ("r", "alpha", "a", "b"))
    for i in range(X.size):
        ref_alive = _ref_p_alive(params, shift, X[i], T_X[i], BIG_T[i])
        assert alive[i] == pytest.approx(ref_alive, rel=1e-10)
        mean = _ref_mean(a, b + X[i] + 1 - shift, r + X[i], 52.0 / (alpha + BIG_T[i]))
        # Without mpmath the reference is the a, b -> infinity limit, itself off by O(1/a).
        tol = 1e-8 if mpmath is not None else 1e-6
        assert future[1][i] == pytest.approx(mean * ref_alive, rel=tol), i
    first = b / (a + b) if shift == 0.0 else 1.0  # MBG/NBD: may drop out at the first purchase
    expected_new = [first * _ref_mean(a, b + 1 - shift, r, t / alpha) for t in horizons]
    np.testing.assert_allclose(new, expected_new, rtol=1e-8 if mpmath is not None else 1e-6)


def test_large_a_b_tends_to_the_common_p_limit() -> None:
    # a, b -> inf with a/(a+b) = 1/4: every customer drops out with p = 1/4 after a purchase.
    model = _fixed(BGNBD, r=0.2426, alpha=4.4136, a=1e9, b=3e9)
    p, k, u = 0.25, 0.2426 + 2, 52 / (4.4136 + 38.86)
    limit = -np.expm1(-k * np.log1p(p * u)) / p
    alive = model.p_alive(2, 30.43, 38.86)
    assert model.expected_purchases(52, 2, 30.43, 38.86) == pytest.approx(limit * alive, rel=1e-7)


def test_scoring_skips_nothing_when_the_fit_is_degenerate() -> None:
    # Simulated with a common p: the fit drives a and b up; predictions must stay finite.
    x, t_x, big_t = simulate_bgnbd(3_000, 0.5, 5.0, 2e6, 6e6, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = BGNBD(penalizer_coef=0.0)
        try:
            model.fit(x, t_x, big_t)
        except ModelError:  # a refusal to fit is fine; NaN predictions are not
            return
        for values in (
            model.p_alive(x, t_x, big_t),
            model.expected_purchases(52, x, t_x, big_t),
            model.expected_purchases_new(np.array([1.0, 52.0])),
        ):
            assert np.all(np.isfinite(values))


# --- the compressed likelihood is exactly the per-customer one ------------------------------
def _per_customer_loglik(theta: np.ndarray, x: Any, t_x: Any, big_t: Any, shift: float) -> float:
    """Eq. 6 customer by customer, no grouping (mpmath-free reference)."""
    r, alpha, a, b = theta
    total = 0.0
    for xi, ti, big in zip(x, t_x, big_t, strict=True):
        base = (
            special.gammaln(r + xi)
            - special.gammaln(r)
            + r * np.log(alpha)
            + special.betaln(a, b + xi + 1 - shift)
            - special.betaln(a, b)
            - (r + xi) * np.log(alpha + big)
        )
        extra = 0.0
        if xi > 0 or shift == 0.0:
            extra = np.log1p(a / (b + xi - shift) * ((alpha + big) / (alpha + ti)) ** (r + xi))
        total += base + extra
    return float(total)


@pytest.mark.parametrize("shift", [1.0, 0.0])
def test_compressed_loglik_gradient_and_hessian(shift: float) -> None:
    x, t_x, big_t = simulate_bgnbd(1_500, 0.5, 5.0, 0.8, 2.5, seed=9)
    big_t = np.round(big_t * 7) / 7  # whole days: many repeated T, as in transaction logs
    x, t_x, big_t = np.r_[x, x[:300]], np.r_[t_x, t_x[:300]], np.r_[big_t, big_t[:300]]
    d = bgnbd_module._Data.build(x, t_x, big_t, np.ones(x.size))
    assert d.w.size < x.size and d.w.sum() == x.size
    for theta in ([0.5, 5.0, 0.8, 2.5], [0.2, 0.3, 3.0, 0.4], [2.0, 20.0, 1e3, 3e3]):
        th = np.array(theta)
        ll, g, h = bgnbd_module._loglik_hess(th, d, shift=shift)
        assert ll == pytest.approx(_per_customer_loglik(th, x, t_x, big_t, shift), rel=1e-12)
        for i in range(4):
            e = np.zeros(4)
            e[i] = 1e-6 * th[i]
            up = bgnbd_module._loglik(th + e, d, shift=shift)
            down = bgnbd_module._loglik(th - e, d, shift=shift)
            assert g[i] == pytest.approx((up[0] - down[0]) / (2 * e[i]), rel=1e-5, abs=1e-3)
            np.testing.assert_allclose(
                h[i], (up[1] - down[1]) / (2 * e[i]), rtol=1e-5, atol=1e-6 * np.abs(h).max()
            )


def test_large_fit_uses_the_subsample_start_and_reaches_the_same_optimum() -> None:
    x, t_x, big_t = simulate_bgnbd(60_000, 0.5, 5.0, 0.8, 2.5, seed=21)
    d = bgnbd_module._Data.build(x, t_x, big_t, np.ones(x.size))
    assert d.thinned(bgnbd_module._WARM_ROWS) is not None  # the warm start is exercised
    fast = BGNBD().fit(x, t_x, big_t)
    ll = bgnbd_module._loglik(np.array(list(fast.params_.values())), d)[0]
    assert fast.log_likelihood_ == pytest.approx(ll, rel=1e-14)
    # Gradient at the optimum is zero to optimiser precision: no other point does better.
    for name in fast.params_:
        for step in (1.001, 0.999):
            moved = dict(fast.params_)
            moved[name] *= step
            other = bgnbd_module._loglik(np.array(list(moved.values())), d)[0]
            assert other <= fast.log_likelihood_ + 1e-9 * abs(fast.log_likelihood_)
