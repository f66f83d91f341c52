"""DefectionModel: gradient boosting (LightGBM) blended with a regularised logistic regression,
calibrated probabilities and reasons.

scikit-learn contract: ``__init__`` stores parameters, ``fit(X, y)`` validates and returns
``self``, learned state ends in ``_``. Works on any flat table with a label column (``fit`` on a
DataFrame, or :meth:`DefectionModel.fit_table`).

* **Validation fold**: with ``time`` (e.g. the cutoff of each row) the rows of the latest time
  are held out; with ``groups`` too (the customer of each row), only the latest rows of a random
  ``validation_share`` of the customers are held out and *every* row of those customers leaves
  the training part (stacked cutoffs repeat a customer with overlapping label windows: a tree
  would otherwise recognise them). Without ``time`` a stratified random share is held out.
* **Two learners, one choice on the fold**: boosting (early stopping on the fold's log loss;
  on small data a shallow shape, few leaves of at least 2 % of the rows, competes with the
  configured one) and an L2 logistic regression on log-scaled features (C picked on the fold).
  Their log-odds are blended, ``w`` x trees + (1 - w) x linear, with the tree shape and ``w``
  in 0, 0.1, ..., 1 minimising the fold's log loss: on small data the linear model takes
  over, on large or rich data the trees do (stacking with one weight, Wolpert 1992).
* **Refit**: below ``refit_max_rows`` both learners are refitted on every row (the fold's rows
  are the most recent, the ones that matter most) with the chosen C, rounds and weight.
* **Calibration**: Platt (isotonic from ``min_isotonic`` rows) fitted on the fold's blended
  log-odds from the learners that did not see it (Platt 1999; Niculescu-Mizil & Caruana 2005),
  so the probabilities follow the latest period's rate.
* **Reasons**: LightGBM's per-row TreeSHAP contributions (``pred_contrib=True``) times ``w`` plus
  the logistic regression's exact per-feature terms times 1 - w, in log-odds, by
  :meth:`contributions`; :mod:`._reasons` puts words on them.

LightGBM is imported lazily (the ``models`` extra).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from onetoone._lightgbm import lightgbm
from onetoone.differentiate.defection._paths import path_contributions
from onetoone.differentiate.defection._training import DefectionError, SingleClassError
from onetoone.errors import ModelError


def _lightgbm() -> Any:
    return lightgbm("The defection model")


class DefectionModel:
    """Probability that a customer defects, from a table of features."""

    best_iteration_: int

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
        balance_classes: bool = False,
        random_state: int = 0,
        n_jobs: int = 0,
        linear: bool = True,
        validation_share: float = 0.3,
        refit_max_rows: int = 300_000,
        monotone: dict[str, int] | None = None,
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
        self.n_jobs = n_jobs
        self.linear = linear
        self.validation_share = validation_share
        self.refit_max_rows = refit_max_rows
        self.monotone = monotone

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, *, time: Any = None, groups: Any = None) -> DefectionModel:
        """Fit on features ``X`` and labels ``y`` (1 = defected); ``time`` orders the rows,
        ``groups`` says which rows belong to the same customer (see the module docstring)."""
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
        fit_idx, cal_idx, self.validation_ = self._split(target, time, groups)
        cal_two = bool(len(cal_idx)) and len(np.unique(target[cal_idx])) == 2
        # 1. both learners on the training part, chosen and weighted on the held-out fold
        self.linear_ = None
        linear_cal = None
        if self.linear:
            self.linear_, linear_cal = self._fit_linear(
                frame.iloc[fit_idx], target[fit_idx],
                (frame.iloc[cal_idx], target[cal_idx]) if cal_two else None)
        self.refitted_ = False
        shapes = self._tree_shapes(len(fit_idx))
        best: tuple[Any, ...] | None = None
        for shape in shapes if cal_two else shapes[:1]:
            self.booster_ = self._fit_booster(frame, target, fit_idx,
                                              cal_idx if cal_two else None, shape=shape)
            trees_cal = self._trees(frame.iloc[cal_idx]) if cal_two else np.array([])
            self.blend_weight_ = 1.0 if self.linear_ is None else 0.5
            if cal_two and linear_cal is not None:
                self.blend_weight_ = _best_weight(trees_cal, linear_cal, target[cal_idx])
            raw_cal = self._mix(trees_cal, linear_cal)
            loss = _log_loss(target[cal_idx], raw_cal) if cal_two else 0.0
            if best is None or loss < best[0]:
                best = (loss, self.booster_, self.best_iteration_, shape, self.blend_weight_,
                        raw_cal)
        assert best is not None
        self.booster_, self.best_iteration_ = best[1], int(best[2])
        self.tree_shape_, self.blend_weight_, raw_cal = best[3], float(best[4]), best[5]
        if cal_two:
            from sklearn.metrics import roc_auc_score

            self.validation_auc_ = float(roc_auc_score(target[cal_idx], raw_cal))
        else:
            self.validation_auc_ = float("nan")
        # 2. refit on every row (small data: the held-out rows are the most recent ones)
        self.refitted_ = bool(cal_two and len(frame) <= self.refit_max_rows)
        if self.refitted_:
            every_row = np.arange(len(frame))
            if self.linear_ is not None:
                self.linear_, _ = self._fit_linear(frame, target, None, c=self.linear_[-1])
            self.booster_ = self._fit_booster(frame, target, every_row, None,
                                              shape=self.tree_shape_,
                                              rounds=self.best_iteration_)
        # 3. calibration on the held-out fold's out-of-sample log-odds (or the training rows)
        if cal_two:
            idx, raw = cal_idx, raw_cal
        else:
            idx = fit_idx
            raw = self._raw(frame.iloc[idx])
        self.calibrator_ = self._calibrate(np.asarray(raw), target[idx])
        self.calibration_rows_ = len(idx)
        self.calibrated_on_ = "held_out" if cal_two else "training"
        self.base_rate_ = float(target.mean())
        self.classes_ = np.array([0, 1])
        return self

    def _tree_shapes(self, rows: int) -> list[tuple[int, int]]:
        """(leaves, rows per leaf) to try: below 2,000 rows per leaf, small data also get a
        shallow shape, leaves of at least 2 % of the rows, one leaf per 2,000 rows (4 at
        least), listed first (the one used when nothing is held out)."""
        shallow = (int(min(self.num_leaves, max(4, rows // 2000))),
                   max(self.min_child_samples, rows // 50))
        standard = (int(self.num_leaves), int(self.min_child_samples))
        return [shallow, standard] if shallow[0] < standard[0] else [standard]

    def _fit_booster(self, frame: pd.DataFrame, target: np.ndarray, fit_idx: np.ndarray,
                     cal_idx: np.ndarray | None, *, shape: tuple[int, int],
                     rounds: int | None = None) -> Any:
        """Regularised boosting of ``shape`` (leaves, rows per leaf); early stopping on
        ``cal_idx`` when given."""
        lgb = _lightgbm()
        pos = max(float(target[fit_idx].sum()), 1.0)
        neg = max(float(len(fit_idx) - target[fit_idx].sum()), 1.0)
        self.prior_shift_ = float(np.log(neg / pos)) if self.balance_classes else 0.0
        params = {
            "objective": "binary", "learning_rate": self.learning_rate,
            "num_leaves": shape[0], "min_data_in_leaf": shape[1],
            "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
            "lambda_l2": 10.0, "seed": self.random_state, "verbosity": -1,
            # one thread below 50k rows: OpenMP start-up and spinning cost more than they give
            "num_threads": self.n_jobs or (1 if len(frame) < 50_000 else 0),
            "metric": "binary_logloss", "deterministic": True,
            "scale_pos_weight": neg / pos if self.balance_classes else 1.0,
        }
        if self.monotone:
            params["monotone_constraints"] = [int(self.monotone.get(c, 0))
                                              for c in self.feature_names_in_]
        # trees start from log-odds 0 (not the base rate): the class weights and the prior
        # shift removed at prediction assume it
        train = lgb.Dataset(frame.iloc[fit_idx], target[fit_idx],
                            init_score=np.zeros(len(fit_idx)), free_raw_data=True)
        if rounds is not None:
            return lgb.train(params, train, num_boost_round=max(rounds, 1))
        callbacks: list[Any] = []
        valid_sets = []
        if cal_idx is not None:
            valid_sets = [lgb.Dataset(frame.iloc[cal_idx], target[cal_idx], reference=train,
                                      init_score=np.zeros(len(cal_idx)))]
            callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        booster = lgb.train(params, train, num_boost_round=self.n_estimators,
                            valid_sets=valid_sets, callbacks=callbacks)
        self.best_iteration_ = int(booster.best_iteration or self.n_estimators)
        return booster

    # -- the logistic regression on log-scaled features ---------------------------------------
    def _fit_linear(self, frame: pd.DataFrame, y: np.ndarray,
                    held_out: tuple[pd.DataFrame, np.ndarray] | None,
                    c: float | None = None) -> tuple[tuple[Any, ...], np.ndarray | None]:
        """L2 logistic regression on log1p of the non-negative columns (signed ones as they
        are), missing values at the median plus a missing flag, standardised. C is chosen on
        ``held_out`` (log loss) among 0.01, 0.1 and 1 unless given. Returns the fitted state
        and the held-out log-odds."""
        from sklearn.linear_model import LogisticRegression

        values = frame.to_numpy(dtype=float)
        logged = np.nanmin(np.where(np.isnan(values), 0.0, values), axis=0) >= 0
        median = np.nanmedian(np.where(logged, np.log1p(np.clip(values, 0, None)), values),
                              axis=0)
        median = np.nan_to_num(median)
        flagged = np.isnan(values).any(axis=0)
        state: tuple[Any, ...] = (logged, median, flagged)
        Z = _linear_inputs(values, state)
        mean, scale = Z.mean(axis=0), Z.std(axis=0)
        scale[scale < 1e-9] = np.inf  # a column constant in training weighs nothing
        Z = (Z - mean) / scale
        grid = [c] if c is not None else [0.01, 0.1, 1.0]
        best: tuple[float, Any, float, np.ndarray | None] | None = None
        for C in grid:
            model = LogisticRegression(C=C, max_iter=2000).fit(Z, y)
            out = None
            loss = 0.0
            if held_out is not None:
                Zh = np.clip((_linear_inputs(held_out[0].to_numpy(dtype=float), state) - mean)
                             / scale, -_CLIP, _CLIP)
                out = np.asarray(model.decision_function(Zh), dtype=float)
                loss = _log_loss(held_out[1], out)
            if best is None or loss < best[0]:
                best = (loss, model, C, out)
        assert best is not None
        return (*state, mean, scale, best[1], best[2]), best[3]

    def _linear_terms(self, frame: pd.DataFrame) -> np.ndarray:
        """Per-feature terms of the logistic regression's log-odds (rows x features)."""
        assert self.linear_ is not None
        logged, median, flagged, mean, scale, model, _ = self.linear_
        values = frame.to_numpy(dtype=float)
        Z = (_linear_inputs(values, (logged, median, flagged)) - mean) / scale
        terms = np.clip(Z, -_CLIP, _CLIP) * model.coef_[0]  # no wild extrapolation
        k = values.shape[1]
        per_feature = terms[:, :k].copy()
        per_feature[:, np.flatnonzero(flagged)] += terms[:, k:]
        return per_feature

    def _linear(self, frame: pd.DataFrame) -> np.ndarray:
        assert self.linear_ is not None
        return self._linear_terms(frame).sum(axis=1) + float(self.linear_[5].intercept_[0])

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

    def _split(self, y: np.ndarray, time: Any,
               groups: Any = None) -> tuple[np.ndarray, np.ndarray, str]:
        n = len(y)
        rng = np.random.default_rng(self.random_state)
        if time is not None:
            t = pd.to_datetime(pd.Series(np.asarray(time)), errors="coerce")
            if t.isna().all():
                t = pd.Series(np.asarray(time))
            last = t.max()
            cal = (t == last).to_numpy()
            if groups is not None and cal.any() and (~cal).any():
                g = pd.Series(np.asarray(groups))
                ids = g[cal].unique()
                k = round(len(ids) * self.validation_share)
                if 0 < k < len(ids):
                    held = g.isin(rng.choice(ids, k, replace=False)).to_numpy()
                    fit_idx = np.flatnonzero(~held)
                    if len(np.unique(y[fit_idx])) == 2:
                        return (fit_idx, np.flatnonzero(held & cal),
                                f"time: held out {last}, {k:,} customers unseen in training")
            if cal.any() and (~cal).any():
                fit_idx = np.flatnonzero(~cal)
                if len(np.unique(y[fit_idx])) == 2:
                    return fit_idx, np.flatnonzero(cal), f"time: held out {last}"
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

    def _trees(self, frame: pd.DataFrame) -> np.ndarray:
        """The boosting's log-odds (prior shift of class weights removed)."""
        trees = self.booster_.predict(frame, num_iteration=self._rounds(), raw_score=True)
        return np.asarray(trees, dtype=float) - self.prior_shift_

    def _rounds(self) -> int | None:
        return None if getattr(self, "refitted_", False) else self.best_iteration_

    def _mix(self, trees: np.ndarray, linear: np.ndarray | None) -> np.ndarray:
        w = self.blend_weight_
        return trees if linear is None or w >= 1 else w * trees + (1 - w) * linear

    def _raw(self, frame: pd.DataFrame) -> np.ndarray:
        trees = self._trees(frame)
        if self.linear_ is None or self.blend_weight_ >= 1:
            return trees
        return self._mix(trees, self._linear(frame))

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
        # (Platt never does: a tiny floor keeps its ranking free of ties)
        floor = 0.5 / max(self.calibration_rows_, 1) if kind == "isotonic" else 1e-6
        p = np.clip(np.nan_to_num(np.asarray(p, dtype=float), nan=self.base_rate_),
                    floor, 1.0 - floor)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any, threshold: float = 0.5) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= threshold).astype(int)

    def contributions(self, X: Any, *, method: str = "treeshap") -> pd.DataFrame:
        """Per-row contribution of each feature to the blended log-odds: the trees' TreeSHAP
        values (LightGBM ``pred_contrib``) times w plus the logistic terms times 1 - w.

        ``method="path"``: the trees' part by path attribution instead (:mod:`._paths`, same
        sum per row, an approximation of TreeSHAP at a fraction of its cost on large bases)."""
        frame = self._frame(X)
        if method == "path":
            values = path_contributions(self.booster_, frame, self._rounds())
        elif method == "treeshap":
            values = self.booster_.predict(frame, num_iteration=self._rounds(),
                                           pred_contrib=True)
        else:
            raise DefectionError(f"Unknown contribution method '{method}'.",
                                 hint="Use 'treeshap' or 'path'.")
        cols = [*self.feature_names_in_, "_bias"]
        out = pd.DataFrame(np.asarray(values), index=frame.index, columns=cols)
        out["_bias"] -= self.prior_shift_
        w = self.blend_weight_
        if self.linear_ is not None and w < 1:
            out *= w
            out[list(self.feature_names_in_)] += (1 - w) * self._linear_terms(frame)
            out["_bias"] += (1 - w) * float(self.linear_[5].intercept_[0])
        return out

    def feature_importances(self) -> pd.Series:
        """Total gain per feature, largest first."""
        self._check_fitted()
        gain = self.booster_.feature_importance(importance_type="gain",
                                                iteration=self._rounds())
        return pd.Series(gain, index=self.feature_names_in_).sort_values(ascending=False)


#: Standardised inputs of the logistic regression are clipped to this many deviations.
_CLIP = 8.0


def _linear_inputs(values: np.ndarray, state: tuple[Any, ...]) -> np.ndarray:
    """log1p of the non-negative columns, missing values at the median, missing flags."""
    logged, median, flagged = state
    Z = np.where(logged, np.log1p(np.clip(values, 0, None)), values)
    missing = np.isnan(Z)
    Z = np.where(missing, median, Z)
    return np.hstack([Z, missing[:, flagged].astype(float)])


def _log_loss(y: np.ndarray, logit: np.ndarray) -> float:
    z = np.clip(logit, -30, 30)
    return float(np.mean(np.logaddexp(0, z) - y * z))


def _best_weight(trees: np.ndarray, linear: np.ndarray, y: np.ndarray) -> float:
    """Blend weight of the trees in 0, 0.1, ..., 1 with the lowest held-out log loss."""
    grid = np.round(np.linspace(0, 1, 11), 1)
    losses = [_log_loss(y, w * trees + (1 - w) * linear) for w in grid]
    return float(grid[int(np.argmin(losses))])
