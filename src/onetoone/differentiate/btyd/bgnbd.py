"""BG/NBD: beta-geometric / negative binomial distribution model of repeat purchasing.

Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005), "'Counting your customers' the easy way: an
alternative to the Pareto/NBD model", Marketing Science 24(2), 275-284. While active, a
customer buys at Poisson rate lambda ~ Gamma(r, alpha); after every purchase she drops out with
probability p ~ Beta(a, b). Equation numbers below are the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from onetoone.differentiate.btyd._base import (
    BTYDModel,
    FloatArray,
    as_nonnegative,
    check_counts,
    check_frt,
    check_weights,
    compress,
    removable_at_one,
    wrap,
)


@dataclass
class _Data:
    """Compressed (x, t_x, T) rows and, for the terms that depend on x only, unique x."""

    x: FloatArray
    t_x: FloatArray
    T: FloatArray
    w: FloatArray
    ux: FloatArray  # unique x
    wx: FloatArray  # total weight per unique x
    repeat: np.ndarray[Any, np.dtype[np.bool_]]

    @classmethod
    def build(cls, x: FloatArray, t_x: FloatArray, T: FloatArray, w: FloatArray) -> _Data:
        (x, t_x, T), w = compress([x, t_x, T], w)
        ux, inv = np.unique(x, return_inverse=True)
        wx = np.bincount(inv, weights=w, minlength=ux.size)
        return cls(x, t_x, T, w, ux.astype(float), np.asarray(wx, dtype=float), x > 0)


def _loglik(theta: FloatArray, d: _Data, *, shift: float = 1.0) -> tuple[float, FloatArray]:
    """Total log-likelihood (eq. 6) and its gradient in (r, alpha, a, b).

    ``shift`` = 1 gives BG/NBD; ``shift`` = 0 gives MBG/NBD (Batislam et al. 2007), where the
    drop-out opportunity after the first purchase moves every index by one.
    ln L = ln G(r+x)/G(r) + r ln(alpha) + ln B(a, b+x+1-shift)/B(a, b) - (r+x) ln(alpha+T)
           + ln(1 + 1[x>0 or MBG] a/(b+x-shift) ((alpha+T)/(alpha+t_x))^(r+x)).
    """
    r, alpha, a, b = (float(v) for v in theta)
    x, w, ux, wx = d.x, d.w, d.ux, d.wx
    bx = ux + 1.0 - shift  # b + this = second beta argument
    # Terms depending on x only, summed over unique x with their total weights.
    ll_x = np.dot(
        wx,
        special.gammaln(r + ux)
        - special.gammaln(r)
        + r * np.log(alpha)
        + special.gammaln(a + b)
        + special.gammaln(b + bx)
        - special.gammaln(b)
        - special.gammaln(a + b + bx),
    )
    dig_r = special.digamma(r + ux) - special.digamma(r)
    dig_ab = special.digamma(a + b) - special.digamma(a + b + bx)
    dig_b = special.digamma(b + bx) - special.digamma(b)
    g = np.array(
        [
            np.dot(wx, dig_r) + wx.sum() * np.log(alpha),
            wx.sum() * r / alpha,
            np.dot(wx, dig_ab),
            np.dot(wx, dig_ab + dig_b),
        ]
    )
    log_at = np.log(alpha + d.T)
    log_atx = np.log(alpha + d.t_x)
    rx = r + x
    active = d.repeat if shift == 1.0 else np.ones_like(d.repeat)
    bxs = np.where(active, b + x - shift, 1.0)
    # D = log of the "dropped out after the last purchase" term relative to the "still alive" one.
    # Floor at -200: exp(-200) is negligible and keeps clear of denormals, which are ~50x slower.
    dd = np.where(
        active, np.maximum(np.log(a) - np.log(bxs) + rx * (log_at - log_atx), -200.0), -np.inf
    )
    soft = np.logaddexp(0.0, dd)
    p_dead = special.expit(dd)
    ll = ll_x + np.dot(w, soft - rx * log_at)
    inv_at = 1.0 / (alpha + d.T)
    inv_atx = 1.0 / (alpha + d.t_x)
    g[0] += np.dot(w, -log_at + p_dead * (log_at - log_atx))
    g[1] += np.dot(w, -rx * inv_at + p_dead * rx * (inv_at - inv_atx))
    g[2] += np.dot(w, p_dead) / a
    g[3] += -np.dot(w, np.where(active, p_dead / bxs, 0.0))
    return float(ll), g


def _initial(d: _Data) -> FloatArray:
    mean_t = float(np.dot(d.w, d.T) / d.w.sum())
    mean_x = float(np.dot(d.w, d.x) / d.w.sum())
    return np.array([1.0, max(mean_t, 1e-3) / (1.0 + mean_x), 1.0, 1.0])


class BGNBD(BTYDModel):
    """BG/NBD model (Fader, Hardie & Lee 2005), fit by maximum likelihood.

    Learned: ``params_`` (r, alpha, a, b), ``standard_errors_``, ``log_likelihood_`` (total, in
    the data's time unit, as printed in the paper), ``n_customers_``.
    """

    _param_names = ("r", "alpha", "a", "b")
    _shift = 1.0

    def fit(self, frequency: Any, recency: Any, T: Any, weights: Any = None) -> BGNBD:
        """Fit on per-customer frequency (x), recency (t_x) and age (T); returns self."""
        x, t_x, t = (np.ravel(v) for v in check_frt(frequency, recency, T))
        w = check_weights(weights, x.size)
        d = _Data.build(x, t_x, t, w)
        shift = self._shift
        self._maximize(
            lambda th: _loglik(th, d, shift=shift)[0],
            lambda th: _loglik(th, d, shift=shift),
            _initial(d),
            float(w.sum()),
        )
        self.n_customers_ = int(np.rint(w.sum()))
        self.n_unique_ = int(d.x.size)
        return self

    # -- predictions ---------------------------------------------------------------------------
    def p_alive(self, frequency: Any, recency: Any, T: Any) -> Any:
        """P(alive | x, t_x, T) = 1 / (1 + 1[x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))."""
        r, alpha, a, b = self._params()
        x, t_x, t = check_frt(frequency, recency, T)
        dd = np.where(
            x > 0,
            np.log(a)
            - np.log(np.where(x > 0, b + x - 1, 1.0))
            + (r + x) * (np.log(alpha + t) - np.log(alpha + t_x)),
            -np.inf,
        )
        return wrap(special.expit(-dd), frequency)

    def expected_purchases_new(self, t: Any) -> Any:
        """E[X(t)] for a customer acquired at 0 (eq. 9), with 2F1 after Euler's transformation.

        E[X(t)] = (a+b-1)/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b; a+b-1; t/(alpha+t))]
        and (1-z)^r 2F1(r, b; a+b-1; z) = (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b-1; z).
        """
        r, alpha, a, b = self._params()
        tt = as_nonnegative("t", t)
        z = tt / (alpha + tt)

        def value(a_: float) -> Any:
            hyp = special.hyp2f1(a_ + b - 1 - r, a_ - 1, a_ + b - 1, z)
            return (a_ + b - 1) / (a_ - 1) * (1 - np.exp((a_ - 1) * np.log1p(-z)) * hyp)

        return wrap(removable_at_one(value, a), t)

    def expected_purchases(self, t: Any, frequency: Any, recency: Any, T: Any) -> Any:
        """E[X(T, T+t) | x, t_x, T]: expected purchases in the next ``t`` (eq. 10).

        Uses (1-z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z) = (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z),
        z = t/(alpha+T+t), which stays finite for hundreds of purchases.
        """
        r, alpha, a, b = self._params()
        x, t_x, big_t = check_frt(frequency, recency, T)
        tt = as_nonnegative("t", t)
        z = tt / (alpha + big_t + tt)
        c = a + b + x - self._shift

        def value(a_: float) -> Any:
            hyp = special.hyp2f1(a_ + b - self._shift - r, a_ - 1, c - a + a_, z)
            return (c - a + a_) / (a_ - 1) * (1 - np.exp((a_ - 1) * np.log1p(-z)) * hyp)

        result = removable_at_one(value, a) * self._p_alive_array(x, t_x, big_t)
        return wrap(result, frequency)

    def _p_alive_array(self, x: FloatArray, t_x: FloatArray, t: FloatArray) -> FloatArray:
        return np.asarray(self.p_alive(x, t_x, t), dtype=float)

    def probability_of_purchases(self, n: Any, t: Any) -> Any:
        """P(X(t) = n) for a new customer (eq. 8); the finite sum is a regularised beta.

        P = B(a, b+n)/B(a,b) NB(n; r, alpha/(alpha+t))
            + 1[n>0] B(a+1, b+n-1)/B(a,b) I_{t/(alpha+t)}(n, r).
        """
        r, alpha, a, b = self._params()
        nn = check_counts("n", n)
        tt = as_nonnegative("t", t)
        nn, tt = np.broadcast_arrays(nn, tt)
        p = alpha / (alpha + tt)
        log_nb = (
            special.gammaln(r + nn)
            - special.gammaln(r)
            - special.gammaln(nn + 1)
            + r * np.log(p)
            + special.xlogy(nn, 1 - p)
        )
        first = np.exp(special.betaln(a, b + nn) - special.betaln(a, b) + log_nb)
        pos = nn > 0
        n_safe = np.where(pos, nn, 1.0)
        second = np.where(
            pos,
            np.exp(special.betaln(a + 1, b + n_safe - 1) - special.betaln(a, b))
            * special.betainc(n_safe, r, 1 - p),
            0.0,
        )
        return wrap(first + second, n)
