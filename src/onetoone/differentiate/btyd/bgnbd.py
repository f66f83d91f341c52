"""BG/NBD: beta-geometric / negative binomial distribution model of repeat purchasing.

Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005), "'Counting your customers' the easy way: an
alternative to the Pareto/NBD model", Marketing Science 24(2), 275-284. While active, a
customer buys at Poisson rate lambda ~ Gamma(r, alpha); after every purchase she drops out with
probability p ~ Beta(a, b). Equation numbers below are the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from scipy import special

from onetoone.differentiate.btyd._base import (
    BTYDModel,
    FloatArray,
    IntArray,
    as_nonnegative,
    check_counts,
    check_frt,
    check_weights,
    compress_indexed,
    removable_at_one,
    wrap,
    wsum,
)

_WARM_ROWS = 10_000  # rows of the subsample fit first, for a starting point (large data)


@dataclass
class _Data:
    """Compressed (x, t_x, T) rows, stored as indices into the unique values of each column.

    Functions of one column (ln(alpha+T), ln(alpha+t_x), ln(b+x-1), ...) are computed once per
    unique value and gathered; terms that do not involve t_x are summed per unique x or T first.
    Rows are ordered by x, so the rows with x > 0 (the only ones with a drop-out term in the
    BG/NBD) are a slice starting at ``n_zero``.
    """

    x: FloatArray
    t_x: FloatArray
    T: FloatArray
    w: FloatArray
    ux: FloatArray  # unique x (sorted)
    uT: FloatArray  # unique T
    utx: FloatArray  # unique t_x
    ix: IntArray  # row -> unique x
    iT: IntArray  # row -> unique T
    itx: IntArray  # row -> unique t_x
    wx: FloatArray  # total weight per unique x
    wT: FloatArray  # total weight per unique T
    wxT: FloatArray  # total weight * x per unique T
    n_zero: int  # rows with x = 0 come first

    @property
    def repeat(self) -> np.ndarray[Any, np.dtype[np.bool_]]:
        return self.x > 0

    @classmethod
    def build(cls, x: FloatArray, t_x: FloatArray, T: FloatArray, w: FloatArray) -> _Data:
        (ux, utx, uT), (ix, itx, iT), w = compress_indexed([x, t_x, T], w)
        return cls._from_codes(ux, utx, uT, ix, itx, iT, w)

    @classmethod
    def _from_codes(
        cls,
        ux: FloatArray,
        utx: FloatArray,
        uT: FloatArray,
        ix: IntArray,
        itx: IntArray,
        iT: IntArray,
        w: FloatArray,
    ) -> _Data:
        xr = ux[ix]
        wx = np.bincount(ix, weights=w, minlength=ux.size)
        wT = np.bincount(iT, weights=w, minlength=uT.size)
        wxT = np.bincount(iT, weights=w * xr, minlength=uT.size)
        return cls(
            xr,
            utx[itx],
            uT[iT],
            w,
            ux,
            uT,
            utx,
            ix,
            iT,
            itx,
            np.asarray(wx, dtype=float),
            np.asarray(wT, dtype=float),
            np.asarray(wxT, dtype=float),
            int(np.searchsorted(xr, 0.0, side="right")),
        )

    def thinned(self, target_rows: int, seed: int = 0) -> _Data | None:
        """A random subsample of the customers (binomial thinning of each row's weight, rescaled
        so that the weights still sum to about the same total), or None when the data are small.

        Used only for the starting point of the optimiser: its optimum is close to the full
        data's, so Newton's method on the full data needs few steps.
        """
        if self.w.size <= 2 * target_rows:
            return None
        frac = target_rows / self.w.size
        rng = np.random.default_rng(seed)
        kept = rng.binomial(np.maximum(np.rint(self.w), 1).astype(np.int64), frac).astype(float)
        keep = kept > 0
        if keep.sum() < 1000:
            return None
        w = kept[keep] * (self.w[keep] / np.maximum(np.rint(self.w[keep]), 1.0)) / frac
        return _Data._from_codes(
            self.ux, self.utx, self.uT, self.ix[keep], self.itx[keep], self.iT[keep], w
        )


def _loglik(theta: FloatArray, d: _Data, *, shift: float = 1.0) -> tuple[float, FloatArray]:
    """Total log-likelihood (eq. 6) and its gradient in (r, alpha, a, b)."""
    ll, g, _ = _loglik_hess(theta, d, shift=shift, hessian=False)
    return ll, g


def _loglik_hess(
    theta: FloatArray, d: _Data, *, shift: float = 1.0, hessian: bool = True
) -> tuple[float, FloatArray, FloatArray]:
    """Total log-likelihood (eq. 6), its gradient and Hessian in (r, alpha, a, b).

    ``shift`` = 1 gives BG/NBD; ``shift`` = 0 gives MBG/NBD (Batislam et al. 2007), where the
    drop-out opportunity after the first purchase moves every index by one.
    ln L = ln G(r+x)/G(r) + r ln(alpha) + ln B(a, b+x+1-shift)/B(a, b) - (r+x) ln(alpha+T)
           + ln(1 + 1[x>0 or MBG] a/(b+x-shift) ((alpha+T)/(alpha+t_x))^(r+x)).
    With D = ln(a/(b+x-shift)) + (r+x) ln((alpha+T)/(alpha+t_x)) the last term is
    softplus(D): gradient p grad D and Hessian p (1-p) grad D grad D' + p hess D, with
    p = expit(D) the probability of having dropped out. The Hessian (zeros when ``hessian`` is
    False) costs about half an evaluation more.
    """
    r, alpha, a, b = (float(v) for v in theta)
    ux, wx = d.ux, d.wx
    bx = ux + 1.0 - shift  # b + this = second beta argument
    # Terms depending on x only, summed over unique x with their total weights.
    ll = wsum(
        wx,
        special.gammaln(r + ux)
        - special.gammaln(r)
        + r * np.log(alpha)
        + special.gammaln(a + b)
        + special.gammaln(b + bx)
        - special.gammaln(b)
        - special.gammaln(a + b + bx),
    )
    dig_ab = special.digamma(a + b) - special.digamma(a + b + bx)
    n = wx.sum()
    g = np.array(
        [
            wsum(wx, special.digamma(r + ux) - special.digamma(r)) + n * np.log(alpha),
            n * r / alpha,
            wsum(wx, dig_ab),
            wsum(wx, dig_ab + special.digamma(b + bx) - special.digamma(b)),
        ]
    )
    h = np.zeros((4, 4))
    if hessian:
        tri_ab = wsum(wx, special.polygamma(1, a + b) - special.polygamma(1, a + b + bx))
        h[0, 0] = wsum(wx, special.polygamma(1, r + ux) - special.polygamma(1, r))
        h[0, 1] = n / alpha
        h[1, 1] = -n * r / alpha**2
        h[2, 2] = h[2, 3] = tri_ab
        h[3, 3] = tri_ab + wsum(wx, special.polygamma(1, b + bx) - special.polygamma(1, b))
    # -(r+x) ln(alpha+T), summed per unique T.
    log_at = np.log(alpha + d.uT)
    inv_at = 1.0 / (alpha + d.uT)
    ll -= wsum(r * d.wT + d.wxT, log_at)
    g[0] -= wsum(d.wT, log_at)
    g[1] -= wsum(r * d.wT + d.wxT, inv_at)
    if hessian:
        h[0, 1] -= wsum(d.wT, inv_at)
        h[1, 1] += wsum(r * d.wT + d.wxT, inv_at**2)
    # Drop-out term, on the rows that have one (x > 0 for BG/NBD, all for MBG/NBD).
    lo = d.n_zero if shift == 1.0 else 0
    if lo < d.w.size:
        ix, iT, itx, w = d.ix[lo:], d.iT[lo:], d.itx[lo:], d.w[lo:]
        bxs = b + ux - shift
        with np.errstate(divide="ignore", invalid="ignore"):
            log_a_bxs = np.log(a) - np.log(bxs)  # unused entries (x = 0 in BG/NBD) may be NaN
            inv_bxs = 1.0 / bxs
        inv_atx = 1.0 / (alpha + d.utx)
        log_ratio = log_at[iT]
        log_ratio -= np.log(alpha + d.utx)[itx]  # ln((alpha+T)/(alpha+t_x)) >= 0
        rxr = (r + ux)[ix]
        dd = rxr * log_ratio
        dd += log_a_bxs[ix]
        # Floor at -200: exp(-200) is negligible and keeps clear of denormals (~50x slower).
        np.maximum(dd, -200.0, out=dd)
        # softplus(dd) = max(dd, 0) + log1p(exp(-|dd|)); P(dead) = exp(dd - softplus(dd)).
        e = np.abs(dd)
        np.negative(e, out=e)
        np.exp(e, out=e)
        soft = np.log1p(e, out=e)
        soft += np.maximum(dd, 0.0)
        ll += wsum(w, soft)
        dd -= soft
        q = np.exp(dd, out=dd)  # P(dead)
        if hessian:
            np.negative(soft, out=soft)
            v = np.exp(soft, out=soft)  # 1 - P(dead)
            v *= q
            v *= w  # weighted p (1 - p)
        q *= w  # weighted P(dead)
        g[0] += wsum(q, log_ratio)
        dalpha = inv_at[iT]  # d D / d alpha = (r+x) (1/(alpha+T) - 1/(alpha+t_x))
        dalpha -= inv_atx[itx]
        if hessian:
            h[0, 1] += wsum(q, dalpha)
            curv = (inv_atx**2)[itx]  # d2 D / d alpha2 = (r+x) (1/(alpha+t_x)^2 - 1/(alpha+T)^2)
            curv -= (inv_at**2)[iT]
            curv *= rxr
            h[1, 1] += wsum(q, curv)
        dalpha *= rxr
        g[1] += wsum(q, dalpha)
        qsum = q.sum()
        g[2] += qsum / a
        qx = np.bincount(ix, weights=q, minlength=ux.size)
        used = qx > 0
        g[3] -= float(np.sum(qx[used] * inv_bxs[used]))
        if hessian:
            h[2, 2] -= qsum / a**2
            h[3, 3] += float(np.sum(qx[used] * inv_bxs[used] ** 2))
            # p (1 - p) grad D grad D', grad D = (log_ratio, dalpha, 1/a, -1/(b+x-shift)).
            vsum = v.sum()
            v_lr = wsum(v, log_ratio)
            v_da = wsum(v, dalpha)
            vx = np.bincount(ix, weights=v, minlength=ux.size)
            vx_lr = np.bincount(ix, weights=v * log_ratio, minlength=ux.size)
            vx_da = np.bincount(ix, weights=v * dalpha, minlength=ux.size)
            used = vx != 0
            ib = inv_bxs[used]
            h[0, 0] += wsum(v * log_ratio, log_ratio)
            h[0, 1] += wsum(v * log_ratio, dalpha)
            h[0, 2] += v_lr / a
            h[0, 3] -= float(np.sum(vx_lr[used] * ib))
            h[1, 1] += wsum(v * dalpha, dalpha)
            h[1, 2] += v_da / a
            h[1, 3] -= float(np.sum(vx_da[used] * ib))
            h[2, 2] += vsum / a**2
            h[2, 3] -= float(np.sum(vx[used] * ib)) / a
            h[3, 3] += float(np.sum(vx[used] * ib**2))
    if hessian:
        h = np.triu(h) + np.triu(h, 1).T
    return float(ll), g, h


def _initial(d: _Data) -> FloatArray:
    mean_t = wsum(d.w, d.T) / d.w.sum()
    mean_x = wsum(d.w, d.x) / d.w.sum()
    return np.array([1.0, max(mean_t, 1e-3) / (1.0 + mean_x), 1.0, 1.0])


_EULER_MAX_A = 50.0  # above, the Euler-transformed 2F1 has huge parameters: use the sum
_EULER_MAX_K = 1000.0  # above (r ~ 1e6 or thousands of purchases) scipy's 2F1 is very slow
_SUM_MAX_KU = 0.01  # below, 1 - (1-z)^(a-1) 2F1(...) cancels: use the sum (a few terms)
_SUM_MAX_TERMS = 200_000


def _mean_while_alive(a: float, big_b: Any, k: Any, u: Any) -> FloatArray:
    """E[(1 - (1 + p u)^-k) / p] for p ~ Beta(a, B): expected purchases in a period ``u``
    (in units of alpha + T) of a customer alive now, with Gamma(k, 1) purchase rate.

    Closed form (Fader, Hardie & Lee 2005, eq. 10), after Euler's transformation:
    (a+B-1)/(a-1) [1 - (1-z)^(a-1) 2F1(a+B-1-k, a-1; a+B-1; z)], z = u/(1+u), accurate for
    moderate a and r + x; a = 1 is a removable singularity. For large a or r + x (the 2F1 has
    parameters of that order and overflows or crawls; scipy returns NaN at a, b ~ 1e6) and
    where the bracket cancels (k u small), the same value as a sum of positive terms:
        sum_{j>=0} P(N > j) (B)_j / (a+B)_j,
    N ~ NegBin(k, z) the purchase opportunities in the period and (B)_j/(a+B)_j = E[(1-p)^j]
    the chance of surviving j of them. As a, B -> infinity with a/(a+B) -> p fixed this tends
    to (1 - (1 + p u)^-k) / p, the limit with every customer's p equal.
    """
    big_b, k, u = (np.asarray(v, dtype=float) for v in np.broadcast_arrays(big_b, k, u))
    out = np.zeros(big_b.shape)
    ku = k * u
    use_sum = (ku < _SUM_MAX_KU) | (k > _EULER_MAX_K) | (a > _EULER_MAX_A)
    use_sum &= u > 0
    closed = ~use_sum & (u > 0)
    if np.any(closed):
        bb, kk, uu = big_b[closed], k[closed], u[closed]
        z = uu / (1.0 + uu)
        log1mz = -np.log1p(uu)

        def value(a_: float) -> Any:
            c = a_ + bb - 1.0
            with np.errstate(all="ignore"):
                hyp = special.hyp2f1(c - kk, a_ - 1.0, c, z)
                return c / (a_ - 1.0) * -np.expm1((a_ - 1.0) * log1mz + np.log(hyp))

        vals = np.asarray(removable_at_one(value, a), dtype=float)
        bad = ~(np.isfinite(vals) & (vals >= 0))
        out[closed] = vals
        if np.any(bad):  # scipy's 2F1 failed: fall back to the sum
            idx = np.flatnonzero(closed)[bad]
            use_sum[idx] = True
    if np.any(use_sum):
        out[use_sum] = _mean_by_sum(a, big_b[use_sum], k[use_sum], u[use_sum])
    return out


def _mean_by_sum(a: float, big_b: FloatArray, k: FloatArray, u: FloatArray) -> FloatArray:
    """sum_j P(N > j) (B)_j/(a+B)_j (see :func:`_mean_while_alive`), terms in log space,
    stopped when the remainder is below 1e-15 of the total (or after _SUM_MAX_TERMS terms)."""
    n = big_b.size
    total = np.zeros(n)
    idx = np.arange(n)
    bb, kk, uu = big_b, k, u
    log1pu = np.log1p(uu)
    log_z = np.log(uu) - log1pu
    surv = -np.expm1(-kk * log1pu)  # P(N > 0)
    surv0 = surv.copy()
    log_pmf = -kk * log1pu  # ln P(N = 0)
    log_m = np.zeros(n)  # ln (B)_j / (a+B)_j
    for j in range(_SUM_MAX_TERMS):
        term = surv * np.exp(log_m)
        total[idx] += term
        # Remainder <= (B)_j/(a+B)_j E[(N - j)^+] <= m_j k u, and, once the ratio of
        # successive negative binomial probabilities rho = z (k+j)/(j+1) is below 1,
        # <= P(N > j) / (1 - rho).
        tot = total[idx]
        rho = np.exp(log_z) * (kk + j) / (j + 1.0)
        tail = np.where(rho < 1.0, surv / np.maximum(1.0 - rho, 1e-300), np.inf)
        bound = np.minimum(np.exp(log_m) * kk * uu, tail)
        keep = bound > 1e-15 * tot
        if not np.all(keep):
            idx = idx[keep]
            bb, kk, uu, log1pu, log_z = (v[keep] for v in (bb, kk, uu, log1pu, log_z))
            surv, log_pmf, log_m = surv[keep], log_pmf[keep], log_m[keep]
            if idx.size == 0:
                break
        log_pmf = log_pmf + np.log(kk + j) - np.log(j + 1.0) + log_z
        surv = surv - np.exp(log_pmf)
        # Past the mode, below 1e-13 of P(N > 0) it is rounding residue of the subtractions (the
        # true tail decays geometrically from there): zero, so that the sum stops.
        past_mode = np.exp(log_z) * (kk + j) < j + 1.0
        surv[(surv < 1e-13 * surv0[idx]) & past_mode] = 0.0
        log_m = log_m + np.log1p(-a / (a + bb + j))
    return total


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
        sub = d.thinned(_WARM_ROWS)
        self._maximize(
            lambda th: _loglik(th, d, shift=shift)[0],
            lambda th: _loglik(th, d, shift=shift),
            _initial(d),
            float(w.sum()),
            warm=None if sub is None else (partial(_loglik_hess, d=sub, shift=shift), sub.w.sum()),
            loglik_hess=partial(_loglik_hess, d=d, shift=shift),
        )
        self.n_customers_ = int(np.rint(w.sum()))
        self.n_unique_ = int(d.x.size)
        return self

    # -- predictions ---------------------------------------------------------------------------
    def _log_dead_odds(self, x: FloatArray, t_x: FloatArray, t: FloatArray) -> FloatArray:
        """ln(a/(b+x-shift)) + (r+x) ln((alpha+T)/(alpha+t_x)); -inf when x = 0 in BG/NBD.

        The log-ratio is log1p((T-t_x)/(alpha+t_x)): exact for huge alpha (and r), where the
        difference of two logarithms would cancel.
        """
        r, alpha, a, b = self._params()
        active = (x > 0) | (self._shift == 0.0)
        bxs = np.where(active, b + x - self._shift, 1.0)
        odds = np.log(a) - np.log(bxs) + (r + x) * np.log1p((t - t_x) / (alpha + t_x))
        return np.where(active, odds, -np.inf)

    def p_alive(self, frequency: Any, recency: Any, T: Any) -> Any:
        """P(alive | x, t_x, T) = 1 / (1 + 1[x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))."""
        x, t_x, t = check_frt(frequency, recency, T)
        return wrap(special.expit(-self._log_dead_odds(x, t_x, t)), frequency)

    def expected_purchases_new(self, t: Any) -> Any:
        """E[X(t)] for a customer acquired at 0 (eq. 9):

        (a+b-1)/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b; a+b-1; t/(alpha+t))]
        = E[(1 - (1 + p t/alpha)^-r) / p], p ~ Beta(a, b); see :func:`_mean_while_alive`.
        """
        r, alpha, a, b = self._params()
        tt = as_nonnegative("t", t)
        return wrap(_mean_while_alive(a, b, r, tt / alpha), t)

    def expected_purchases(self, t: Any, frequency: Any, recency: Any, T: Any) -> Any:
        """E[X(T, T+t) | x, t_x, T]: expected purchases in the next ``t`` (eq. 10).

        (a+b+x-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)] P(alive)
        with z = t/(alpha+T+t): the mean of (1 - (1 + p t/(alpha+T))^-(r+x)) / p over the
        posterior p ~ Beta(a, b+x) of a customer still alive, times P(alive); evaluated by
        :func:`_mean_while_alive`, finite for any parameters (a, b ~ 1e6, r, alpha ~ 1e6,
        thousands of purchases, T = 0, t_x = T).
        """
        r, alpha, a, b = self._params()
        x, t_x, big_t = check_frt(frequency, recency, T)
        tt = as_nonnegative("t", t)
        mean = _mean_while_alive(a, b + x + 1.0 - self._shift, r + x, tt / (alpha + big_t))
        result = mean * special.expit(-self._log_dead_odds(x, t_x, big_t))
        return wrap(result, frequency)

    def probability_of_purchases(self, n: Any, t: Any) -> Any:
        """P(X(t) = n) for a new customer (eq. 8); the finite sum is a regularised beta.

        P = B(a, b+n)/B(a,b) NB(n; r, alpha/(alpha+t))
            + 1[n>0] B(a+1, b+n-1)/B(a,b) I_{t/(alpha+t)}(n, r).
        The MBG/NBD (``_shift`` 0: a customer may also drop out at time 0, before any purchase)
        has B(a, b+n+1) and B(a+1, b+n), plus a/(a+b) at n = 0 (Batislam et al. 2007).
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
        unshift = 1.0 - self._shift
        first = np.exp(special.betaln(a, b + nn + unshift) - special.betaln(a, b) + log_nb)
        pos = nn > 0
        n_safe = np.where(pos, nn, 1.0)
        second = np.where(
            pos,
            np.exp(special.betaln(a + 1, b + n_safe - self._shift) - special.betaln(a, b))
            * special.betainc(n_safe, r, 1 - p),
            unshift * a / (a + b),
        )
        return wrap(first + second, n)
