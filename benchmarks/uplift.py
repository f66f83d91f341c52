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

On the demo company (``--demo N``): the demo's truth holds a randomised test at the start of its
holdout (half the people treated) with each person's true response type and response
probabilities. The company's own view of each person (golden record and scores of the
workspace after ``onetoone demo``) is the model's input; half the test trains, half is held
out. Reported: uplift@30 % and Qini on the observed responses, and, what only a synthetic
company can tell, the share of true persuadables and of do-not-disturbs among the top 30 %, and
the true incremental responses of targeting that top 30 % against a random 30 %. The measured
lift of the whole test (treated minus control response rate) is set against the true average
effect.

Usage: ``python benchmarks/uplift.py`` (data from ``../shared/data/hillstrom`` or
``$ONETOONE_SHARED_DATA``); ``python benchmarks/uplift.py --demo 20000``.
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
    return tuple(
        train_test_split(
            X, t, y, test_size=0.5, random_state=42, stratify=pd.concat([t, y], axis=1)
        )
    )


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
        oh_tr[t_tr.to_numpy() == 1], y_tr[t_tr.to_numpy() == 1]
    )
    m0 = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        oh_tr[t_tr.to_numpy() == 0], y_tr[t_tr.to_numpy() == 0]
    )
    out["two logistic regressions (scikit-learn)"] = (
        m1.predict_proba(oh_te)[:, 1] - m0.predict_proba(oh_te)[:, 1],
        time.perf_counter() - started,
    )
    try:
        from sklift.models import ClassTransformation, TwoModels
    except ImportError:
        print(
            "scikit-uplift is not installed (pip install 'onetoone[bench]'): its rows are "
            "left out.",
            file=sys.stderr,
        )
        return out
    cat_tr, cat_te = _categorical(X_tr, X_tr), _categorical(X_te, X_tr)

    def lgbm() -> Any:
        return LGBMClassifier(
            n_estimators=200,
            learning_rate=0.05,
            num_leaves=15,
            min_child_samples=100,
            random_state=0,
            verbose=-1,
        )

    for name, model in (
        (
            "scikit-uplift TwoModels (LightGBM)",
            TwoModels(estimator_trmnt=lgbm(), estimator_ctrl=lgbm(), method="vanilla"),
        ),
        ("scikit-uplift ClassTransformation (LightGBM)", ClassTransformation(estimator=lgbm())),
    ):
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(cat_tr, y_tr, t_tr)
            uplift = model.predict(cat_te)
        out[name] = (np.asarray(uplift, dtype=float), time.perf_counter() - started)
    return out


def demo_test(people: int, seed: int = 42) -> pd.DataFrame:
    """The demo's randomised test joined to the company's view of each person (one customer
    per person: the one with the most records)."""
    import subprocess
    import tempfile

    from onetoone import Workspace
    from onetoone.demo.truth import person_of_customers
    from onetoone.measure.uplift import customer_features

    root = Path(tempfile.mkdtemp(prefix="onetoone-uplift-")) / "ws"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "onetoone.cli",
            "demo",
            "--customers",
            str(people),
            "--seed",
            str(seed),
            "--workspace",
            str(root),
        ],
        check=True,
        capture_output=True,
    )
    with Workspace(root, read_only=True) as ws:
        person = person_of_customers(ws.store, root / "truth")
        ids = ws.store.execute("SELECT customer_id FROM customers").df()
        features = customer_features(ws.store.con, ids.assign(day=pd.Timestamp.max))
    features["person_id"] = person.reindex(features.index)
    features = (
        features.dropna(subset=["person_id"])
        .sort_values("record_count", ascending=False)
        .drop_duplicates("person_id")
        .set_index("person_id")
    )
    truth = pd.read_parquet(
        root / "truth" / "people.parquet",
        columns=["person_id", "uplift_type", "p_response_control", "p_response_treated"],
    ).set_index("person_id")
    test = pd.read_parquet(
        root / "truth" / "holdout.parquet", columns=["person_id", "treated", "responded"]
    ).set_index("person_id")
    return features.join(truth, how="inner").join(test, how="inner")


def demo(people: int) -> int:
    data = demo_test(people)
    t = data["treated"].astype(int)
    y = data["responded"].astype(int)
    true_effect = (data["p_response_treated"] - data["p_response_control"]).to_numpy()
    X = data.drop(
        columns=["uplift_type", "p_response_control", "p_response_treated", "treated", "responded"]
    )
    idx_tr, idx_te = train_test_split(
        np.arange(len(data)), test_size=0.5, random_state=42, stratify=pd.concat([t, y], axis=1)
    )
    kind = data["uplift_type"].to_numpy()
    measured = y[t == 1].mean() - y[t == 0].mean()
    print(
        f"Demo company, {people:,} people: {len(data):,} in the test ({t.mean():.0%} "
        f"treated); measured lift {measured:+.4f} against the true average effect "
        f"{true_effect.mean():+.4f}"
    )
    te = idx_te
    base = {k: float((kind[te] == k).mean()) for k in ("persuadable", "do_not_disturb")}
    print(
        f"Held out: {len(te):,} people, {base['persuadable']:.1%} persuadables, "
        f"{base['do_not_disturb']:.1%} do-not-disturbs"
    )
    print(
        "| model | uplift@30 % | Qini AUC | persuadables in top 30 % | do-not-disturbs in "
        "top 30 % | true incremental responses, top 30 % vs random 30 % |"
    )
    print("|---|---|---|---|---|---|")
    n_top = int(0.3 * len(te))
    random_gain = true_effect[te].mean() * n_top
    for method, learner in (
        ("t_learner", "lightgbm"),
        ("class_transformation", "lightgbm"),
        ("x_learner", "lightgbm"),
        ("t_learner", "logistic"),
    ):
        model = UpliftModel(method=method, learner=learner, min_child_samples=50)
        uplift = model.fit(X.iloc[idx_tr], t.iloc[idx_tr], y.iloc[idx_tr]).predict(X.iloc[te])
        top = te[np.argsort(-uplift, kind="stable")[:n_top]]
        print(
            f"| onetoone {method} ({learner}) | "
            f"{uplift_at_k(y.iloc[te], uplift, t.iloc[te], strategy='by_group', k=0.3):.4f}"
            f" | {qini_auc_score(y.iloc[te], uplift, t.iloc[te]):.4f} | "
            f"{(kind[top] == 'persuadable').mean():.1%} | "
            f"{(kind[top] == 'do_not_disturb').mean():.1%} | "
            f"{true_effect[top].sum():.0f} vs {random_gain:.0f} |"
        )
    return 0


def main() -> int:
    if "--demo" in sys.argv:
        return demo(int(sys.argv[sys.argv.index("--demo") + 1]))
    if not (DATA / "hillstrom" / "hillstrom.csv").exists():
        print(f"No Hillstrom data in {DATA / 'hillstrom'}.", file=sys.stderr)
        return 1
    X_tr, X_te, t_tr, t_te, y_tr, y_te = hillstrom()
    rows: list[tuple[str, float, float, float]] = []
    ours: dict[str, np.ndarray] = {}
    for method, learner in (
        ("t_learner", "lightgbm"),
        ("class_transformation", "lightgbm"),
        ("x_learner", "lightgbm"),
        ("t_learner", "logistic"),
    ):
        started = time.perf_counter()
        uplift = UpliftModel(method=method, learner=learner).fit(X_tr, t_tr, y_tr).predict(X_te)
        seconds = time.perf_counter() - started
        name = f"onetoone {method} ({learner})"
        ours[name] = uplift
        rows.append(
            (
                name,
                uplift_at_k(y_te, uplift, t_te, strategy="by_group", k=0.3),
                qini_auc_score(y_te, uplift, t_te),
                seconds,
            )
        )
    for name, (uplift, seconds) in peers(X_tr, X_te, t_tr, y_tr).items():
        rows.append(
            (
                name,
                uplift_at_k(y_te, uplift, t_te, strategy="by_group", k=0.3),
                qini_auc_score(y_te, uplift, t_te),
                seconds,
            )
        )
    print(
        f"Hillstrom, Womens E-Mail vs No E-Mail, target visit: {len(y_tr):,} rows to fit, "
        f"{len(y_te):,} held out (published uplift@30 %: {PUBLISHED})"
    )
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
        print(
            f"metrics agree with scikit-uplift on {name}: uplift@30 % {a:.6f} vs {b:.6f}, "
            f"Qini {c:.6f} vs {d:.6f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
