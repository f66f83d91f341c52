"""Benchmark of the defection model: accuracy on real and synthetic data, and speed at scale.

    PYTHONPATH=src python benchmarks/defection.py retail [--items]
    PYTHONPATH=src python benchmarks/defection.py demo --workspace DIR [--customers 5000]
    PYTHONPATH=src python benchmarks/defection.py scale --workspace DIR --factor 20

* ``retail``: UCI Online Retail (``../shared/data/online_retail``) loaded through the normal
  ingestion path in a temporary workspace. The file has one row per invoice line and no invoice
  total, so the transactions export is the invoice headers derived from it (amount = sum of
  quantity x unit price; ``C`` invoices are returns with a negative amount, status
  ``returned``); ``--items`` also loads the raw ``.csv.gz`` as ``transaction_items`` (slow).
  Time split: the model is trained and scored as of ``as_of`` = last day - horizon (nothing
  after it is read); the truth is "no purchase in the horizon after as_of". Baselines in the
  same run: a recency-frequency logistic regression trained on the same training cutoffs, and
  BG/NBD 1 - P(alive) at as_of. AUC, Brier score and a calibration plot.
* ``demo``: the demo company (``onetoone demo``), scored as of its last day; AUC against the
  ground truth (``truth/people.parquet``: defected in the 26-week holdout, or already dead), and
  monthly backtests: how many days before the last purchase the risk crossed ``alert_threshold``.
* ``scale``: the demo workspace replicated ``factor`` times (customer ids suffixed) into a new
  database; prints the train time (training set + fit), the score time (scoring features, risk,
  reasons in words, needs segments, write into ``customer_scores``), each step, the peak RSS
  and the customers (``--compare-reasons N``: path attribution against TreeSHAP on N of them).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score

from onetoone import Workspace
from onetoone.config import DefectionSettings
from onetoone.differentiate.defection import labels, purchase_horizon, score_defection

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ONETOONE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    frame = pd.DataFrame({"bin": which, "p": p, "y": y})
    return frame.groupby("bin").agg(customers=("y", "size"), predicted=("p", "mean"),
                                    observed=("y", "mean"))


def metrics(name: str, y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    return {"model": name, "auc": float(roc_auc_score(y, p)),
            "brier": float(brier_score_loss(y, np.clip(p, 0, 1))),
            "mean_predicted": float(np.mean(p)), "observed_rate": float(np.mean(y))}


def plot_calibration(curves: dict[str, pd.DataFrame], path: Path, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib absent: no calibration plot")
        return
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect")
    for name, table in curves.items():
        ax.plot(table["predicted"], table["observed"], marker="o", label=name)
    ax.set_xlabel("predicted probability of defection (decile mean)")
    ax.set_ylabel("observed defection rate")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"calibration plot: {path}")


def btyd_no_purchase(scores: pd.DataFrame, horizon_days: float) -> np.ndarray:
    """BG/NBD P(no purchase within the horizon | history), fitted on the scoring-day summaries.

    P(X(H) = 0) = (1 - P(alive)) + P(alive) ((alpha + T) / (alpha + T + H))^(r + x): a customer
    alive at the end stays alive until a next purchase (dropout follows purchases, FHL 2005).
    """
    from onetoone.differentiate.btyd import BGNBD

    x = (scores["purchases"] - 1).to_numpy(float)
    big_t = scores["tenure_days"].to_numpy(float) / 7
    t_x = big_t - scores["days_since_last_purchase"].to_numpy(float) / 7
    model = BGNBD().fit(x, t_x, big_t)
    r, alpha = model.params_["r"], model.params_["alpha"]
    alive = np.asarray(model.p_alive(x, t_x, big_t), float)
    h = horizon_days / 7
    return (1 - alive) + alive * ((alpha + big_t) / (alpha + big_t + h)) ** (r + x)


# -- real data --------------------------------------------------------------------------------
def retail_workspace(directory: Path, items: bool) -> Workspace:
    raw = DATA / "online_retail" / "online_retail.csv.gz"
    if not raw.is_file():
        sys.exit(f"{raw} is absent (set ONETOONE_SHARED_DATA)")
    lines = pd.read_csv(raw, dtype={"InvoiceNo": str, "StockCode": str, "CustomerID": str})
    lines["line"] = lines["Quantity"] * lines["UnitPrice"]
    heads = lines.groupby("InvoiceNo", sort=False).agg(
        InvoiceDate=("InvoiceDate", "first"), CustomerID=("CustomerID", "first"),
        Country=("Country", "first"), Amount=("line", "sum")).reset_index()
    heads["CustomerID"] = heads["CustomerID"].str.replace(r"\.0$", "", regex=True)
    heads["Status"] = np.where(heads["InvoiceNo"].str.startswith("C"), "returned", "paid")
    heads["Amount"] = heads["Amount"].round(2)
    export = directory / "invoices.csv.gz"
    with gzip.open(export, "wt", encoding="utf-8", newline="") as handle:
        heads.to_csv(handle, index=False)
    config = f"""[workspace]
name = "online_retail"
timezone = "Europe/London"
currency = "GBP"

[sources.invoices]
entity = "transactions"
path = "{export}"
[sources.invoices.columns]
source_id = "InvoiceNo"
occurred_at = "InvoiceDate"
amount = "Amount"
status = "Status"
[sources.invoices.identifiers]
customer_number = "CustomerID"
"""
    if items:
        config += f"""
[sources.lines]
entity = "transaction_items"
path = "{raw}"
[sources.lines.columns]
transaction_id = "InvoiceNo"
product_id = "StockCode"
quantity = "Quantity"
unit_price = "UnitPrice"
"""
    ws = Workspace.init(directory / "ws", config_text=config)
    started = time.perf_counter()
    for result in ws.ingest():
        print(f"ingested {result}")
    ws.identify()
    print(f"ingest + identify: {time.perf_counter() - started:.1f} s; "
          f"{ws.store.scalar('SELECT count(*) FROM customers'):,} customers")
    return ws


def paired_bootstrap(y: np.ndarray, preds: dict[str, np.ndarray], reference: str,
                     rounds: int = 1000, seed: int = 0) -> pd.DataFrame:
    """95 % intervals of each AUC and of its difference with ``reference``'s, customers
    resampled with replacement (the same resample for every model: a paired comparison)."""
    rng = np.random.default_rng(seed)
    n = len(y)
    draws: dict[str, list[float]] = {name: [] for name in preds}
    diffs: dict[str, list[float]] = {name: [] for name in preds if name != reference}
    for _ in range(rounds):
        idx = rng.integers(0, n, n)
        if y[idx].min() == y[idx].max():
            continue
        aucs = {name: roc_auc_score(y[idx], p[idx]) for name, p in preds.items()}
        for name, value in aucs.items():
            draws[name].append(value)
            if name != reference:
                diffs[name].append(aucs[reference] - value)
    rows = []
    for name in preds:
        lo, hi = np.quantile(draws[name], [0.025, 0.975])
        row = {"model": name, "auc_low": lo, "auc_high": hi}
        if name in diffs:
            d = np.asarray(diffs[name])
            row |= {f"{reference} minus, low": np.quantile(d, 0.025),
                    "high": np.quantile(d, 0.975), "share of resamples above 0": (d > 0).mean()}
        rows.append(row)
    return pd.DataFrame(rows)


def evaluate(ws: Workspace, settings: DefectionSettings, as_of: pd.Timestamp,
             horizon: int) -> tuple[np.ndarray, dict[str, np.ndarray], Any]:
    """Train and score as of ``as_of`` (nothing after it read); the truth and three models."""
    started = time.perf_counter()
    result = score_defection(ws.store, as_of, settings)
    seconds = time.perf_counter() - started
    print("\n".join(result.notes))
    print(f"train + score: {seconds:.1f} s")
    truth = labels(ws.store, "purchase", [as_of + pd.Timedelta(days=1)], horizon,
                   settings.exclude_statuses).droplevel("cutoff")
    scores = result.scores.loc[truth.index]
    y = truth.to_numpy()
    # baseline 1: recency-frequency logistic regression on the same training cutoffs
    ts = result.training

    def rf(frame: pd.DataFrame) -> np.ndarray:
        return np.column_stack([np.log1p(frame["days_since_last_purchase"]),
                                np.log1p(frame["purchases"]),
                                np.log1p(frame["tenure_days"])])

    logit = LogisticRegression(max_iter=1000).fit(rf(ts.X), ts.y)
    preds = {"DefectionModel": scores["defection_risk"].to_numpy(),
             "RF logistic": logit.predict_proba(rf(scores))[:, 1],
             # baseline 2: BG/NBD fitted as of as_of
             "BG/NBD P(no purchase)": btyd_no_purchase(scores, horizon),
             "BG/NBD 1 - P(alive)": 1.0 - scores["p_alive"].fillna(
                 scores["p_alive"].mean()).to_numpy()}
    return y, preds, result


def retail(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = retail_workspace(Path(tmp), args.items)
        settings = DefectionSettings(**({"horizon_days": args.horizon} if args.horizon else {}))
        end = pd.Timestamp(ws.store.scalar("SELECT max(occurred_at) FROM transactions"))
        end = end.normalize()
        horizon = purchase_horizon(ws.store, settings)
        as_of = end - pd.Timedelta(days=horizon)
        print(f"data {ws.store.scalar('SELECT min(occurred_at) FROM transactions')} to {end}; "
              f"horizon {horizon} days from the purchase gaps; as_of {as_of.date()}")
        settings = settings.model_copy(update={"horizon_days": horizon})
        y, preds, result = evaluate(ws, settings, as_of, horizon)
        names = {"DefectionModel": "DefectionModel (blend, calibrated)",
                 "RF logistic": "recency-frequency logistic regression",
                 "BG/NBD P(no purchase)": "BG/NBD P(no purchase in the horizon)",
                 "BG/NBD 1 - P(alive)": "BG/NBD 1 - P(alive)"}
        rows = [metrics(names[k], y, p) for k, p in preds.items()]
        fmt = {"float_format": lambda v: f"{v:.4f}", "index": False}
        print(pd.DataFrame(rows).to_string(**fmt))
        main3 = {k: preds[k] for k in ("DefectionModel", "RF logistic", "BG/NBD P(no purchase)")}
        print(f"\npaired bootstrap ({args.bootstrap} resamples of the {len(y):,} customers):")
        print(paired_bootstrap(y, main3, "DefectionModel", args.bootstrap).to_string(**fmt))
        curves = {name: calibration_table(y, p) for name, p in main3.items()}
        for name, table in curves.items():
            print(f"\ncalibration, {name}:\n{table.to_string(float_format=lambda v: f'{v:.3f}')}")
        plot_calibration(curves, ROOT / "docs" / "img" / "defection-calibration-retail.png",
                         f"Online Retail, as of {as_of.date()}, {horizon}-day horizon")
        print(f"customers evaluated {len(y):,}, defection rate {y.mean():.3f}")
        print("top features:", result.model.feature_importances().head(8).round(0).to_dict())
        # a second, earlier as-of date: a different training and test window
        second = as_of - pd.Timedelta(days=args.second_offset)
        print(f"\nsecond as-of date {second.date()} (same horizon):")
        y2, preds2, _ = evaluate(ws, settings, second, horizon)
        print(f"customers evaluated {len(y2):,}, defection rate {y2.mean():.3f}")
        print(pd.DataFrame([metrics(names[k], y2, p) for k, p in preds2.items()]
                           ).to_string(**fmt))
        print(paired_bootstrap(y2, {k: preds2[k] for k in main3}, "DefectionModel",
                               args.bootstrap).to_string(**fmt))
        ws.close()


# -- demo -------------------------------------------------------------------------------------
def person_of_customer(ws: Workspace, directory: Path) -> pd.Series:
    records = pd.read_parquet(directory / "truth" / "records.parquet",
                              columns=["source", "source_id", "person_id"])
    records = records.dropna(subset=["person_id", "source_id"])
    records["record_key"] = records["source"] + ":" + records["source_id"].astype(str)
    links = ws.store.execute("SELECT record_key, customer_id FROM customer_links").df()
    joined = links.merge(records[["record_key", "person_id"]], on="record_key")
    return joined.groupby("customer_id")["person_id"].agg(lambda s: s.mode().iloc[0])


def demo(args: argparse.Namespace) -> None:
    directory = Path(args.workspace)
    if not (directory / "onetoone.duckdb").exists():
        from typer.testing import CliRunner

        from onetoone.cli import app

        made = CliRunner().invoke(app, ["demo", "--workspace", str(directory), "--customers",
                                        str(args.customers)])
        if made.exit_code:
            sys.exit(made.output)
    ws = Workspace(directory)
    settings = ws.config.defection
    people = pd.read_parquet(directory / "truth" / "people.parquet")
    holdout = pd.read_parquet(directory / "truth" / "holdout.parquet")
    person = person_of_customer(ws, directory)
    end = pd.Timestamp(ws.store.scalar("SELECT max(occurred_at) FROM transactions")).normalize()
    started = time.perf_counter()
    result = score_defection(ws.store, end, settings)
    print("\n".join(result.notes))
    print(f"train + score at {len(result.scores):,} customers: "
          f"{time.perf_counter() - started:.1f} s")
    truth = people.set_index("person_id").join(holdout.set_index("person_id")[
        ["alive_at_holdout_end", "purchases"]].rename(columns={"purchases": "holdout_purchases"}))
    frame = result.scores[["defection_risk", "p_alive"]].assign(
        btyd_none=btyd_no_purchase(result.scores, 182)).join(person.rename("person_id"))
    frame = frame.dropna(subset=["person_id"]).join(truth, on="person_id")
    dead = ~frame["alive_at_holdout_end"].astype(bool)
    print(f"\nAUC vs truth 'not alive at the holdout end' ({len(frame):,} customers, "
          f"{dead.mean():.1%}): model {roc_auc_score(dead, frame['defection_risk']):.4f}, "
          f"BG/NBD 1-P(alive) {roc_auc_score(dead, 1 - frame['p_alive'].fillna(0.5)):.4f}")
    alive = frame[frame["alive_at_end"].astype(bool)]
    gone = ~alive["alive_at_holdout_end"].astype(bool)
    print(f"AUC vs truth 'defected during the holdout' among the {len(alive):,} alive at the end "
          f"({gone.mean():.1%}): model {roc_auc_score(gone, alive['defection_risk']):.4f}, "
          f"BG/NBD {roc_auc_score(gone, 1 - alive['p_alive'].fillna(0.5)):.4f}")
    none = frame["holdout_purchases"].fillna(0) == 0
    print(f"AUC vs 'no purchase in the 26-week holdout' ({none.mean():.1%}): model "
          f"{roc_auc_score(none, frame['defection_risk']):.4f}, BG/NBD P(no purchase in 26 "
          f"weeks) {roc_auc_score(none, frame['btyd_none']):.4f}, Brier model "
          f"{brier_score_loss(none, frame['defection_risk']):.4f} vs BG/NBD "
          f"{brier_score_loss(none, frame['btyd_none']):.4f}")
    if args.no_backtest:
        return
    # monthly backtests: when did the risk first cross the alert threshold?
    months = pd.date_range(end - pd.DateOffset(months=args.months), end, freq="ME")
    risks = {}
    for month in months:
        t0 = time.perf_counter()
        res = score_defection(ws.store, month, settings)
        risks[month] = res.scores["defection_risk"]
        print(f"backtest as of {month.date()}: {time.perf_counter() - t0:.1f} s")
    panel = pd.DataFrame(risks)
    panel = panel.join(person.rename("person_id")).dropna(subset=["person_id"])
    panel = panel.join(people.set_index("person_id")["defected_at"], on="person_id")
    window = panel[(panel["defected_at"] >= months[0] + pd.Timedelta(days=60))
                   & (panel["defected_at"] <= months[-1] - pd.Timedelta(days=90))]
    threshold = settings.alert_threshold
    leads = []
    for _, row in window.iterrows():
        crossed = [m for m in months if m >= row["defected_at"] - pd.Timedelta(days=180)
                   and pd.notna(row[m]) and row[m] >= threshold]
        leads.append((row["defected_at"] - crossed[0]).days if crossed else np.nan)
    lead = pd.Series(leads, dtype=float)
    print(f"\n{len(window):,} customers whose last purchase fell between "
          f"{(months[0] + pd.Timedelta(days=60)).date()} and "
          f"{(months[-1] - pd.Timedelta(days=90)).date()}; alert threshold {threshold}:")
    print(f"  flagged by the last backtest: {lead.notna().mean():.1%}; "
          f"flagged before the last purchase: {(lead > 0).mean():.1%}")
    print(f"  days from the first crossing to the last purchase (positive = before): "
          f"median {lead.median():.0f}, quartiles {lead.quantile(0.25):.0f} / "
          f"{lead.quantile(0.75):.0f}")
    alive_all = panel[panel["defected_at"].isna()]
    print(f"  customers alive throughout flagged at the last backtest: "
          f"{(alive_all[months[-1]] >= threshold).mean():.1%}")
    ws.close()


# -- scale ------------------------------------------------------------------------------------
def replicate(source: Path, target: Path, factor: int) -> None:
    """Copy the demo's canonical tables ``factor`` times with suffixed customer ids."""
    import duckdb

    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copy(source / "onetoone.toml", target / "onetoone.toml")
    Workspace(target).close()  # creates the schema
    con = duckdb.connect(str(target / "onetoone.duckdb"))
    con.execute("SET enable_progress_bar = false")
    con.execute(f"ATTACH '{source / 'onetoone.duckdb'}' AS src (READ_ONLY)")
    con.execute(f"CREATE TEMP TABLE r AS SELECT range AS r FROM range({factor})")
    for table in ("transactions", "interactions", "feedback", "social_posts", "consents",
                  "contracts"):
        con.execute(f"INSERT INTO {table} BY NAME SELECT t.* REPLACE "
                    f"(t.customer_id || '_' || r.r AS customer_id, t.source_id || '_' || r.r AS "
                    f"source_id) FROM src.{table} t, r WHERE t.customer_id IS NOT NULL")
    con.execute("INSERT INTO transaction_items BY NAME SELECT t.* REPLACE (t.transaction_id || "
                "'_' || r.r AS transaction_id) FROM src.transaction_items t, r")
    con.execute("INSERT INTO products SELECT * FROM src.products")
    con.execute("INSERT INTO customers BY NAME SELECT t.* REPLACE (t.customer_id || '_' || r.r "
                "AS customer_id) FROM src.customers t, r")
    con.close()


def compare_reasons(result: Any, rows: int, limit: int) -> None:
    """Path attribution against TreeSHAP on ``rows`` customers at risk: same first reason?"""
    from onetoone.differentiate.defection._reasons import reasons as say

    scores = result.scores
    at_risk = scores[scores["defection_risk"] >= 0.3]
    sample = at_risk.sample(min(rows, len(at_risk)), random_state=0)
    feats = sample[result.training.features]
    t0 = time.perf_counter()
    exact = say(result.model.contributions(feats, method="treeshap"), sample, limit)
    t_exact = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast = say(result.model.contributions(feats, method="path"), sample, limit)
    t_fast = time.perf_counter() - t0
    first = np.mean([a[:1] == b[:1] for a, b in zip(exact, fast, strict=True)])
    same = np.mean([set(a) == set(b) for a, b in zip(exact, fast, strict=True)])
    print(f"reasons of {len(sample):,} customers at risk, TreeSHAP {t_exact:.1f} s vs path "
          f"attribution {t_fast:.1f} s: same first reason {first:.1%}, same set {same:.1%}")


def scale(args: argparse.Namespace) -> None:
    """Train time (training set + fit) and score time (scoring features, risk, reasons in
    words, needs segments, the write into customer_scores) at ``factor`` copies of the demo."""
    import resource

    from onetoone.differentiate.defection import write_defection
    from onetoone.differentiate.needs import assign_needs_segments

    target = Path(args.target or tempfile.mkdtemp()) / f"x{args.factor}"
    if not (args.reuse and (target / "onetoone.duckdb").exists()):
        t0 = time.perf_counter()
        replicate(Path(args.workspace), target, args.factor)
        print(f"replicated x{args.factor} in {time.perf_counter() - t0:.1f} s")
    ws = Workspace(target)
    ws.store.con.execute("SET enable_progress_bar = false")
    counts = ws.summary()
    print({k: counts[k] for k in ("customers", "transactions", "transaction_items",
                                  "interactions")})
    settings = ws.config.defection
    print(f"load before: {os.getloadavg()[0]:.1f} (1-minute average, {os.cpu_count()} cores)")
    cpu0, t0 = time.process_time(), time.perf_counter()
    result = score_defection(ws.store, None, settings)
    t_score = result.seconds
    print("\n".join(result.notes))
    t1 = time.perf_counter()
    needs = assign_needs_segments(ws.store, None, ws.config)
    t_needs = time.perf_counter() - t1
    t1 = time.perf_counter()
    written = write_defection(ws.store, result,
                              extra=pd.DataFrame({"needs_segment": needs.assignments}),
                              fill={"needs_segment": "unsegmented"})
    t_write = time.perf_counter() - t1
    wall = time.perf_counter() - t0
    train = t_score["training_set"] + t_score["fit"]
    score = (t_score["scoring_features"] + t_score["predict"] + t_score["reasons"] + t_needs
             + t_write)
    at_risk = int((result.scores["defection_risk"] >= settings.reasons_min_risk).sum())
    print(f"load after: {os.getloadavg()[0]:.1f}")
    for step, seconds in {**t_score, "needs_segments": t_needs, "write": t_write}.items():
        print(f"  {step:18s} {seconds:7.1f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"customers {counts['customers']:,} ({len(result.scores):,} scored, {at_risk:,} with "
          f"reasons, {len(needs.assignments):,} segmented, {written:,} rows written); "
          f"train {train:.1f} s (goal 300), score {score:.1f} s (goal 120); "
          f"{wall:.1f} s wall, {time.process_time() - cpu0:.1f} s CPU; peak RSS {peak:,.0f} MiB")
    if args.compare_reasons:
        compare_reasons(result, args.compare_reasons, settings.reasons)
    ws.close()
    print(json.dumps({"customers": counts["customers"], "scored": len(result.scores),
                      "training_rows": len(result.training.X), "train_s": round(train, 1),
                      "score_s": round(score, 1), "peak_rss_mib": round(peak)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("retail")
    p.add_argument("--items", action="store_true")
    p.add_argument("--horizon", type=int, default=None)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--second-offset", type=int, default=28,
                   help="days between the as-of date and the second, earlier one")
    p = sub.add_parser("demo")
    p.add_argument("--workspace", required=True)
    p.add_argument("--customers", type=int, default=5000)
    p.add_argument("--months", type=int, default=12)
    p.add_argument("--no-backtest", action="store_true")
    p = sub.add_parser("scale")
    p.add_argument("--workspace", required=True)
    p.add_argument("--factor", type=int, default=20)
    p.add_argument("--target", default=None)
    p.add_argument("--reuse", action="store_true", help="keep an existing copy in --target")
    p.add_argument("--compare-reasons", type=int, default=0, metavar="N",
                   help="also compare TreeSHAP and path attribution on N customers at risk")
    args = parser.parse_args()
    {"retail": retail, "demo": demo, "scale": scale}[args.command](args)


if __name__ == "__main__":
    main()
