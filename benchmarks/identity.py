"""Identity resolution on public benchmarks: onetoone vs Splink alone, same data, same run.

Data sets (from ``../shared/data`` or ``$ONETOONE_SHARED_DATA``), each loaded through the normal
ingestion path (a temporary workspace whose ``onetoone.toml`` maps the files' columns):

* FEBRL1 (``febrl/dataset1.csv``): deduplicate 1,000 records, 500 true pairs;
* FEBRL4 (``febrl/dataset4a.csv`` + ``dataset4b.csv``): link 5,000 + 5,000 records;
* fake_1000 (``splink/fake_1000.csv``): 1,000 records, truth in ``cluster``;
* the demo company (``onetoone.demo``, 5,000 people, seed 42): its profile records (CRM, web
  accounts, loyalty) against the true person of each in ``truth/records.parquet``.

Truth for FEBRL is the number in ``rec-N-org`` / ``rec-N-dup-K``. Reported: pairwise precision,
recall and F1 (pairs of records put in one customer), cluster precision/recall (customers that
are exactly a true entity), and seconds. Run: ``python benchmarks/identity.py [FEBRL1 FEBRL4
fake_1000 demo]`` (all by default; ``ONETOONE_IDENTIFY="key = value;..."`` adds
``[identify]`` settings).

Scale: ``python benchmarks/identity.py --scale WORKSPACE [FRACTION]`` times a full identify of
an ingested workspace, then an incremental one after making ``FRACTION`` (default 0.01) of its
profile records new; prints wall seconds and peak RSS of each. It modifies the workspace: give
it a copy.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd

from onetoone.config import IdentifySettings

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ONETOONE_SHARED_DATA", ROOT.parent / "shared" / "data"))

FEBRL_COLUMNS = """
date_format = "%Y%m%d"
[sources.{name}.columns]
source_id = "rec_id"
first_name = "given_name"
last_name = "surname"
address = "address_1"
postcode = "postcode"
city = "suburb"
region = "state"
birth_date = "date_of_birth"
[sources.{name}.identifiers]
soc_sec_id = "soc_sec_id"
"""

#: FEBRL's street number is kept in ``attributes``; the model compares it, and the social
#: security number (an identifier, so exact values also stitch) with its typos.
FEBRL_IDENTIFY = 'compare = ["soc_sec_id", "street_number"]'

FAKE_COLUMNS = """
[sources.{name}.columns]
source_id = "unique_id"
first_name = "first_name"
last_name = "surname"
birth_date = "dob"
city = "city"
email = "email"
"""


def febrl_entity(record_key: str) -> str:
    match = re.search(r"rec-(\d+)-", record_key)
    return match.group(1) if match else record_key


def source_toml(name: str, path: Path, columns: str) -> str:
    return f'[sources.{name}]\nentity = "customers"\npath = "{path}"\n' + \
        columns.format(name=name)


def pairs_of(groups: dict[str, list[str]]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for members in groups.values():
        out.update(itertools.combinations(sorted(members), 2))
    return out


def scores(predicted: dict[str, str], truth: dict[str, str]) -> dict[str, float]:
    """Pairwise and cluster precision/recall/F1 of record → cluster assignments."""
    pred_groups: dict[str, list[str]] = defaultdict(list)
    true_groups: dict[str, list[str]] = defaultdict(list)
    for key, cluster in predicted.items():
        pred_groups[cluster].append(key)
    for key, cluster in truth.items():
        true_groups[cluster].append(key)
    p, t = pairs_of(pred_groups), pairs_of(true_groups)
    tp = len(p & t)
    precision = tp / len(p) if p else 1.0
    recall = tp / len(t) if t else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    pred_sets = {frozenset(v) for v in pred_groups.values()}
    true_sets = {frozenset(v) for v in true_groups.values()}
    exact = len(pred_sets & true_sets)
    return {"precision": precision, "recall": recall, "f1": f1,
            "cluster_precision": exact / len(pred_sets), "cluster_recall": exact / len(true_sets),
            "pairs_predicted": len(p), "pairs_true": len(t)}


def splink_alone(frame: pd.DataFrame, threshold: float,
                 settings: IdentifySettings | None = None) -> tuple[dict[str, str], float]:
    """Splink with the same model (``settings``' training options), on the same records,
    clustered at ``threshold``."""
    from onetoone.identify._probabilistic import make_linker

    started = time.perf_counter()
    linker = make_linker(frame, settings or IdentifySettings(), None, [])
    pred = linker.inference.predict(threshold_match_probability=threshold)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        pred, threshold_match_probability=threshold).as_pandas_dataframe()
    result = dict(zip(clusters["unique_id"].astype(str), clusters["cluster_id"].astype(str),
                      strict=True))
    return result, time.perf_counter() - started


def run(name: str, sources: str, truth_of: object, identify: str = "") -> list[dict[str, object]]:
    from onetoone import Workspace
    from onetoone.identify._probabilistic import _input

    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        identify += "\n" + os.environ.get("ONETOONE_IDENTIFY", "").replace(";", "\n")
        ws = Workspace.init(tmp, config_text=f'[workspace]\nname = "{name}"\n\n'
                            f'[identify]\n{identify}\n\n{sources}')
        t0 = time.perf_counter()
        results = ws.ingest()
        load = time.perf_counter() - t0
        quarantined = sum(r.total("rows_quarantined") for r in results)
        t0 = time.perf_counter()
        outcome = ws.identify()
        seconds = time.perf_counter() - t0
        links = dict(ws.store.fetchall("SELECT record_key, customer_id FROM customer_links"))
        truth = {k: truth_of(k) for k in links}  # type: ignore[operator]
        ours = scores(links, truth)
        rows.append({"data": name, "system": "onetoone identify", **ours, "seconds": seconds,
                     "load_seconds": load, "quarantined": quarantined,
                     "pending_reviews": outcome.pending_reviews})
        frame = _input(ws.store, ws.config.identify)
        alone, seconds = splink_alone(frame, ws.config.identify.match_threshold,
                                      ws.config.identify)
        for key in links:  # records Splink did not see (no name) stand alone
            alone.setdefault(key, "single:" + key)
        rows.append({"data": name, "system": "Splink alone", **scores(alone, truth),
                     "seconds": seconds})
        ws.close()
    return rows


def pair_scores(frame: pd.DataFrame, predicted: str, truth: str) -> dict[str, float]:
    """Pairwise and cluster scores from contingency counts (fast at any size)."""
    def pairs(sizes: pd.Series) -> int:
        n = sizes.to_numpy(dtype="int64")
        return int((n * (n - 1) // 2).sum())

    tp = pairs(frame.groupby([predicted, truth]).size())
    pp, tt = pairs(frame.groupby(predicted).size()), pairs(frame.groupby(truth).size())
    precision, recall = (tp / pp if pp else 1.0), (tp / tt if tt else 1.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    pred_sets = frame.groupby(predicted)[truth].agg(lambda s: (s.nunique(), len(s)))
    true_size = frame.groupby(truth).size()
    exact = sum(1 for cid, (k, n) in pred_sets.items() if k == 1 and
                true_size[frame.loc[frame[predicted] == cid, truth].iloc[0]] == n) \
        if len(frame) < 200_000 else float("nan")
    return {"precision": precision, "recall": recall, "f1": f1,
            "cluster_precision": exact / len(pred_sets),
            "cluster_recall": exact / len(true_size), "pairs_predicted": pp, "pairs_true": tt}


def run_demo(customers: int = 5000, seed: int = 42) -> list[dict[str, object]]:
    """The demo company (``onetoone demo``): profile records scored against its truth."""
    from onetoone import Workspace
    from onetoone.demo import generate_demo
    from onetoone.identify._probabilistic import _input

    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        company = generate_demo(Path(tmp), customers=customers, seed=seed)
        identify = os.environ.get("ONETOONE_IDENTIFY", "").replace(";", "\n")
        ws = Workspace.init(tmp, config_text='[workspace]\nname = "demo"\ndefault_country = '
                            f'"FR"\n\n[identify]\n{identify}\n\n{company.sources_toml}')
        ws.ingest()
        t0 = time.perf_counter()
        ws.identify()
        seconds = time.perf_counter() - t0
        links = ws.store.execute(
            "SELECT l.record_key, r.source, r.source_id, l.customer_id FROM customer_links l "
            "JOIN customer_records r USING (record_key) WHERE r.origin = 'profile'").df()
        truth = pd.read_parquet(company.files["truth_records"],
                                columns=["source", "source_id", "person_id"])
        frame = links.merge(truth, on=["source", "source_id"], how="inner")
        name = f"demo {customers:,}"
        rows.append({"data": name, "system": "onetoone identify",
                     **pair_scores(frame, "customer_id", "person_id"), "seconds": seconds})
        alone, seconds = splink_alone(_input(ws.store, ws.config.identify),
                                      ws.config.identify.match_threshold, ws.config.identify)
        frame["alone"] = [alone.get(k, "single:" + k) for k in frame["record_key"]]
        rows.append({"data": name, "system": "Splink alone",
                     **pair_scores(frame, "alone", "person_id"), "seconds": seconds})
        ws.close()
    return rows


def scale_step(root: Path, step: str, fraction: float) -> dict[str, object]:
    """One timed identify on ``root`` (in this process; peak RSS is this process's).

    ``full``: a full run. ``incremental``: a random ``fraction`` of the profile records is made
    new (their links, review pairs and now unused ids removed, as if they had just been
    loaded), then an ordinary incremental run.
    """
    import resource

    from onetoone import Workspace

    with Workspace.open(root) as ws:
        if step == "incremental":
            ws.store.execute("""
                CREATE TEMP TABLE _bench_new AS SELECT record_key FROM customer_records
                WHERE origin = 'profile' AND hash(record_key || 'new') % 1000000 < ?""",
                             [round(fraction * 1e6)])
            ws.store.execute("""
                DELETE FROM identity_review WHERE record_key_l IN (SELECT * FROM _bench_new)
                   OR record_key_r IN (SELECT * FROM _bench_new);
                DELETE FROM customer_links WHERE record_key IN (SELECT * FROM _bench_new);
                DELETE FROM customer_ids WHERE customer_id NOT IN
                    (SELECT customer_id FROM customer_links)""")
        t0 = time.perf_counter()
        result = ws.identify(full=step == "full")
        seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    return {"step": step, "mode": result.mode, "records": result.records,
            "customers": result.customers, "relinked": result.records_relinked,
            "probabilistic_links": result.probabilistic_links,
            "seconds": round(seconds, 1), "peak_rss_gib": round(peak, 2)}


def scale(root: Path, fraction: float) -> int:
    """Full then incremental identify on the workspace ``root`` (modified in place), each in
    its own process so that each peak RSS is its own."""
    import subprocess

    for step in ("full", "incremental"):
        out = subprocess.run([sys.executable, __file__, "--scale-step", step, str(root),
                              str(fraction)], check=True, capture_output=True, text=True)
        print(out.stdout.strip().splitlines()[-1], flush=True)  # scale_step's JSON line
    return 0


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--scale-step":
        print(json.dumps(scale_step(Path(sys.argv[3]), sys.argv[2], float(sys.argv[4]))))
        return 0
    if len(sys.argv) > 2 and sys.argv[1] == "--scale":
        return scale(Path(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 0.01)
    if not DATA.is_dir():
        print(f"reference data folder {DATA} is absent (set ONETOONE_SHARED_DATA)")
        return 1
    febrl = DATA / "febrl"
    fake = pd.read_csv(DATA / "splink" / "fake_1000.csv", dtype=str)
    fake_truth = dict(zip("fake:" + fake["unique_id"], fake["cluster"], strict=True))
    table: list[dict[str, object]] = []
    only = set(sys.argv[1:])
    if not only or "FEBRL1" in only:
        table += run("FEBRL1", source_toml("febrl", febrl / "dataset1.csv", FEBRL_COLUMNS),
                     febrl_entity, FEBRL_IDENTIFY)
    if not only or "FEBRL4" in only:
        table += run("FEBRL4", source_toml("a", febrl / "dataset4a.csv", FEBRL_COLUMNS) +
                     source_toml("b", febrl / "dataset4b.csv", FEBRL_COLUMNS), febrl_entity,
                     FEBRL_IDENTIFY)
    if not only or "fake_1000" in only:
        table += run("fake_1000", source_toml("fake", DATA / "splink" / "fake_1000.csv",
                                              FAKE_COLUMNS), lambda k: fake_truth.get(k, k))
    if not only or "demo" in only:
        table += run_demo()
    frame = pd.DataFrame(table)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(frame.round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
