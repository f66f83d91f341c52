"""Shared machinery of the buy-till-you-die models: input checks, compression, maximum likelihood.

Every model is fit by maximum likelihood on *compressed sufficient statistics*: identical
summary rows (for BG/NBD ``(x, t_x, T)``) are grouped and weighted, so a million customers
summarised at day resolution cost a few hundred thousand likelihood terms at most. Parameters
are optimised in log space with L-BFGS-B (analytic gradient when the model has one, finite
differences otherwise), then polished by Newton steps on a finite-difference Hessian, which
also gives the standard errors (inverse Hessian of the negative log-likelihood).

Written by hand because lifetimes (unmaintained, incompatible with numpy 2 / pandas 3) is the
only library doing this, and returns NaN for extreme customers in Pareto/NBD.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import optimize

from onetoone.errors import ModelError

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
LogLik = Callable[[FloatArray], float]
LogLikGrad = Callable[[FloatArray], tuple[float, FloatArray]]

_LOG_BOUND = 30.0  # |log parameter| <= 30: e^30 ~ 1e13, far beyond any meaningful value


def as_float(name: str, values: Any) -> FloatArray:
    """``values`` as a float array, refusing NaN and infinities with a clear sentence."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{name} must be numeric.") from exc
    if not np.all(np.isfinite(arr)):
        raise ModelError(
            f"{name} has {int(np.sum(~np.isfinite(arr)))} missing or infinite values.",
            hint="Drop or fill them before fitting or scoring.",
        )
    return arr


def as_nonnegative(name: str, values: Any) -> FloatArray:
    arr = as_float(name, values)
    if np.any(arr < 0):
        raise ModelError(f"{name} must be >= 0; {int(np.sum(arr < 0))} values are negative.")
    return arr


def check_counts(name: str, values: Any) -> FloatArray:
    arr = as_nonnegative(name, values)
    if np.any(arr != np.round(arr)):
        raise ModelError(f"{name} must hold whole numbers of purchases.")
    return arr


def check_frt(frequency: Any, recency: Any, T: Any) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Check (x, t_x, T) triples: x whole >= 0, 0 <= t_x <= T, t_x = 0 when x = 0; broadcast."""
    x = check_counts("frequency", frequency)
    t_x = as_nonnegative("recency", recency)
    t = as_nonnegative("T", T)
    try:
        x, t_x, t = np.broadcast_arrays(x, t_x, t)
    except ValueError as exc:
        raise ModelError("frequency, recency and T must have the same length.") from exc
    slack = 1e-9 * np.maximum(1.0, t)
    if np.any(t_x > t + slack):
        raise ModelError(
            f"recency is greater than T for {int(np.sum(t_x > t + slack))} customers.",
            hint="recency is the time of the last purchase since the first, T the customer's age.",
        )
    if np.any((x == 0) & (t_x > 0)):
        raise ModelError(
            "recency must be 0 for customers with frequency 0 (no repeat purchase).",
            hint="Build the summaries with summary_from_transactions.",
        )
    return x.astype(float), np.minimum(t_x, t).astype(float), t.astype(float)


def check_weights(weights: Any, n: int) -> FloatArray:
    if weights is None:
        return np.ones(n)
    w = as_float("weights", weights).ravel()
    if w.shape != (n,):
        raise ModelError(f"weights has {w.size} values for {n} customers.")
    if np.any(w < 0) or w.sum() <= 0:
        raise ModelError("weights must be >= 0 with a positive total.")
    return w


def compress(columns: list[FloatArray], weights: FloatArray) -> tuple[list[FloatArray], FloatArray]:
    """Group identical rows of ``columns`` and sum their weights (sufficient statistics)."""
    frame = pd.DataFrame({str(i): np.ravel(c) for i, c in enumerate(columns)})
    frame["w"] = np.ravel(weights)
    frame = frame[frame["w"] > 0]
    grouped = frame.groupby([str(i) for i in range(len(columns))], sort=False)["w"].sum()
    keys = grouped.index.to_frame(index=False)
    return [keys[str(i)].to_numpy(dtype=float) for i in range(len(columns))], grouped.to_numpy(
        dtype=float
    )


def wrap(result: FloatArray, like: Any) -> Any:
    """Return a float for scalar inputs, a Series for a Series input, else an array."""
    if isinstance(like, pd.Series) and np.ndim(result) == 1 and len(like) == len(result):
        return pd.Series(result, index=like.index)
    if np.ndim(result) == 0:
        return float(result)
    return result


def removable_at_one(f: Callable[[float], Any], k: float, h: float = 1e-5) -> Any:
    """``f(k)`` where ``f`` has a removable singularity at ``k = 1``: mean of f(1-h), f(1+h)."""
    if abs(k - 1.0) < h:
        return 0.5 * (np.asarray(f(1.0 - h)) + np.asarray(f(1.0 + h)))
    return f(k)


def _fd_gradient(fun: Callable[[FloatArray], float], u: FloatArray, h: float = 1e-5) -> FloatArray:
    g = np.empty_like(u)
    for i in range(u.size):
        e = np.zeros_like(u)
        e[i] = h
        g[i] = (fun(u + e) - fun(u - e)) / (2 * h)
    return g


def _fd_hessian(
    fun: Callable[[FloatArray], float],
    grad: Callable[[FloatArray], FloatArray] | None,
    u: FloatArray,
    h: float = 1e-3,
) -> FloatArray:
    """Central finite-difference Hessian, from the gradient when there is one."""
    k = u.size
    hess = np.zeros((k, k))
    if grad is not None:
        for i in range(k):
            e = np.zeros(k)
            e[i] = h
            hess[i] = (grad(u + e) - grad(u - e)) / (2 * h)
    else:
        f0 = fun(u)
        for i in range(k):
            for j in range(i, k):
                ei = np.zeros(k)
                ej = np.zeros(k)
                ei[i] = h
                ej[j] = h
                if i == j:
                    hess[i, i] = (fun(u + ei) - 2 * f0 + fun(u - ei)) / h**2
                else:
                    hess[i, j] = (
                        fun(u + ei + ej) - fun(u + ei - ej) - fun(u - ei + ej) + fun(u - ei - ej)
                    ) / (4 * h * h)
                    hess[j, i] = hess[i, j]
    return 0.5 * (hess + hess.T)


class BTYDModel:
    """Base of the models: scikit-learn contract (``__init__`` stores, ``fit`` returns self)."""

    _param_names: ClassVar[tuple[str, ...]] = ()
    params_: dict[str, float]
    standard_errors_: dict[str, float]
    log_likelihood_: float
    n_customers_: int
    n_unique_: int

    def __init__(self, penalizer_coef: float = 0.0) -> None:
        self.penalizer_coef = penalizer_coef

    def __repr__(self) -> str:
        if hasattr(self, "params_"):
            inner = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
            return f"{type(self).__name__}({inner})"
        return f"{type(self).__name__}(penalizer_coef={self.penalizer_coef})"

    def _params(self) -> tuple[float, ...]:
        if not hasattr(self, "params_"):
            raise ModelError(
                f"This {type(self).__name__} is not fitted yet.",
                hint="Call fit(...) with the customers' summaries before predicting.",
            )
        return tuple(self.params_[name] for name in self._param_names)

    @property
    def summary_(self) -> pd.DataFrame:
        """Parameters with standard errors and 95 % Wald intervals."""
        self._params()
        est = pd.Series(self.params_)
        se = pd.Series(self.standard_errors_)
        return pd.DataFrame(
            {
                "estimate": est,
                "std_error": se,
                "lower_95": est - 1.96 * se,
                "upper_95": est + 1.96 * se,
            }
        )

    def _maximize(
        self,
        loglik: LogLik,
        loglik_grad: LogLikGrad | None,
        initial: FloatArray,
        n_customers: float,
    ) -> None:
        """Maximise ``loglik`` (total, natural parameters) and store params_, SEs and LL.

        The objective is the mean negative log-likelihood plus ``penalizer_coef * sum(params**2)``
        (lifetimes' convention), minimised over log-parameters.
        """
        pen = float(self.penalizer_coef)
        if not np.isfinite(pen) or pen < 0:
            raise ModelError("penalizer_coef must be a finite number >= 0.")
        names = self._param_names

        def objective(u: FloatArray) -> float:
            theta = np.exp(u)
            value = -loglik(theta) / n_customers + pen * float(np.sum(theta**2))
            return value if np.isfinite(value) else 1e300

        def objective_grad(u: FloatArray) -> tuple[float, FloatArray]:
            assert loglik_grad is not None
            theta = np.exp(u)
            ll, g = loglik_grad(theta)
            value = -ll / n_customers + pen * float(np.sum(theta**2))
            grad = -g * theta / n_customers + 2 * pen * theta**2
            if not (np.isfinite(value) and np.all(np.isfinite(grad))):
                return 1e300, np.zeros_like(u)
            return value, grad

        def gradient(u: FloatArray) -> FloatArray:
            if loglik_grad is not None:
                return objective_grad(u)[1]
            return _fd_gradient(objective, u)

        bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(names)
        u0 = np.log(initial)
        if loglik_grad is not None:
            res = optimize.minimize(
                objective_grad,
                u0,
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10},
            )
        else:
            res = optimize.minimize(
                objective,
                u0,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-9},
            )
        u = np.asarray(res.x, dtype=float)
        # Newton polish: L-BFGS-B stops on a flat ridge (Pareto/NBD's s-beta) a little early.
        f = objective(u)
        for _ in range(20):
            g = gradient(u)
            if np.max(np.abs(g)) < 1e-11:
                break
            hess = _fd_hessian(objective, gradient if loglik_grad else None, u)
            try:
                step = np.linalg.solve(hess, g)
            except np.linalg.LinAlgError:
                break
            if not np.all(np.isfinite(step)) or np.dot(step, g) <= 0:
                break
            t = 1.0
            while t > 1e-4:
                cand = np.clip(u - t * step, -_LOG_BOUND, _LOG_BOUND)
                fc = objective(cand)
                if fc <= f:
                    break
                t /= 2
            else:
                break
            if f - fc < 1e-16 * max(1.0, abs(f)):
                u, f = cand, fc
                break
            u, f = cand, fc

        g = gradient(u)
        at_bound = np.abs(u) >= _LOG_BOUND - 1e-6
        if f >= 1e300 or np.any(at_bound) or np.max(np.abs(g)) > 1e-4:
            culprit = ", ".join(n for n, b in zip(names, at_bound, strict=True) if b)
            raise ModelError(
                f"{type(self).__name__} did not converge"
                + (f" ({culprit} went to 0 or infinity)" if culprit else "")
                + ": the data may not identify the model.",
                hint="Check the summaries (frequency, recency, T) or set penalizer_coef=0.001.",
            )
        theta = np.exp(u)
        self.params_ = {n: float(v) for n, v in zip(names, theta, strict=True)}
        self.log_likelihood_ = float(loglik(theta))

        # Standard errors: inverse Hessian of the total negative (penalised) log-likelihood,
        # computed in log space then mapped back (d theta = theta d u at the optimum).
        hess_u = _fd_hessian(objective, gradient if loglik_grad else None, u) * n_customers
        se = np.full(len(names), np.nan)
        try:
            cov_u = np.linalg.inv(hess_u)
            diag = np.diag(cov_u)
            if np.all(diag > 0):
                se = theta * np.sqrt(diag)
        except np.linalg.LinAlgError:
            pass
        self.standard_errors_ = {n: float(v) for n, v in zip(names, se, strict=True)}
