"""Uplift on Hillstrom's e-mail test: onetoone beside scikit-uplift, same split, same run.

The published protocol (scikit-uplift's Hillstrom notebook): Womens E-Mail vs No E-Mail, target
``visit``, a 50/50 split (``train_test_split(..., test_size=0.5, random_state=42)``, stratified on
treatment and target); metrics on the held-out half: uplift@30 % (``strategy="by_group"``, as
the notebook) and the normalised Qini AUC. Published reference: uplift@30 % = 0.0661 (CatBoost
encoding and XGBoost, quoted, not rerun).

Side by side in this run:

* onetoone ``UpliftModel`` with ``method`` t_learner, class_transformation and x_learner
  (LightGBM, text columns native), and t_learner with ``learner="logistic"``;
* scikit-uplift 0.5.1 (``pip install 'onetoone[bench]'``) ``TwoModels`` and
  ``ClassTransformation`` with LightGBM classifiers on the same columns (categories native), and
  a two-model scikit-learn logistic regression on one-hot columns (what a user would write);
* the metrics of scikit-uplift computed on onetoone's predictions, to show the definitions agree.

Usage: ``python benchmarks/uplift.py`` (data from ``../shared/data/hillstrom`` or
``$ONETOONE_SHARED_DATA``).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from onetoone.measure.uplift import UpliftModel, qini_auc_score, uplift_at_k

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ONETOONE_SHARED_DATA", ROOT.parent / "shared" / "data"))
PUBLISHED = 0.0661


def hillstrom() -> tuple[pd.DataFrame, ...]:
    data = pd.read_csv(DATA / "hillstrom" / "hillstrom.csv")
    data = data[data["segment"] != "Mens E-Mail"].reset_index(drop=True)
    t = (data["segment"] == "Womens E-Mail").astype(int)
    y = data["visit"]
    X = data.drop(columns=["segment", "visit", "conversion", "spend"])
    return tuple(train_test_split(X, t, y, test_size=0.5, random_state=42,
                                  stratify=pd.concat([t, y], axis=1)))


def _categorical(X: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    out = X.copy()
    for c in out.columns:
        if out[c].dtype == object or pd.api.types.is_string_dtype(out[c]):
            out[c] = pd.Categorical(out[c], categories=sorted(like[c].unique()))
    return out


def _one_hot(X: pd.DataFrame, columns: pd.Index | None = None) -> pd.DataFrame:
    out = pd.get_dummies(X, dtype=float)
    return out if columns is None else out.reindex(columns=columns, fill_value=0.0)


def peers(X_tr: pd.DataFrame, X_te: pd.DataFrame, t_tr: Any, y_tr: Any) -> dict[str, Any]:
    """Predictions of the peers: scikit-uplift (when installed) and a two-model regression."""
    from lightgbm import LGBMClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out: dict[str, Any] = {}
    oh_tr = _one_hot(X_tr)
    oh_te = _one_hot(X_te, oh_tr.columns)
    started = time.perf_counter()
    m1 = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        oh_tr[t_tr.to_numpy() == 1], y_tr[t_tr.to_numpy() == 1])
    m0 = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        oh_tr[t_tr.to_numpy() == 0], y_tr[t_tr.to_numpy() == 0])
    out["two logistic regressions (scikit-learn)"] = (
        m1.predict_proba(oh_te)[:, 1] - m0.predict_proba(oh_te)[:, 1],
        time.perf_counter() - started)
    try:
        from sklift.models import ClassTransformation, TwoModels
    except ImportError:
        print("scikit-uplift is not installed (pip install 'onetoone[bench]'): its rows are "
              "left out.", file=sys.stderr)
        return out
    cat_tr, cat_te = _categorical(X_tr, X_tr), _categorical(X_te, X_tr)

    def lgbm() -> Any:
        return LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=15,
                              min_child_samples=100, random_state=0, verbose=-1)

    for name, model in (
        ("scikit-uplift TwoModels (LightGBM)",
         TwoModels(estimator_trmnt=lgbm(), estimator_ctrl=lgbm(), method="vanilla")),
        ("scikit-uplift ClassTransformation (LightGBM)", ClassTransformation(estimator=lgbm())),
    ):
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(cat_tr, y_tr, t_tr)
            uplift = model.predict(cat_te)
        out[name] = (np.asarray(uplift, dtype=float), time.perf_counter() - started)
    return out


def main() -> int:
    if not (DATA / "hillstrom" / "hillstrom.csv").exists():
        print(f"No Hillstrom data in {DATA / 'hillstrom'}.", file=sys.stderr)
        return 1
    X_tr, X_te, t_tr, t_te, y_tr, y_te = hillstrom()
    rows: list[tuple[str, float, float, float]] = []
    ours: dict[str, np.ndarray] = {}
    for method, learner in (("t_learner", "lightgbm"), ("class_transformation", "lightgbm"),
                            ("x_learner", "lightgbm"), ("t_learner", "logistic")):
        started = time.perf_counter()
        uplift = UpliftModel(method=method, learner=learner).fit(X_tr, t_tr, y_tr).predict(X_te)
        seconds = time.perf_counter() - started
        name = f"onetoone {method} ({learner})"
        ours[name] = uplift
        rows.append((name, uplift_at_k(y_te, uplift, t_te, strategy="by_group", k=0.3),
                     qini_auc_score(y_te, uplift, t_te), seconds))
    for name, (uplift, seconds) in peers(X_tr, X_te, t_tr, y_tr).items():
        rows.append((name, uplift_at_k(y_te, uplift, t_te, strategy="by_group", k=0.3),
                     qini_auc_score(y_te, uplift, t_te), seconds))
    print(f"Hillstrom, Womens E-Mail vs No E-Mail, target visit: {len(y_tr):,} rows to fit, "
          f"{len(y_te):,} held out (published uplift@30 %: {PUBLISHED})")
    print("| model | uplift@30 % | Qini AUC | seconds |")
    print("|---|---|---|---|")
    for name, at30, qini, seconds in rows:
        print(f"| {name} | {at30:.4f} | {qini:.4f} | {seconds:.1f} |")
    try:
        from sklift.metrics import qini_auc_score as sk_qini
        from sklift.metrics import uplift_at_k as sk_at_k
    except ImportError:
        return 0
    warnings.simplefilter("ignore", FutureWarning)  # scikit-uplift on scikit-learn 1.9
    for name, uplift in ours.items():
        a = uplift_at_k(y_te, uplift, t_te, strategy="by_group", k=0.3)
        b = sk_at_k(y_te, uplift, t_te, strategy="by_group", k=0.3)
        c, d = qini_auc_score(y_te, uplift, t_te), sk_qini(y_te, uplift, t_te)
        print(f"metrics agree with scikit-uplift on {name}: uplift@30 % {a:.6f} vs {b:.6f}, "
              f"Qini {c:.6f} vs {d:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
