"""Shared machinery of the buy-till-you-die models: input checks, compression, maximum likelihood.

Every model is fit by maximum likelihood on *compressed sufficient statistics*: identical
summary rows (for BG/NBD ``(x, t_x, T)``) are grouped and weighted, so a million customers
summarised at day resolution cost a few hundred thousand likelihood terms at most. Parameters
are optimised in log space: by Newton's method when the model has an analytic Hessian (BG/NBD,
MBG/NBD, started from a fit on a random subsample of large data), else with L-BFGS-B (analytic
gradient when the model has one, finite differences otherwise) polished by Newton steps on a
finite-difference Hessian. The Hessian gives the standard errors (inverse Hessian of the
negative log-likelihood).

Written by hand because lifetimes (unmaintained, incompatible with numpy 2 / pandas 3) is the
only library doing this, and returns NaN for extreme customers in Pareto/NBD.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import optimize

from onetoone.errors import ModelError

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.intp]]
LogLik = Callable[[FloatArray], float]
LogLikGrad = Callable[[FloatArray], tuple[float, FloatArray]]
LogLikHess = Callable[[FloatArray], tuple[float, FloatArray, FloatArray]]

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


def wsum(weights: FloatArray, values: FloatArray) -> float:
    """sum(weights * values) without BLAS.

    ``np.dot`` on 1-D float vectors calls OpenBLAS ``ddot``, which is multithreaded above a few
    thousand elements: on a loaded 2-core machine one 100k-element dot took 20 ms instead of
    0.05 ms (threads waiting for a core). ``einsum`` reduces in a single thread with SIMD.
    """
    return float(np.einsum("i,i->", weights, values))


def compress_indexed(
    columns: list[FloatArray], weights: FloatArray
) -> tuple[list[FloatArray], list[IntArray], FloatArray]:
    """Group identical rows of ``columns`` and sum their weights, exactly (no binning).

    Returns, per column, its sorted unique values and, per grouped row, the index of its value
    in them (so that functions of one column are computed once per unique value and gathered),
    and the summed weights. Rows with weight 0 are dropped. Each column is factorised, the codes
    are combined into one integer key (first column most significant, so the grouped rows come
    sorted by the first column), and weights are summed per key by ``bincount`` when the key
    space is small, else after a sort.
    """
    w = np.ravel(weights)
    keep = w > 0
    cols = [np.ravel(c)[keep] for c in columns]
    w = w[keep]
    uniques: list[FloatArray] = []
    codes: list[IntArray] = []
    for c in cols:
        code, u = pd.factorize(c, sort=True)
        uniques.append(np.asarray(u, dtype=float))
        codes.append(np.asarray(code, dtype=np.intp))
    sizes = [max(u.size, 1) for u in uniques]
    space = float(np.prod(np.asarray(sizes, dtype=float)))
    if space >= 2.0**62:  # pragma: no cover - more than 2^62 combinations of unique values
        frame = pd.DataFrame({str(i): c for i, c in enumerate(codes)})
        summed = frame.assign(w=w).groupby(list(frame.columns), sort=True)["w"].sum()
        keys = summed.index.to_frame(index=False)
        return (
            uniques,
            [keys[str(i)].to_numpy(dtype=np.intp) for i in range(len(codes))],
            summed.to_numpy(dtype=float),
        )
    key = np.zeros(w.size, dtype=np.int64)
    for code, size in zip(codes, sizes, strict=True):
        key *= size
        key += code
    if space <= 4 * w.size + 1024:
        dense = np.bincount(key, weights=w, minlength=int(space))
        ukey = np.flatnonzero(dense > 0)
        total = dense[ukey]
    else:
        row, ukey = pd.factorize(key, sort=True)
        total = np.bincount(row, weights=w, minlength=ukey.size)
    out_codes: list[IntArray] = []
    rest = np.asarray(ukey, dtype=np.int64)
    for size in reversed(sizes):
        out_codes.append((rest % size).astype(np.intp))
        rest = rest // size
    out_codes.reverse()
    return uniques, out_codes, np.asarray(total, dtype=float)


def compress(columns: list[FloatArray], weights: FloatArray) -> tuple[list[FloatArray], FloatArray]:
    """Group identical rows of ``columns`` and sum their weights (sufficient statistics)."""
    uniques, codes, w = compress_indexed(columns, weights)
    return [u[c] for u, c in zip(uniques, codes, strict=True)], w


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


def _single_threaded_blas() -> AbstractContextManager[Any]:
    """Limit BLAS to one thread while optimising, when threadpoolctl is installed.

    The optimisers' tiny vector operations go through OpenBLAS, whose threads cost far more
    than they save on a busy machine (L-BFGS-B took 7 ms per iteration on 4 parameters).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _newton(
    vgh: Callable[[FloatArray], tuple[float, FloatArray, FloatArray]],
    u0: FloatArray,
    max_iter: int = 100,
) -> tuple[FloatArray, float, FloatArray, FloatArray] | None:
    """Minimise with Newton steps (Hessian eigenvalues made positive, steps of at most 2 in
    log space, Armijo backtracking). Returns (u, f, g, H) at convergence (max |g| < 1e-11, or
    no further decrease with max |g| < 1e-8), else None."""
    u = np.asarray(u0, dtype=float)
    f, g, h = vgh(u)
    if f >= 1e300:
        return None
    for _ in range(max_iter):
        gmax = float(np.max(np.abs(g)))
        if gmax < 1e-11:
            return u, f, g, h
        eig, vec = np.linalg.eigh(h)
        scale = max(float(np.max(np.abs(eig))), 1e-300)
        step = -vec @ ((vec.T @ g) / np.maximum(np.abs(eig), 1e-10 * scale))
        longest = float(np.max(np.abs(step)))
        if longest > 2.0:
            step *= 2.0 / longest
        slope = float(g @ step)
        t = 1.0
        while t > 1e-8:
            cand = np.clip(u + t * step, -_LOG_BOUND, _LOG_BOUND)
            fc, gc, hc = vgh(cand)
            if fc <= f + 1e-4 * t * slope:
                break
            t /= 2
        else:
            return (u, f, g, h) if gmax < 1e-8 else None
        if f - fc <= 1e-15 * max(1.0, abs(f)) and float(np.max(np.abs(gc))) < 1e-8:
            return cand, fc, gc, hc
        u, f, g, h = cand, fc, gc, hc
    return None


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
        warm: tuple[LogLikHess, float] | None = None,
        loglik_hess: LogLikHess | None = None,
    ) -> None:
        """Maximise ``loglik`` (total, natural parameters) and store params_, SEs and LL.

        The objective is the mean negative log-likelihood plus ``penalizer_coef * sum(params**2)``
        (lifetimes' convention), minimised over log-parameters.

        With ``loglik_hess`` (log-likelihood, gradient and Hessian) the optimiser is Newton's
        method with a line search (a handful of evaluations; standard errors from the exact
        Hessian), with L-BFGS-B as the fallback. ``warm`` = (the same for a random subsample, its
        number of customers): the subsample is fit first and its optimum is the starting point
        on the full data (the optimum reached is the full data's, to the same tolerances).
        """
        pen = float(self.penalizer_coef)
        if not np.isfinite(pen) or pen < 0:
            raise ModelError("penalizer_coef must be a finite number >= 0.")
        names = self._param_names

        def objective(u: FloatArray) -> float:
            if loglik_grad is not None:
                return objective_grad(u)[0]
            theta = np.exp(u)
            value = -loglik(theta) / n_customers + pen * float(np.sum(theta**2))
            return value if np.isfinite(value) else 1e300

        last: dict[bytes, tuple[float, FloatArray]] = {}

        def make_objective_grad(
            fn: LogLikGrad, n: float
        ) -> Callable[[FloatArray], tuple[float, FloatArray]]:
            def value_grad(u: FloatArray) -> tuple[float, FloatArray]:
                theta = np.exp(u)
                ll, g = fn(theta)
                value = -ll / n + pen * float(np.sum(theta**2))
                grad = -g * theta / n + 2 * pen * theta**2
                if not (np.isfinite(value) and np.all(np.isfinite(grad))):
                    return 1e300, np.zeros_like(u)
                return value, grad

            return value_grad

        def objective_grad(u: FloatArray) -> tuple[float, FloatArray]:
            # The last point is cached: the polish and the final checks ask for it again.
            assert loglik_grad is not None
            key = np.asarray(u, dtype=float).tobytes()
            if key not in last:
                last.clear()
                last[key] = make_objective_grad(loglik_grad, n_customers)(u)
            value, grad = last[key]
            return value, grad.copy()

        def gradient(u: FloatArray) -> FloatArray:
            if loglik_grad is not None:
                return objective_grad(u)[1]
            return _fd_gradient(objective, u)

        def make_value_grad_hess(
            fn: LogLikHess, n: float
        ) -> Callable[[FloatArray], tuple[float, FloatArray, FloatArray]]:
            def value_grad_hess(u: FloatArray) -> tuple[float, FloatArray, FloatArray]:
                theta = np.exp(u)
                ll, g, h = fn(theta)
                g_theta = -g / n + 2 * pen * theta
                value = -ll / n + pen * float(np.sum(theta**2))
                grad = g_theta * theta
                hess = (-h / n + 2 * pen * np.eye(theta.size)) * np.outer(theta, theta)
                hess += np.diag(grad)
                if not (np.isfinite(value) and np.all(np.isfinite(hess))):
                    return 1e300, np.zeros_like(u), np.eye(u.size)
                return value, grad, hess

            return value_grad_hess

        bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(names)
        u0 = np.log(initial)
        with _single_threaded_blas():
            if loglik_hess is not None:
                if warm is not None:
                    sub = _newton(make_value_grad_hess(*warm), u0)
                    if sub is not None:
                        u0 = sub[0]
                done = _newton(make_value_grad_hess(loglik_hess, n_customers), u0)
                if done is not None:
                    u, f, g, hess = done
                    self._store(u, f, g, hess * n_customers, loglik)
                    return
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
        # Standard errors: inverse Hessian of the total negative (penalised) log-likelihood,
        # computed in log space then mapped back (d theta = theta d u at the optimum).
        hess_u = _fd_hessian(objective, gradient if loglik_grad else None, u) * n_customers
        self._store(u, f, g, hess_u, loglik)

    def _store(
        self, u: FloatArray, f: float, g: FloatArray, hess_u: FloatArray, loglik: LogLik
    ) -> None:
        """Check convergence at log-parameters ``u``; store params_, log_likelihood_ and SEs."""
        names = self._param_names
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
        se = np.full(len(names), np.nan)
        try:
            cov_u = np.linalg.inv(hess_u)
            diag = np.diag(cov_u)
            if np.all(diag > 0):
                se = theta * np.sqrt(diag)
        except np.linalg.LinAlgError:
            pass
        self.standard_errors_ = {n: float(v) for n, v in zip(names, se, strict=True)}
