"""Uplift models: who changes their behaviour *because* they are contacted.

A response model ranks "sure things", who buy whether contacted or not, first; an uplift model
ranks the *persuadables* first and gives the *do-not-disturbs* (whom a contact puts off) a
negative uplift (Radcliffe & Surry 2011). Trained on a randomised test: treated customers and a
control group.

:class:`UpliftModel` follows the scikit-learn contract; ``method``:

* ``"t_learner"``: one outcome model per arm, uplift = E[Y | x, arm] - E[Y | x, control]
  (the two-model approach; Kunzel et al. 2019, "T-learner").
* ``"class_transformation"``: one classifier of Z = Y*T + (1-Y)*(1-T); with as many treated as
  control customers, uplift = 2 P(Z = 1 | x) - 1 (Jaskowski & Jaroszewicz 2012, eq. 5). Arms of
  unequal size are reweighted to equal total weight, which the identity needs. Binary outcome.
* ``"x_learner"``: T-learner outcome models, then the imputed effects
  D1 = Y1 - mu0(x) of the treated and D0 = mu1(x) - Y0 of the controls, each regressed on x, and
  blended as g * tau0(x) + (1 - g) * tau1(x) with g the share treated (Kunzel et al. 2019,
  eq. 5-7; the share is the propensity of a randomised test).

``learner = "lightgbm"`` (text and category columns used natively, as categories learned at
``fit``) or ``"logistic"`` (one-hot encoded categories, standardised numbers; a linear
regression for a continuous outcome).

Metrics use scikit-uplift's argument order and definitions (Maksimov et al., scikit-uplift
0.5): :func:`uplift_at_k`, :func:`qini_curve`, :func:`qini_auc_score` (normalised by the
perfect model; Radcliffe 2007), :func:`uplift_by_percentile`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from onetoone._lightgbm import lightgbm
from onetoone.errors import ModelError
from onetoone.store import drop_frame, show_frame

METHODS = ("t_learner", "class_transformation", "x_learner")
LEARNERS = ("lightgbm", "logistic")


class UpliftModel:
    """Uplift of a treatment (or of each arm) over a control group, per customer."""

    def __init__(
        self,
        method: str = "t_learner",
        learner: str = "lightgbm",
        control: Any = 0,
        n_estimators: int = 200,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 100,
        random_state: int = 0,
    ) -> None:
        self.method = method
        self.learner = learner
        self.control = control
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.random_state = random_state

    # -- fit -----------------------------------------------------------------------------------
    def fit(self, X: Any, treatment: Any, y: Any) -> UpliftModel:
        """Learn from a randomised test: features ``X``, ``treatment`` (0/1, or arm labels with
        the ``control`` arm), outcome ``y`` (binary, or a value such as spend)."""
        if self.method not in METHODS:
            raise ModelError(
                f"Unknown uplift method {self.method!r}.", hint=f"Use one of: {', '.join(METHODS)}."
            )
        if self.learner not in LEARNERS:
            raise ModelError(
                f"Unknown learner {self.learner!r}.", hint=f"Use one of: {', '.join(LEARNERS)}."
            )
        frame = _frame(X)
        arms = pd.Series(np.asarray(treatment, dtype=object)).reset_index(drop=True)
        target = pd.to_numeric(pd.Series(np.asarray(y)), errors="coerce").to_numpy(float)
        if not len(frame) == len(arms) == len(target):
            raise ModelError(
                f"X has {len(frame)} rows, treatment {len(arms)} and y "
                f"{len(target)}: they must be the same rows."
            )
        if arms.isna().any() or np.isnan(target).any():
            raise ModelError(
                "treatment and y must have no missing value.",
                hint="Drop the rows without a treatment or an outcome first.",
            )
        keys = arms.map(str).to_numpy()  # arms compared by their text: 1 and "1" are one arm
        labels = {str(a): a for a in pd.unique(arms)}
        if str(self.control) not in labels:
            raise ModelError(
                f"There is no control arm {self.control!r} in the treatment "
                f"(arms: {', '.join(sorted(labels))}).",
                hint="Name the control arm with UpliftModel(control=...).",
            )
        self.arms_ = [labels[k] for k in sorted(labels) if k != str(self.control)]
        if not self.arms_:
            raise ModelError("Every row is in the control arm: there is no treatment to measure.")
        values = np.unique(target)
        self.binary_ = bool(np.isin(values, (0.0, 1.0)).all())
        if self.method == "class_transformation" and not self.binary_:
            raise ModelError(
                "The class transformation needs a binary outcome (0/1).",
                hint="Use method='t_learner' or 'x_learner' for a value.",
            )
        if len(values) < 2:
            raise ModelError("The outcome has a single value: there is nothing to learn.")
        self.categories_ = {
            c: pd.Index(frame[c].dropna().unique())
            for c in frame.columns
            if not pd.api.types.is_numeric_dtype(frame[c])
        }
        self.columns_ = list(frame.columns)
        is_control = keys == str(self.control)
        self.models_: list[dict[str, Any]] = []
        for arm in self.arms_:
            treated = keys == str(arm)
            keep = treated | is_control
            Xa, ya, ta = frame[keep].reset_index(drop=True), target[keep], treated[keep]
            if min(ta.sum(), (~ta).sum()) < 2 or (
                any(len(np.unique(ya[side])) < 2 for side in (ta, ~ta)) and self.binary_
            ):
                raise ModelError(
                    f"Arm {arm!r} or the control group has too few rows, or a "
                    "single outcome: its uplift cannot be learned."
                )
            self.models_.append(self._fit_arm(Xa, ta, ya))
        return self

    def _fit_arm(self, X: pd.DataFrame, t: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        if self.method == "class_transformation":
            z = (y * t + (1 - y) * (1 - t)).astype(int)
            share = t.mean()
            weight = np.where(t, 0.5 / share, 0.5 / (1 - share))
            return {"z": self._model(X, z, classify=True, weight=weight)}
        mu1 = self._model(X[t], y[t], classify=self.binary_)
        mu0 = self._model(X[~t], y[~t], classify=self.binary_)
        out = {"mu1": mu1, "mu0": mu0}
        if self.method == "x_learner":
            d1 = y[t] - self._predict(mu0, X[t])
            d0 = self._predict(mu1, X[~t]) - y[~t]
            out["tau1"] = self._model(X[t], d1, classify=False)
            out["tau0"] = self._model(X[~t], d0, classify=False)
            out["g"] = float(t.mean())
        return out

    # -- predict ------------------------------------------------------------------------------
    def predict(self, X: Any) -> np.ndarray:
        """Uplift per row: a 1-D array for one treatment, (n, arms) for several (``arms_``)."""
        if not hasattr(self, "models_"):
            raise ModelError("This UpliftModel is not fitted yet.", hint="Call fit first.")
        frame = _frame(X)
        missing = [c for c in self.columns_ if c not in frame.columns]
        if missing:
            raise ModelError(
                f"X lacks the columns the model was fitted on: {', '.join(map(str, missing))}."
            )
        frame = frame[self.columns_]
        out = np.column_stack([self._uplift(m, frame) for m in self.models_])
        return out[:, 0] if out.shape[1] == 1 else out

    def _uplift(self, m: dict[str, Any], X: pd.DataFrame) -> np.ndarray:
        if self.method == "class_transformation":
            return 2.0 * self._predict(m["z"], X) - 1.0
        if self.method == "x_learner":
            g = m["g"]
            return g * self._predict(m["tau0"], X) + (1 - g) * self._predict(m["tau1"], X)
        return self._predict(m["mu1"], X) - self._predict(m["mu0"], X)

    # -- learners -----------------------------------------------------------------------------
    def _model(
        self, X: pd.DataFrame, y: np.ndarray, *, classify: bool, weight: np.ndarray | None = None
    ) -> Any:
        if self.learner == "logistic":
            return _linear(X, y, classify, weight, self.categories_)
        lgb = lightgbm("The uplift model's learner 'lightgbm'")
        params = {
            "objective": "binary" if classify else "regression",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "seed": self.random_state,
            "deterministic": True,
            "verbosity": -1,
            "num_threads": 0,
        }
        data = lgb.Dataset(self._encode(X), y, weight=weight, free_raw_data=True)
        return ("lightgbm", lgb.train(params, data, num_boost_round=self.n_estimators))

    def _predict(self, model: Any, X: pd.DataFrame) -> np.ndarray:
        kind, fitted = model
        if kind == "lightgbm":
            return np.asarray(fitted.predict(self._encode(X)), dtype=float)
        pipeline, classify = fitted
        if classify:
            return np.asarray(pipeline.predict_proba(X)[:, 1], dtype=float)
        return np.asarray(pipeline.predict(X), dtype=float)

    def _encode(self, X: pd.DataFrame) -> pd.DataFrame:
        """Text columns as the categories seen at fit (others as missing), for LightGBM."""
        out = X.copy()
        for column, categories in self.categories_.items():
            out[column] = pd.Categorical(out[column], categories=categories)
        return out


def _linear(
    X: pd.DataFrame,
    y: np.ndarray,
    classify: bool,
    weight: np.ndarray | None,
    categories: dict[str, pd.Index],
) -> tuple[str, tuple[Any, bool]]:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    text = [c for c in X.columns if c in categories and len(categories[c])]
    # columns never filled (text or numbers) say nothing: left out
    numbers = [c for c in X.columns if c not in categories and X[c].notna().any()]
    prepare = ColumnTransformer(
        [
            ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), numbers),
            (
                "text",
                OneHotEncoder(
                    categories=[list(categories[c]) for c in text], handle_unknown="ignore"
                ),
                text,
            ),
        ]
    )
    estimator = LogisticRegression(max_iter=1000) if classify else LinearRegression()
    pipeline = make_pipeline(prepare, estimator)
    name = pipeline.steps[-1][0]
    pipeline.fit(X, y, **({f"{name}__sample_weight": weight} if weight is not None else {}))
    return ("logistic", (pipeline, classify))


def _frame(X: Any) -> pd.DataFrame:
    frame = X.copy() if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X))
    frame.columns = [str(c) for c in frame.columns]
    for column in frame.columns:
        if not (
            pd.api.types.is_numeric_dtype(frame[column])
            or pd.api.types.is_bool_dtype(frame[column])
        ):
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
        elif pd.api.types.is_bool_dtype(frame[column]):
            frame[column] = frame[column].astype(float)
    return frame.reset_index(drop=True)


def _trapezoid(y: Any, x: Any) -> float:
    """Area under the polyline (x, y) by the trapezoidal rule."""
    y, x = np.asarray(y, dtype=float), np.asarray(x, dtype=float)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


# -- metrics (scikit-uplift's definitions and argument order) -----------------------------------
def _arrays(y_true: Any, uplift: Any, treatment: Any) -> tuple[np.ndarray, ...]:
    y = np.asarray(y_true, dtype=float)
    u = np.asarray(uplift, dtype=float)
    t = np.asarray(treatment, dtype=float)
    if not len(y) == len(u) == len(t):
        raise ModelError("y_true, uplift and treatment must have the same length.")
    if not np.isin(t, (0.0, 1.0)).all():
        raise ModelError("treatment must be 0 (control) or 1 (treated).")
    if t.min() == t.max():
        raise ModelError("Both the treated and the control group are needed.")
    if np.isnan(y).any() or np.isnan(u).any():
        raise ModelError("y_true and uplift must have no missing value.")
    return y, u, t


def uplift_at_k(
    y_true: Any, uplift: Any, treatment: Any, strategy: str = "overall", k: float | int = 0.3
) -> float:
    """Response rate of the treated minus that of the controls among the top ``k`` by uplift.

    ``strategy="overall"``: the top k of all customers; ``"by_group"``: the top k of the
    treated and the top k of the controls, each ranked on its own. ``k`` a share or a count.
    """
    y, u, t = _arrays(y_true, uplift, treatment)
    order = np.argsort(u, kind="mergesort")[::-1]
    y, t = y[order], t[order]
    if strategy == "overall":
        n = int(len(y) * k) if isinstance(k, float) else int(k)
        top_y, top_t = y[:n], t[:n]
        if top_t.min() == top_t.max():
            raise ModelError(f"The top {n} holds only one group: choose a larger k.")
        return float(top_y[top_t == 1].mean() - top_y[top_t == 0].mean())
    if strategy == "by_group":
        n_t = int(t.sum() * k) if isinstance(k, float) else int(k)
        n_c = int((1 - t).sum() * k) if isinstance(k, float) else int(k)
        if min(n_t, n_c) < 1:
            raise ModelError("k leaves a group empty: choose a larger k.")
        return float(y[t == 1][:n_t].mean() - y[t == 0][:n_c].mean())
    raise ModelError(f"Unknown strategy {strategy!r}.", hint="Use 'overall' or 'by_group'.")


def qini_curve(y_true: Any, uplift: Any, treatment: Any) -> tuple[np.ndarray, np.ndarray]:
    """Customers targeted (by decreasing uplift) and the incremental responses among them:
    treated responses minus control responses scaled to the treated count (Radcliffe 2007)."""
    y, u, t = _arrays(y_true, uplift, treatment)
    order = np.argsort(u, kind="mergesort")[::-1]
    y, u, t = y[order], u[order], t[order]
    ends = np.r_[np.flatnonzero(np.diff(u)), len(u) - 1]  # ties count as one step
    n_t = np.cumsum(t)[ends]
    y_t = np.cumsum(y * t)[ends]
    y_c = np.cumsum(y * (1 - t))[ends]
    n_all = ends + 1.0
    n_c = n_all - n_t
    curve = y_t - y_c * np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c != 0)
    return np.r_[0.0, n_all], np.r_[0.0, curve]


def _perfect_qini(
    y: np.ndarray, t: np.ndarray, negative_effect: bool
) -> tuple[np.ndarray, np.ndarray]:
    if negative_effect:  # responders treated first, responders in control last
        return qini_curve(y, y * t - y * (1 - t), t)
    gain = y[t == 1].sum() - (t == 1).sum() * y[t == 0].sum() / (t == 0).sum()
    return np.array([0.0, gain, len(y)]), np.array([0.0, gain, gain])


def qini_auc_score(y_true: Any, uplift: Any, treatment: Any, negative_effect: bool = True) -> float:
    """Area between the Qini curve and the random line, over that of the perfect model."""
    y, u, t = _arrays(y_true, uplift, treatment)
    x_a, q_a = qini_curve(y, u, t)
    x_p, q_p = _perfect_qini(y, t, negative_effect)
    baseline = float(_trapezoid([0.0, q_p[-1]], [0.0, x_p[-1]]))
    perfect = float(_trapezoid(q_p, x_p)) - baseline
    if perfect == 0:
        raise ModelError("The perfect Qini curve is flat: no responses to rank.")
    return (float(_trapezoid(q_a, x_a)) - baseline) / perfect


def uplift_by_percentile(
    y_true: Any, uplift: Any, treatment: Any, strategy: str = "overall", bins: int = 10
) -> pd.DataFrame:
    """Per tenth (``bins``) of customers by decreasing uplift: counts, response rates of the
    treated and of the controls, and their difference. ``"by_group"`` ranks each group on
    its own."""
    y, u, t = _arrays(y_true, uplift, treatment)
    if strategy not in ("overall", "by_group"):
        raise ModelError(f"Unknown strategy {strategy!r}.", hint="Use 'overall' or 'by_group'.")
    order = np.argsort(u, kind="mergesort")[::-1]
    y, t = y[order], t[order]
    rows = []
    if strategy == "overall":
        parts = zip(np.array_split(y, bins), np.array_split(t, bins), strict=True)
        for by, bt in parts:
            rows.append(
                (int(bt.sum()), int((1 - bt).sum()), _mean(by[bt == 1]), _mean(by[bt == 0]))
            )
    else:
        treated = np.array_split(y[t == 1], bins)
        control = np.array_split(y[t == 0], bins)
        for yt, yc in zip(treated, control, strict=True):
            rows.append((len(yt), len(yc), _mean(yt), _mean(yc)))
    out = pd.DataFrame(
        rows,
        columns=["n_treatment", "n_control", "response_rate_treatment", "response_rate_control"],
    )
    out["uplift"] = out["response_rate_treatment"] - out["response_rate_control"]
    out.index = pd.Index(
        [f"{round(100 * i / bins)}-{round(100 * (i + 1) / bins)}" for i in range(bins)],
        name="percentile",
    )
    return out


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")


# -- uplift of an action, from its decisions (treated against withheld) -----------------------
def uplift_key(action_id: str) -> str:
    """The profile attribute (a ``customer_scores.scores`` key) of a customer's uplift for an
    action, written by :func:`score_action_uplift`."""
    return f"uplift_{action_id}"


#: What the company knows of a customer as of a day: golden record and the latest scores
#: strictly before it (parameters: none; ``_uplift_units(customer_id, day)`` registered).
FEATURES_SQL = """
    SELECT u.customer_id, c.gender, c.region, c.language, c.record_count,
           date_diff('year', c.birth_date, s.as_of) AS age,
           s.frequency, s.recency, s."T", s.monetary_value, s.p_alive, s.clv, s.value_tier,
           s.scores->>'needs_segment' AS needs_segment,
           TRY_CAST(s.scores->>'defection_risk' AS DOUBLE) AS defection_risk,
           TRY_CAST(s.scores->>'expected_spend' AS DOUBLE) AS expected_spend
    FROM _uplift_units u
    LEFT JOIN customers c USING (customer_id)
    ASOF LEFT JOIN customer_scores s ON u.customer_id = s.customer_id AND u.day > s.as_of
"""
MIN_PER_GROUP = 50


@dataclass
class UpliftRun:
    """An action's uplift model, how well it ranked held-out customers, what it wrote."""

    action: str
    method: str
    treated: int
    control: int
    uplift_at_30: float
    qini: float
    scored: int
    not_offered: int  # customers whose uplift is at or below the action's min_uplift

    def __str__(self) -> str:
        return (
            f"{self.action}: {self.method} on {self.treated:,} treated and {self.control:,} "
            f"withheld customers; held-out uplift@30 % {self.uplift_at_30:+.4f}, Qini "
            f"{self.qini:.4f}; {self.scored:,} customers scored, {self.not_offered:,} of "
            "them will not be offered it"
        )


def customer_features(con: Any, units: pd.DataFrame) -> pd.DataFrame:
    """What the company knew of each customer of ``units`` (``customer_id``, ``day``) the day
    before ``day``: golden record and latest scores, indexed by customer_id, in order."""
    show_frame(con, "_uplift_units", units[["customer_id", "day"]])
    try:
        return con.execute(FEATURES_SQL).df().set_index("customer_id").reindex(units["customer_id"])
    finally:
        drop_frame(con, "_uplift_units")


def score_action_uplift(
    con: Any,
    action: str,
    *,
    window_days: int,
    min_uplift: float = 0.0,
    method: str = "t_learner",
    learner: str = "lightgbm",
    seed: int = 0,
) -> UpliftRun:
    """Learn an action's uplift from its decisions and write it for every scored customer.

    Units: the customers the action was decided for, treated (given) or withheld (its holdout
    or the universal control group), with their conversion within ``window_days``
    (:func:`onetoone.measure.lift.action_outcomes`); features as of the day before each first
    decision (no later score leaks in). Half of them, drawn at random, measure the ranking
    (uplift@30 %, Qini); the model refit on all of them scores every customer's latest scores
    row and writes ``uplift_<action>`` into its ``scores`` (read by decisions when the action
    has ``rank_by = "uplift"``).
    """
    from sklearn.model_selection import train_test_split

    from onetoone.measure.lift import action_outcomes

    units = action_outcomes(con, action, window_days)
    if units.empty:
        raise ModelError(
            f"Action '{action}' has no decision yet: no uplift to learn.",
            hint="Decide with it first (onetoone decide, or the API).",
        )
    t = units["treated"].astype(int).to_numpy()
    y = units["converted"].astype(int).to_numpy()
    counts = {"treated": int(t.sum()), "withheld": int((1 - t).sum())}
    if min(counts.values()) < MIN_PER_GROUP or len(np.unique(y)) < 2:
        raise ModelError(
            f"Action '{action}' has {counts['treated']:,} treated and {counts['withheld']:,} "
            f"withheld customers, {int(y.sum()):,} conversions: too few to learn its uplift "
            f"(at least {MIN_PER_GROUP} in each group and conversions are needed).",
            hint="Give it a holdout_share, or wait for more decisions and responses.",
        )
    units = units.assign(day=pd.to_datetime(units["t0"]).dt.normalize())
    X = customer_features(con, units).reset_index(drop=True)
    strata = t * 2 + y
    stratify = strata if np.bincount(strata).min() >= 2 else None
    fit_idx, test_idx = train_test_split(
        np.arange(len(t)), test_size=0.5, random_state=seed, stratify=stratify
    )
    model = UpliftModel(method=method, learner=learner, random_state=seed)
    held_out = model.fit(X.iloc[fit_idx], t[fit_idx], y[fit_idx]).predict(X.iloc[test_idx])
    at_30 = uplift_at_k(y[test_idx], held_out, t[test_idx], strategy="by_group", k=0.3)
    qini = qini_auc_score(y[test_idx], held_out, t[test_idx])
    model.fit(X, t, y)
    everyone = con.execute(
        "SELECT customer_id, max(as_of) AS as_of FROM customer_scores GROUP BY customer_id"
    ).df()
    if everyone.empty:
        raise ModelError(
            "No customer is scored yet: there is nothing to write the uplift to.",
            hint="Run 'onetoone score' first.",
        )
    scoring = everyone.assign(day=pd.Timestamp.max.normalize())
    uplift = model.predict(customer_features(con, scoring).reset_index(drop=True))
    frame = pd.DataFrame(
        {
            "customer_id": everyone["customer_id"],
            "as_of": everyone["as_of"],
            "uplift": np.round(uplift, 6),
        }
    )
    show_frame(con, "_uplift_rows", frame)
    try:
        con.execute(
            "UPDATE customer_scores SET scores = json_merge_patch(coalesce(scores, '{}'), "
            "json_object(?, u.uplift)) FROM _uplift_rows u "
            "WHERE customer_scores.customer_id = u.customer_id "
            "AND customer_scores.as_of = u.as_of",
            [uplift_key(action)],
        )
    finally:
        drop_frame(con, "_uplift_rows")
    return UpliftRun(
        action,
        method,
        counts["treated"],
        counts["withheld"],
        at_30,
        qini,
        len(frame),
        int((uplift <= min_uplift).sum()),
    )
