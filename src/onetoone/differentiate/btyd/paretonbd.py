"""Pareto/NBD model of repeat purchasing with exponential lifetimes.

Schmittlein, D. C., Morrison, D. G. & Colombo, R. (1987), "Counting your customers: who are they
and what will they do next?", Management Science 33(1), 1-24; likelihood as derived in Fader, P.
S. & Hardie, B. G. S. (2005), "A note on deriving the Pareto/NBD model and related expressions"
(eq. 19-23 there). While active a customer buys at rate lambda ~ Gamma(r, alpha); her lifetime
is exponential with rate mu ~ Gamma(s, beta).

Numerics. The note's likelihood is
    L = G(r+x) a^r b^s / G(r) [ (a+T)^-(r+x) (b+T)^-s + s (J(t_x) - J(T)) ],
    J(u) = int_u^inf (alpha+v)^-(r+x) (beta+v)^-(s+1) dv
         = (m+u)^-(r+s+x) / (r+s+x) 2F1(r+s+x, .; r+s+x+1; |alpha-beta| / (m+u)),
m = max(alpha, beta), so that 0 <= z < 1 (eq. 22-23 of the note). For many purchases the
2F1(r+s+x, r+x; ...) of the alpha < beta branch overflows (lifetimes then returns NaN). Euler's
transformation 2F1(a, b; c; z) = (1-z)^(c-a-b) 2F1(c-a, c-b; c; z) turns both branches into
2F1(1, b'; r+s+x+1; z) with the same z, a series of positive terms that stays O(1):
    J(u) = K(u) G(u) / (r+s+x),  K(u) = (alpha+u)^-(r+x) (beta+u)^-s,
    G(u) = 2F1(1, r+x; r+s+x+1; z)                         if alpha >= beta,
    G(u) = (alpha+u)/(beta+u) 2F1(1, s+1; r+s+x+1; z)      if alpha < beta,
and ln L = ... + ln K(T) + ln(1 + s/(r+s+x) [G(t_x) K(t_x)/K(T) - G(T)]), all in logs. The
bracket is >= 1, so the subtraction loses at most machine precision relative to 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import integrate, special

from onetoone.differentiate.btyd._base import (
    BTYDModel,
    FloatArray,
    as_nonnegative,
    check_counts,
    check_frt,
    check_weights,
    compress,
    wrap,
    wsum,
)

_GL_X, _GL_W = np.polynomial.legendre.leggauss(64)
_LAG_X, _LAG_W = np.polynomial.laguerre.laggauss(48)


def _log_hyp2f1_1(b: FloatArray, c: FloatArray, z: FloatArray) -> FloatArray:
    """ln 2F1(1, b; c; z) for 0 <= z < 1 and 0 < b < c.

    scipy's ``hyp2f1`` (accurate to ~1e-11 where finite) returns NaN for large b with z near 1;
    those entries are recomputed here: by the series (all terms positive) for z <= 1/2, else by
    quadrature of 2F1(1, b; c; z) = (c-1) (1-z)^e z^-(1+e) int_0^1 (1-w)^(c-2) (d+w)^-(1+e) dw,
    e = c-1-b, d = (1-z)/z: Gauss-Legendre in log(d+w) on [0, 1/2], Gauss-Laguerre in
    -log(1-w) on [1/2, 1] (relative error < 1e-8 against mpmath on a random grid).
    """
    b, c, z = np.broadcast_arrays(b, c, z)
    value = special.hyp2f1(1.0, b, c, z)
    good = np.isfinite(value) & (value > 0)
    out = np.empty(b.shape)
    out[good] = np.log(value[good])
    low = ~good & (z <= 0.5)
    if np.any(low):
        bb, cc, zz = b[low], c[low], z[low]
        term = np.ones_like(zz)
        total = np.ones_like(zz)
        for n in range(4000):
            term = term * zz * (bb + n) / (cc + n)
            total += term
            if np.all(term <= 1e-17 * total):
                break
        out[low] = np.log(total)
    high = ~good & (z > 0.5)
    if np.any(high):
        bb, cc, zz = b[high], c[high], z[high]
        eps = cc - 1.0 - bb
        d = (1.0 - zz) / zz
        y0 = np.log(d)
        half = 0.5 * (np.log(d + 0.5) - y0)
        y = y0[:, None] + half[:, None] * (_GL_X[None, :] + 1.0)
        w = np.expm1(y - y0[:, None]) * d[:, None]
        part1 = special.logsumexp(
            (cc - 2.0)[:, None] * np.log1p(-w) - eps[:, None] * y, b=_GL_W[None, :], axis=1
        ) + np.log(half)
        k = cc - 1.0
        q = np.log(2.0) + _LAG_X[None, :] / k[:, None]
        part2 = (
            special.logsumexp(
                -(1.0 + eps)[:, None] * np.log(d[:, None] - np.expm1(-q)), b=_LAG_W[None, :], axis=1
            )
            - k * np.log(2.0)
            - np.log(k)
        )
        out[high] = (
            eps * np.log1p(-zz) + np.log(k) + np.logaddexp(part1, part2) - (1.0 + eps) * np.log(zz)
        )
    return out


def _log_g(
    r: float, alpha: float, s: float, beta: float, x: FloatArray, u: FloatArray
) -> FloatArray:
    """ln G(u) (module docstring): the Euler-transformed 2F1 with 0 <= z < 1."""
    x = np.asarray(x, dtype=float)
    c = r + s + x + 1.0
    if alpha >= beta:
        z = (alpha - beta) / (alpha + u)
        return _log_hyp2f1_1(r + x, c, z)
    z = (beta - alpha) / (beta + u)
    return np.log(alpha + u) - np.log(beta + u) + _log_hyp2f1_1(np.full_like(c, s + 1.0), c, z)


def _log_k(r: float, alpha: float, s: float, beta: float, x: Any, u: Any) -> Any:
    return -(r + x) * np.log(alpha + u) - s * np.log(beta + u)


def _log_dead_odds(
    r: float,
    alpha: float,
    s: float,
    beta: float,
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,
) -> FloatArray:
    """ln( s/(r+s+x) [G(t_x) K(t_x)/K(T) - G(T)] ): log odds of having dropped out by T."""
    return _odds_from_parts(
        r,
        s,
        x,
        _log_k(r, alpha, s, beta, x, t_x),
        _log_k(r, alpha, s, beta, x, T),
        _log_g(r, alpha, s, beta, x, t_x),
        _log_g(r, alpha, s, beta, x, T),
    )


def _odds_from_parts(
    r: float,
    s: float,
    x: FloatArray,
    log_k_tx: FloatArray,
    log_k_t: FloatArray,
    log_g_tx: FloatArray,
    log_g_t: FloatArray,
) -> FloatArray:
    big_a = log_k_tx - log_k_t + log_g_tx
    delta = log_g_t - big_a  # <= 0 mathematically; = 0 when t_x = T
    gap = np.where(delta < 0, -np.expm1(np.minimum(delta, -1e-300)), 1.0)
    log_diff = np.where(delta < 0, big_a + np.log(gap), -np.inf)
    return np.asarray(np.log(s) - np.log(r + s + x) + log_diff, dtype=float)


@dataclass
class _Data:
    """Compressed rows plus the unique (x, u) pairs at which G is evaluated (u = t_x or T)."""

    x: FloatArray
    t_x: FloatArray
    T: FloatArray
    w: FloatArray
    pair_x: FloatArray
    pair_u: FloatArray
    code_tx: np.ndarray[Any, np.dtype[np.intp]]
    code_t: np.ndarray[Any, np.dtype[np.intp]]
    ux: FloatArray
    wx: FloatArray

    @classmethod
    def build(cls, x: FloatArray, t_x: FloatArray, T: FloatArray, w: FloatArray) -> _Data:
        (x, t_x, T), w = compress([x, t_x, T], w)
        n = x.size
        codes, uniques = pd.MultiIndex.from_arrays(
            [np.concatenate([x, x]), np.concatenate([t_x, T])]
        ).factorize()
        pair = uniques.to_frame(index=False)
        ux, inv = np.unique(x, return_inverse=True)
        wx = np.asarray(np.bincount(inv, weights=w, minlength=ux.size), dtype=float)
        return cls(
            x,
            t_x,
            T,
            w,
            pair.iloc[:, 0].to_numpy(dtype=float),
            pair.iloc[:, 1].to_numpy(dtype=float),
            np.asarray(codes[:n]),
            np.asarray(codes[n:]),
            ux.astype(float),
            wx,
        )


def _loglik(theta: FloatArray, d: _Data) -> float:
    """Total log-likelihood (Fader & Hardie 2005 note, eq. 22-23, transformed as above).

    K and G are evaluated once per unique (x, u) pair, the x-only terms once per unique x.
    """
    r, alpha, s, beta = (float(v) for v in theta)
    log_g = _log_g(r, alpha, s, beta, d.pair_x, d.pair_u)
    log_k = _log_k(r, alpha, s, beta, d.pair_x, d.pair_u)
    log_k_t = log_k[d.code_t]
    odds = _odds_from_parts(r, s, d.x, log_k[d.code_tx], log_k_t, log_g[d.code_tx], log_g[d.code_t])
    ll_x = wsum(
        d.wx,
        special.gammaln(r + d.ux) - special.gammaln(r) + r * np.log(alpha) + s * np.log(beta),
    )
    # Floor the odds at -200: exp(-200) is negligible and denormals are ~50x slower.
    rows = log_k_t + np.logaddexp(0.0, np.maximum(odds, -200.0))
    return float(ll_x + wsum(d.w, rows))


def _one_minus_pow(k: Any, log_ratio: Any) -> Any:
    """(1 - exp(-k L)) / k, equal to L in the limit k -> 0 (s = 1 in eq. 21 and 27 of the note)."""
    k = np.asarray(k, dtype=float)
    small = np.abs(k) < 1e-10
    k_safe = np.where(small, 1.0, k)
    return np.where(small, log_ratio, -np.expm1(-k_safe * log_ratio) / k_safe)


class ParetoNBD(BTYDModel):
    """Pareto/NBD model (Schmittlein, Morrison & Colombo 1987), fit by maximum likelihood.

    Learned: ``params_`` (r, alpha, s, beta), ``standard_errors_``, ``log_likelihood_``,
    ``n_customers_``. Gradient by finite differences (the 2F1 has no cheap parameter
    derivatives); the likelihood is evaluated once per unique (x, t_x) and (x, T) pair.
    """

    _param_names = ("r", "alpha", "s", "beta")

    def fit(self, frequency: Any, recency: Any, T: Any, weights: Any = None) -> ParetoNBD:
        """Fit on per-customer frequency (x), recency (t_x) and age (T); returns self."""
        x, t_x, t = (np.ravel(v) for v in check_frt(frequency, recency, T))
        w = check_weights(weights, x.size)
        d = _Data.build(x, t_x, t, w)
        mean_t = max(float(wsum(d.w, d.T) / d.w.sum()), 1e-3)
        mean_x = float(wsum(d.w, d.x) / d.w.sum())
        initial = np.array([1.0, mean_t / (1.0 + mean_x), 1.0, mean_t])
        self._maximize(lambda th: _loglik(th, d), None, initial, float(w.sum()))
        self.n_customers_ = int(np.rint(w.sum()))
        self.n_unique_ = int(d.x.size)
        return self

    def p_alive(self, frequency: Any, recency: Any, T: Any) -> Any:
        """P(alive | x, t_x, T) (note eq. 27 / SMC 1987 eq. 11), in logs."""
        r, alpha, s, beta = self._params()
        x, t_x, t = check_frt(frequency, recency, T)
        odds = _log_dead_odds(r, alpha, s, beta, x, t_x, t)
        return wrap(special.expit(-odds), frequency)

    def expected_purchases_new(self, t: Any) -> Any:
        """E[X(t)] = r beta / (alpha (s-1)) [1 - (beta/(beta+t))^(s-1)] (note eq. 17)."""
        r, alpha, s, beta = self._params()
        tt = as_nonnegative("t", t)
        return wrap(r * beta / alpha * _one_minus_pow(s - 1.0, np.log1p(tt / beta)), t)

    def expected_purchases(self, t: Any, frequency: Any, recency: Any, T: Any) -> Any:
        """E[X(T, T+t) | x, t_x, T] (note eq. 28, SMC 1987 eq. 22).

        = (r+x)(beta+T) / ((alpha+T)(s-1)) [1 - ((beta+T)/(beta+T+t))^(s-1)] P(alive).
        """
        r, alpha, s, beta = self._params()
        x, t_x, big_t = check_frt(frequency, recency, T)
        tt = as_nonnegative("t", t)
        alive = special.expit(-_log_dead_odds(r, alpha, s, beta, x, t_x, big_t))
        value = (
            (r + x)
            * (beta + big_t)
            / (alpha + big_t)
            * _one_minus_pow(s - 1.0, np.log1p(tt / (beta + big_t)))
        )
        return wrap(value * alive, frequency)

    def probability_of_purchases(self, n: Any, t: Any) -> Any:
        """P(X(t) = n) for a new customer (Fader & Hardie 2006 note, "Deriving an expression for
        P(X(t) = x) under the Pareto/NBD model", eq. 5 before the 2F1 closed form):

        NB(n; r, alpha/(alpha+t)) (beta/(beta+t))^s
        + s alpha^r beta^s G(r+n)/(G(r) n!) int_0^t v^n (alpha+v)^-(r+n) (beta+v)^-(s+1) dv,
        the integral by adaptive quadrature (scoring helper, not used in fitting).
        """
        r, alpha, s, beta = self._params()
        nn = check_counts("n", n)
        tt = as_nonnegative("t", t)
        nn, tt = np.broadcast_arrays(nn, tt)
        out = np.empty(nn.shape)
        for idx in np.ndindex(nn.shape):
            k, horizon = float(nn[idx]), float(tt[idx])
            log_c = (
                special.gammaln(r + k)
                - special.gammaln(r)
                - special.gammaln(k + 1)
                + r * np.log(alpha)
                + s * np.log(beta)
            )
            alive = np.exp(
                special.gammaln(r + k)
                - special.gammaln(r)
                - special.gammaln(k + 1)
                + r * np.log(alpha / (alpha + horizon))
                + special.xlogy(k, horizon / (alpha + horizon))
                + s * np.log(beta / (beta + horizon))
            )
            if horizon == 0.0:
                out[idx] = alive
                continue

            def integrand(v: float, k: float = k, log_c: float = log_c) -> float:
                return float(
                    s
                    * np.exp(
                        log_c
                        + special.xlogy(k, v)
                        - (r + k) * np.log(alpha + v)
                        - (s + 1) * np.log(beta + v)
                    )
                )

            dead, _ = integrate.quad(integrand, 0.0, horizon, limit=200, epsabs=1e-13)
            out[idx] = alive + dead
        return wrap(out, n)
