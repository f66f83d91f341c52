"""Gamma-Gamma model of the average transaction value of repeat customers.

Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005), "RFM and CLV: using iso-value curves for
customer base analysis", Journal of Marketing Research 42(4), 415-430, section "the spend
model"; Fader, P. S. & Hardie, B. G. S. (2013), "The Gamma-Gamma model of monetary value"
(note, eq. 1-5). Each transaction value z ~ Gamma(p, nu) with nu ~ Gamma(q, gamma) across
customers; the mean of x transactions, zbar, is sufficient. Assumes spend independent of the
purchase process (check the correlation of frequency and monetary value before use).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from onetoone.differentiate.btyd._base import (
    BTYDModel,
    FloatArray,
    as_float,
    check_counts,
    check_weights,
    compress,
    wrap,
    wsum,
)
from onetoone.errors import ModelError


def _loglik(
    theta: FloatArray, x: FloatArray, m: FloatArray, w: FloatArray
) -> tuple[float, FloatArray]:
    """Total log-likelihood (Fader & Hardie 2013, eq. 4) and gradient in (p, q, gamma).

    f(zbar | x) = G(px+q) / (G(px) G(q)) gamma^q zbar^(px-1) x^(px) / (gamma + x zbar)^(px+q).
    """
    p, q, g = (float(v) for v in theta)
    px = p * x
    log_xm = np.log(x * m)
    log_gxm = np.log(g + x * m)
    ll = (
        special.gammaln(px + q)
        - special.gammaln(px)
        - special.gammaln(q)
        + q * np.log(g)
        + px * log_xm
        - np.log(m)
        - (px + q) * log_gxm
    )
    dig = special.digamma(px + q)
    grad = np.array(
        [
            wsum(w, x * (dig - special.digamma(px) + log_xm - log_gxm)),
            wsum(w, dig - special.digamma(q) + np.log(g) - log_gxm),
            wsum(w, q / g - (px + q) / (g + x * m)),
        ]
    )
    return wsum(w, ll), grad


class GammaGamma(BTYDModel):
    """Gamma-Gamma spend model; fit on repeat customers (frequency > 0) only.

    Learned: ``params_`` (p, q, gamma), ``standard_errors_``, ``log_likelihood_``.
    """

    _param_names = ("p", "q", "gamma")

    def fit(self, frequency: Any, monetary_value: Any, weights: Any = None) -> GammaGamma:
        """Fit on x (repeat purchases) and zbar (mean value of those purchases); returns self."""
        x = np.ravel(check_counts("frequency", frequency))
        m = np.ravel(as_float("monetary_value", monetary_value))
        if x.shape != m.shape:
            raise ModelError("frequency and monetary_value must have the same length.")
        if np.any(x <= 0):
            raise ModelError(
                f"The Gamma-Gamma model is fit on repeat customers only; {int(np.sum(x <= 0))} "
                "customers have frequency 0.",
                hint="Select the customers with frequency > 0 before fitting.",
            )
        if np.any(m <= 0):
            raise ModelError(
                f"monetary_value must be > 0 for repeat customers; {int(np.sum(m <= 0))} are not.",
                hint="Drop customers whose repeat purchases net to zero or less.",
            )
        w = check_weights(weights, x.size)
        (x, m), w = compress([x, m], w)
        mean_m = float(wsum(w, m) / w.sum())
        var_m = float(wsum(w, (m - mean_m) ** 2) / w.sum())
        # Method-of-moments-like start: p ~ 1/cv^2 of zbar, q a little above 2.
        p0 = max(min(mean_m**2 / max(var_m, 1e-12), 100.0), 0.1)
        initial = np.array([p0, 3.0, 2.0 * mean_m / p0])  # E[zbar] = p gamma / (q - 1)
        self._maximize(
            lambda th: _loglik(th, x, m, w)[0],
            lambda th: _loglik(th, x, m, w),
            initial,
            float(w.sum()),
        )
        self.n_customers_ = int(np.rint(w.sum()))
        self.n_unique_ = int(x.size)
        return self

    def expected_spend(self, frequency: Any, monetary_value: Any) -> Any:
        """E[Z | x, zbar] = (p (gamma + x zbar)) / (p x + q - 1) (Fader & Hardie 2013, eq. 5):
        a weighted mean of the population mean p gamma/(q-1) and the customer's own zbar.
        Customers with x = 0 get the population mean (needs q > 1)."""
        p, q, g = self._params()
        x = check_counts("frequency", frequency)
        m = as_float("monetary_value", monetary_value)
        if q <= 1:
            raise ModelError(
                f"The fitted q = {q:.3g} <= 1: the mean spend is infinite in this model.",
                hint="Check monetary values for extreme outliers.",
            )
        m = np.where(x > 0, m, 0.0)
        return wrap(p * (g + x * m) / (p * x + q - 1), frequency)
