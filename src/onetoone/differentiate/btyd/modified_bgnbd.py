"""MBG/NBD: the BG/NBD with a drop-out opportunity right at the first purchase.

Batislam, E. P., Denizel, M. & Filiztekin, A. (2007), "Empirical validation and comparison of
models for customer base analysis", International Journal of Research in Marketing 24(3),
201-209. Same story as the BG/NBD (Fader, Hardie & Lee 2005) except that a customer may become
inactive after every purchase *including the first one*, so customers with no repeat purchase
can be dead too (P(alive) < 1 at x = 0).
"""

from __future__ import annotations

from typing import Any

from onetoone.differentiate.btyd._base import (
    as_nonnegative,
    wrap,
)
from onetoone.differentiate.btyd.bgnbd import BGNBD, _mean_while_alive


class ModifiedBGNBD(BGNBD):
    """MBG/NBD model (Batislam et al. 2007); same contract and parameters as :class:`BGNBD`.

    ln L = ln G(r+x)/G(r) + r ln(alpha) + ln B(a, b+x+1)/B(a, b) - (r+x) ln(alpha+T)
           + ln(1 + a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x)).
    """

    _shift = 0.0

    def p_alive(self, frequency: Any, recency: Any, T: Any) -> Any:
        """P(alive | x, t_x, T) = 1 / (1 + a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x))."""
        return super().p_alive(frequency, recency, T)

    def expected_purchases_new(self, t: Any) -> Any:
        """E[X(t)] = b/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b+1; a+b; t/(alpha+t))]
        = b/(a+b) E[(1 - (1 + p t/alpha)^-r) / p], p ~ Beta(a, b+1): alive after the first
        purchase with probability b/(a+b), then as a BG/NBD customer (see ``_mean_while_alive``).
        """
        r, alpha, a, b = self._params()
        tt = as_nonnegative("t", t)
        return wrap(b / (a + b) * _mean_while_alive(a, b + 1.0, r, tt / alpha), t)
