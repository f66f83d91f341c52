"""MBG/NBD: the BG/NBD with a drop-out opportunity right at the first purchase.

Batislam, E. P., Denizel, M. & Filiztekin, A. (2007), "Empirical validation and comparison of
models for customer base analysis", International Journal of Research in Marketing 24(3),
201-209. Same story as the BG/NBD (Fader, Hardie & Lee 2005) except that a customer may become
inactive after every purchase *including the first one*, so customers with no repeat purchase
can be dead too (P(alive) < 1 at x = 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from onetoone.differentiate.btyd._base import (
    as_nonnegative,
    check_counts,
    check_frt,
    removable_at_one,
    wrap,
)
from onetoone.differentiate.btyd.bgnbd import BGNBD


class ModifiedBGNBD(BGNBD):
    """MBG/NBD model (Batislam et al. 2007); same contract and parameters as :class:`BGNBD`.

    ln L = ln G(r+x)/G(r) + r ln(alpha) + ln B(a, b+x+1)/B(a, b) - (r+x) ln(alpha+T)
           + ln(1 + a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x)).
    """

    _shift = 0.0

    def p_alive(self, frequency: Any, recency: Any, T: Any) -> Any:
        """P(alive | x, t_x, T) = 1 / (1 + a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x))."""
        r, alpha, a, b = self._params()
        x, t_x, t = check_frt(frequency, recency, T)
        dd = np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + t) - np.log(alpha + t_x))
        return wrap(special.expit(-dd), frequency)

    def expected_purchases_new(self, t: Any) -> Any:
        """E[X(t)] = b/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b+1; a+b; t/(alpha+t))], with
        (1-z)^r 2F1(r, b+1; a+b; z) = (1-z)^(a-1) 2F1(a+b-r, a-1; a+b; z) (Euler)."""
        r, alpha, a, b = self._params()
        tt = as_nonnegative("t", t)
        z = tt / (alpha + tt)

        def value(a_: float) -> Any:
            hyp = special.hyp2f1(a_ + b - r, a_ - 1, a_ + b, z)
            return b / (a_ - 1) * (1 - np.exp((a_ - 1) * np.log1p(-z)) * hyp)

        return wrap(removable_at_one(value, a), t)

    def probability_of_purchases(self, n: Any, t: Any) -> Any:
        """P(X(t) = n) for a new customer, from the process given (lambda, p) averaged over the
        mixing distributions:
        B(a, b+n+1)/B(a,b) NB(n; r, alpha/(alpha+t)) + 1[n>0] B(a+1, b+n)/B(a,b) I_z(n, r)
        + 1[n=0] a/(a+b), with z = t/(alpha+t)."""
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
        first = np.exp(special.betaln(a, b + nn + 1) - special.betaln(a, b) + log_nb)
        pos = nn > 0
        n_safe = np.where(pos, nn, 1.0)
        second = np.where(
            pos,
            np.exp(special.betaln(a + 1, b + n_safe) - special.betaln(a, b))
            * special.betainc(n_safe, r, 1 - p),
            a / (a + b),
        )
        return wrap(first + second, n)
