"""BG/BB: beta-geometric / beta-Bernoulli model for discrete purchase opportunities.

Fader, P. S., Hardie, B. G. S. & Shang, J. (2010), "Customer-base analysis in a discrete-time
noncontractual setting", Marketing Science 29(6), 1086-1108. At each of n opportunities (yearly
donations, events, issues) an active customer buys with probability p ~ Beta(alpha, beta) and
stays active into the next one with probability 1 - theta, theta ~ Beta(gamma, delta). The
summaries are x (purchases after the first opportunity), t_x (opportunity of the last one, 0
when none) and n (opportunities since the first). Equation numbers are the paper's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from onetoone.differentiate.btyd._base import (
    BTYDModel,
    FloatArray,
    check_counts,
    check_weights,
    compress,
    removable_at_one,
    wrap,
    wsum,
)
from onetoone.errors import ModelError


def _check_xtn(frequency: Any, recency: Any, n_periods: Any) -> tuple[FloatArray, ...]:
    x = check_counts("frequency", frequency)
    t_x = check_counts("recency", recency)
    n = check_counts("n_periods", n_periods)
    try:
        x, t_x, n = np.broadcast_arrays(x, t_x, n)
    except ValueError as exc:
        raise ModelError("frequency, recency and n_periods must have the same length.") from exc
    if (
        np.any(x > t_x)
        or np.any(t_x > n)
        or np.any((x == 0) & (t_x > 0))
        or np.any((x > 0) & (t_x == 0))
    ):
        raise ModelError(
            "BG/BB summaries need 0 <= frequency <= recency <= n_periods, and recency = 0 exactly "
            "when frequency = 0.",
            hint="recency is the index of the last period with a purchase (1..n).",
        )
    return x.astype(float), t_x.astype(float), n.astype(float)


def _log_terms(
    theta: FloatArray, x: FloatArray, t_x: FloatArray, n: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """ln of the likelihood (eq. 5) per row, and ln of its "alive at n" term."""
    a, b, g, d = (float(v) for v in theta)
    lb_ab = special.betaln(a, b)
    lb_gd = special.betaln(g, d)
    alive = special.betaln(a + x, b + n - x) - lb_ab + special.betaln(g, d + n) - lb_gd
    # Dropped out after opportunity t_x + i, i = 0 .. n - t_x - 1.
    terms = [alive]
    for i in range(int(np.max(n - t_x)) if x.size else 0):
        valid = i < n - t_x
        term = (
            special.betaln(a + x, b + t_x - x + i)
            - lb_ab
            + special.betaln(g + 1, d + t_x + i)
            - lb_gd
        )
        terms.append(np.where(valid, term, -np.inf))
    return special.logsumexp(np.vstack(terms), axis=0), alive


class BGBB(BTYDModel):
    """BG/BB model (Fader, Hardie & Shang 2010), fit by maximum likelihood.

    Learned: ``params_`` (alpha, beta, gamma, delta), ``standard_errors_``,
    ``log_likelihood_``, ``n_customers_``.
    """

    _param_names = ("alpha", "beta", "gamma", "delta")

    def fit(self, frequency: Any, recency: Any, n_periods: Any, weights: Any = None) -> BGBB:
        """Fit on x, t_x and n (whole numbers of opportunities); returns self."""
        x, t_x, n = (np.ravel(v) for v in _check_xtn(frequency, recency, n_periods))
        w = check_weights(weights, x.size)
        (x, t_x, n), w = compress([x, t_x, n], w)

        def loglik(theta: FloatArray) -> float:
            return wsum(w, _log_terms(theta, x, t_x, n)[0])

        self._maximize(loglik, None, np.ones(4), float(w.sum()))
        self.n_customers_ = int(np.rint(w.sum()))
        self.n_unique_ = int(x.size)
        return self

    def p_alive(self, frequency: Any, recency: Any, n_periods: Any) -> Any:
        """P(active at opportunity n+1 | x, t_x, n) (eq. 11)."""
        theta = np.array(self._params())
        x, t_x, n = _check_xtn(frequency, recency, n_periods)
        log_l, alive = _log_terms(theta, x.ravel(), t_x.ravel(), n.ravel())
        g, d = theta[2], theta[3]
        # eq. 11 uses B(gamma, delta+n+1): alive at n times the chance of surviving once more.
        log_next = np.log(d + n.ravel()) - np.log(g + d + n.ravel())
        return wrap(np.exp(alive + log_next - log_l).reshape(x.shape), frequency)

    def expected_purchases_new(self, n: Any) -> Any:
        """E[X(n)] = alpha/(alpha+beta) delta/(gamma-1)
        [1 - G(gamma+delta)/G(gamma+delta+n) G(1+delta+n)/G(1+delta)] (eq. 7)."""
        a, b, g, d = self._params()
        nn = check_counts("n", n)

        def value(g_: float) -> Any:
            ratio = np.exp(
                special.gammaln(g_ + d)
                - special.gammaln(g_ + d + nn)
                + special.gammaln(1 + d + nn)
                - special.gammaln(1 + d)
            )
            return a / (a + b) * d / (g_ - 1) * (1 - ratio)

        return wrap(removable_at_one(value, g), n)

    def expected_purchases(
        self, n_future: Any, frequency: Any, recency: Any, n_periods: Any
    ) -> Any:
        """E[X(n, n+n*) | x, t_x, n]: purchases in the next n* opportunities (eq. 13).

        = 1/L B(alpha+x+1, beta+n-x)/B(alpha,beta) delta/(gamma-1) G(gamma+delta)/G(1+delta)
          [G(1+delta+n)/G(gamma+delta+n) - G(1+delta+n+n*)/G(gamma+delta+n+n*)].
        """
        theta = np.array(self._params())
        a, b, g, d = (float(v) for v in theta)
        x, t_x, n = _check_xtn(frequency, recency, n_periods)
        shape = np.broadcast_shapes(x.shape, np.shape(n_future))
        x, t_x, n = (np.broadcast_to(v, shape).ravel() for v in (x, t_x, n))
        future = np.broadcast_to(check_counts("n_future", n_future), shape).ravel()
        log_l, _ = _log_terms(theta, x, t_x, n)
        log_front = (
            special.betaln(a + x + 1, b + n - x)
            - special.betaln(a, b)
            - log_l
            + special.gammaln(g + d)
            - special.gammaln(1 + d)
        )

        def value(g_: float) -> Any:
            first = special.gammaln(1 + d + n) - special.gammaln(g_ + d + n)
            second = special.gammaln(1 + d + n + future) - special.gammaln(g_ + d + n + future)
            return d / (g_ - 1) * (np.exp(first) - np.exp(second))

        result = np.exp(log_front) * removable_at_one(value, g)
        return wrap(result.reshape(shape), frequency)
