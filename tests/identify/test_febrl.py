"""FEBRL1 (1,000 records, 500 true duplicate pairs) loaded through ingestion, then identified."""

from __future__ import annotations

import os
import re
from itertools import combinations
from pathlib import Path

import pytest

from onetoone import Workspace

pytest.importorskip("splink")
DATA = Path(os.environ.get("ONETOONE_SHARED_DATA",
                           Path(__file__).resolve().parents[2].parent / "shared" / "data"))


@pytest.mark.slow
def test_febrl1_pairwise_precision_and_recall(tmp_path: Path) -> None:
    path = DATA / "febrl" / "dataset1.csv"
    if not path.is_file():
        pytest.skip(f"FEBRL1 is absent ({path}); set ONETOONE_SHARED_DATA")
    config = f"""[workspace]\nname = "febrl"\n
[identify]
compare = ["soc_sec_id", "street_number"]
[sources.febrl]
entity = "customers"
path = "{path}"
date_format = "%Y%m%d"
[sources.febrl.columns]
source_id = "rec_id"
first_name = "given_name"
last_name = "surname"
address = "address_1"
postcode = "postcode"
city = "suburb"
birth_date = "date_of_birth"
[sources.febrl.identifiers]
soc_sec_id = "soc_sec_id"
"""
    with Workspace.init(tmp_path, config_text=config) as ws:
        ws.ingest()
        ws.identify()
        groups: dict[str, list[str]] = {}
        for key, cid in ws.store.fetchall("SELECT record_key, customer_id FROM customer_links"):
            groups.setdefault(cid, []).append(key)
    entity = {k: re.search(r"rec-(\d+)-", k).group(1) for g in groups.values() for k in g}
    predicted = {p for g in groups.values() for p in combinations(sorted(g), 2)}
    true = {p for p in combinations(sorted(entity), 2) if entity[p[0]] == entity[p[1]]}
    precision = len(predicted & true) / len(predicted)
    recall = len(predicted & true) / len(true)
    # measured 1.000 / 1.000; 0.996 when a veto stopped FEBRL's duplicates at one home
    assert precision >= 0.99 and recall >= 0.998, (precision, recall)
