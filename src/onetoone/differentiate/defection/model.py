"""DefectionModel: gradient boosting (LightGBM) with calibrated probabilities and reasons.

scikit-learn contract: ``__init__`` stores parameters, ``fit(X, y)`` validates and returns
``self``, learned state ends in ``_``. Works on any flat table with a label column (``fit`` on a
DataFrame, or :meth:`DefectionModel.fit_table`).

* **Time-based validation**: with ``time`` (e.g. the cutoff of each row) the rows of the latest
  time are held out; the booster learns on the earlier ones, stops early on the held-out AUC and
  the probabilities are calibrated on them (isotonic, or Platt below ``min_isotonic`` rows).
  Without ``time`` a stratified random share ``calibration_share`` is held out instead.
* **Class imbalance**: positives are re-weighted to balance the classes while boosting;
  calibration on the untouched held-out rows brings the probabilities back to the real rates.
* **Reasons**: LightGBM's own per-row feature contributions (``pred_contrib=True``, TreeSHAP
  values in log-odds) are kept by :meth:`contributions`; :mod:`._reasons` puts words on them.

LightGBM is imported lazily (the ``models`` extra).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from onetoone.differentiate.defection._training import DefectionError, SingleClassError
from onetoone.errors import ModelError


def _lightgbm() -> Any:
    try:
        import lightgbm
    except ImportError:  # pragma: no cover - depends on the environment
        raise ModelError("The defection model needs LightGBM.",
                         hint="pip install 'onetoone[models]'.") from None
    return lightgbm


class DefectionModel:
    """Probability that a customer defects, from a table of features."""

    def __init__(
        self,
        n_estimators: int = 400,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_child_samples: int = 40,
        early_stopping_rounds: int = 40,
        calibration: str = "auto",
        calibration_share: float = 0.25,
        min_isotonic: int = 1000,
        balance_classes: bool = True,
        random_state: int = 0,
        n_jobs: int = 0,
        baseline: tuple[str, ...] | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.early_stopping_rounds = early_stopping_rounds
        self.calibration = calibration
        self.calibration_share = calibration_share
        self.min_isotonic = min_isotonic
        self.balance_classes = balance_classes
        self.random_state = random_state
        self.baseline = baseline
        self.n_jobs = n_jobs

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, *, time: Any = None) -> DefectionModel:
        """Fit on features ``X`` and labels ``y`` (1 = defected); ``time`` orders the rows."""
        lgb = _lightgbm()
        frame = self._frame(X, fitting=True)
        target = np.asarray(y, dtype=float).ravel()
        if len(target) != len(frame):
            raise DefectionError(f"X has {len(frame)} rows but y has {len(target)}.")
        if np.isnan(target).any() or not np.isin(target, (0.0, 1.0)).all():
            raise DefectionError("Labels must be 0 (stayed) or 1 (defected), without gaps.")
        classes = np.unique(target)
        if len(classes) < 2:
            what = "defected" if classes.size and classes[0] == 1 else "stayed"
            raise SingleClassError(
                f"Every one of the {len(target):,} training rows {what}: a defection model "
                "needs both customers who stayed and customers who left.",
                hint="Use a longer history, another horizon, or more customers.")
        fit_idx, cal_idx, self.validation_ = self._split(target, time)
        pos = max(float(target[fit_idx].sum()), 1.0)
        neg = max(float(len(fit_idx) - target[fit_idx].sum()), 1.0)
        params = {
            "objective": "binary", "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves, "min_data_in_leaf": self.min_child_samples,
            "feature_fraction": 0.9, "bagging_fraction": 0.8, "bagging_freq": 1,
            "lambda_l2": 1.0, "seed": self.random_state, "verbosity": -1,
            # one thread below 50k rows: OpenMP start-up and spinning cost more than they give
            "num_threads": self.n_jobs or (1 if len(frame) < 50_000 else 0),
            "metric": "auc", "deterministic": True,
            "scale_pos_weight": neg / pos if self.balance_classes else 1.0,
        }
        self._fit_baseline(frame.iloc[fit_idx], target[fit_idx])
        base = self._base_margin(frame)
        train = lgb.Dataset(frame.iloc[fit_idx], target[fit_idx], init_score=base[fit_idx],
                            free_raw_data=True)
        callbacks = []
        valid_sets = []
        cal_two = len(cal_idx) and len(np.unique(target[cal_idx])) == 2
        if cal_two:
            valid_sets = [lgb.Dataset(frame.iloc[cal_idx], target[cal_idx], reference=train,
                                      init_score=base[cal_idx])]
            callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        self.booster_ = lgb.train(params, train, num_boost_round=self.n_estimators,
                                  valid_sets=valid_sets, callbacks=callbacks)
        self.best_iteration_ = int(self.booster_.best_iteration or self.n_estimators)
        # calibration on held-out rows (or, when they hold one class, on the training rows)
        idx = cal_idx if cal_two else fit_idx
        raw = self._raw(frame.iloc[idx])
        self.calibrator_ = self._calibrate(raw, target[idx])
        self.calibration_rows_ = len(idx)
        self.calibrated_on_ = "held_out" if cal_two else "training"
        self.base_rate_ = float(target.mean())
        self.classes_ = np.array([0, 1])
        if cal_two:
            from sklearn.metrics import roc_auc_score

            self.validation_auc_ = float(roc_auc_score(target[cal_idx], raw))
        else:
            self.validation_auc_ = float("nan")
        return self

    def fit_table(self, table: pd.DataFrame, label: str, *, time: str | None = None,
                  exclude: tuple[str, ...] = ()) -> DefectionModel:
        """Fit on a flat table: every numeric column but ``label``, ``time`` and ``exclude``."""
        if label not in table:
            raise DefectionError(f"The table has no label column '{label}'.",
                                 hint=f"Columns: {', '.join(map(str, table.columns))}.")
        drop = {label, *(exclude or ()), *([time] if time else [])}
        X = table[[c for c in table.columns if c not in drop]].select_dtypes(
            include=["number", "bool"])
        return self.fit(X, table[label], time=table[time] if time else None)

    def _split(self, y: np.ndarray, time: Any) -> tuple[np.ndarray, np.ndarray, str]:
        n = len(y)
        if time is not None:
            t = pd.to_datetime(pd.Series(np.asarray(time)), errors="coerce")
            if t.isna().all():
                t = pd.Series(np.asarray(time))
            last = t.max()
            cal = (t == last).to_numpy()
            if cal.any() and (~cal).any():
                fit_idx = np.flatnonzero(~cal)
                if len(np.unique(y[fit_idx])) == 2:
                    return fit_idx, np.flatnonzero(cal), f"time: held out {last}"
        rng = np.random.default_rng(self.random_state)
        cal_mask = np.zeros(n, dtype=bool)
        for cls in (0.0, 1.0):
            members = np.flatnonzero(y == cls)
            k = round(len(members) * self.calibration_share)
            if 0 < k < len(members):
                cal_mask[rng.choice(members, k, replace=False)] = True
        if n < 50 or not cal_mask.any():
            return np.arange(n), np.array([], dtype=int), "none (too few rows)"
        return np.flatnonzero(~cal_mask), np.flatnonzero(cal_mask), "random stratified"

    def _calibrate(self, raw: np.ndarray, y: np.ndarray) -> Any:
        method = self.calibration
        if method == "auto":
            method = "isotonic" if len(y) >= self.min_isotonic else "sigmoid"
        if method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            return ("isotonic", IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
                    .fit(raw, y))
        from sklearn.linear_model import LogisticRegression

        return ("sigmoid", LogisticRegression(C=1e6).fit(raw.reshape(-1, 1), y))

    # -- use ----------------------------------------------------------------------------------
    def _frame(self, X: Any, *, fitting: bool = False) -> pd.DataFrame:
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=float))
        frame = frame.copy()
        frame.columns = [str(c) for c in frame.columns]
        if fitting:
            if frame.shape[1] == 0:
                raise DefectionError("No feature column to learn from.")
            self.feature_names_in_ = np.array(frame.columns, dtype=object)
            self.n_features_in_ = frame.shape[1]
        else:
            self._check_fitted()
            missing = [c for c in self.feature_names_in_ if c not in frame]
            if missing:
                raise DefectionError(f"Features missing for the defection model: "
                                     f"{', '.join(missing)}.")
            frame = frame[list(self.feature_names_in_)]
        return frame.apply(pd.to_numeric, errors="coerce").astype(float)

    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            raise ModelError("This DefectionModel is not fitted yet.", hint="Call fit first.")

    def _fit_baseline(self, frame: pd.DataFrame, y: np.ndarray) -> None:
        """Logistic regression on log1p of the ``baseline`` columns: the boosting starts from
        its log-odds (``init_score``) and learns what it misses."""
        self.baseline_ = None
        cols = [c for c in (self.baseline or ()) if c in frame.columns]
        if not cols:
            return
        from sklearn.linear_model import LogisticRegression

        Z = self._baseline_inputs(frame, cols)
        self.baseline_ = (cols, np.nanmean(Z, axis=0),
                          LogisticRegression(max_iter=1000).fit(
                              np.nan_to_num(Z - np.nanmean(Z, axis=0)), y))

    @staticmethod
    def _baseline_inputs(frame: pd.DataFrame, cols: list[str]) -> np.ndarray:
        return np.log1p(np.clip(frame[cols].to_numpy(dtype=float), 0, None))

    def _base_margin(self, frame: pd.DataFrame) -> np.ndarray:
        if self.baseline_ is None:
            return np.zeros(len(frame))
        cols, mean, model = self.baseline_
        Z = np.nan_to_num(self._baseline_inputs(frame, cols) - mean)
        return np.asarray(model.decision_function(Z), dtype=float)

    def _raw(self, frame: pd.DataFrame) -> np.ndarray:
        trees = self.booster_.predict(frame, num_iteration=self.best_iteration_, raw_score=True)
        return np.asarray(trees, dtype=float) + self._base_margin(frame)

    def decision_function(self, X: Any) -> np.ndarray:
        """Uncalibrated log-odds (with the class re-weighting)."""
        return self._raw(self._frame(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated probabilities: column 0 = stays, column 1 = defects; never NaN."""
        raw = self._raw(self._frame(X))
        kind, model = self.calibrator_
        p = (model.predict(raw) if kind == "isotonic"
             else model.predict_proba(raw.reshape(-1, 1))[:, 1])
        # isotonic steps reach 0 and 1 at the extremes: no customer is certain to stay or go
        floor = 0.5 / max(self.calibration_rows_, 1)
        p = np.clip(np.nan_to_num(np.asarray(p, dtype=float), nan=self.base_rate_),
                    floor, 1.0 - floor)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any, threshold: float = 0.5) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= threshold).astype(int)

    def contributions(self, X: Any) -> pd.DataFrame:
        """Per-row contribution of each feature to the log-odds (LightGBM ``pred_contrib``)."""
        frame = self._frame(X)
        values = self.booster_.predict(frame, num_iteration=self.best_iteration_,
                                       pred_contrib=True)
        cols = [*self.feature_names_in_, "_bias"]
        out = pd.DataFrame(np.asarray(values), index=frame.index, columns=cols)
        if self.baseline_ is not None:  # the linear baseline's exact per-feature terms
            names, mean, model = self.baseline_
            Z = np.nan_to_num(self._baseline_inputs(frame, names) - mean)
            out[names] = out[names].to_numpy() + Z * model.coef_[0]
            out["_bias"] += float(model.intercept_[0])
        return out

    def feature_importances(self) -> pd.Series:
        """Total gain per feature, largest first."""
        self._check_fitted()
        gain = self.booster_.feature_importance(importance_type="gain",
                                                iteration=self.best_iteration_)
        return pd.Series(gain, index=self.feature_names_in_).sort_values(ascending=False)
