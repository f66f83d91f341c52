"""The demo company's messy silos load with exact counts: every malformed row quarantined,
every other row loaded, through the ordinary source configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from onetoone import Workspace
from onetoone.demo import generate_demo


@pytest.mark.slow
def test_demo_silos_load_with_exact_counts(tmp_path: Path):
    company = generate_demo(tmp_path, customers=600, seed=3)
    with Workspace.init(tmp_path, config_text='[workspace]\nname = "demo"\n\n'
                        + company.sources_toml) as ws:
        results = {r.source: r for r in ws.ingest()}
        for source, written in company.counts.items():
            if source not in results or source == "web_order_items":
                continue  # detail counters; items of a broken JSON line are one record
            result = results[source]
            assert result.total("rows_read") == written, source
            assert result.total("rows_quarantined") == company.malformed.get(source, 0), source
            assert result.total("rows_loaded") == written - company.malformed.get(source, 0)
        # Nothing lost: the counts add up for every file.
        assert ws.store.scalar("SELECT count(*) FROM ingestions "
                               "WHERE rows_read <> rows_loaded + rows_quarantined") == 0
        # A second run reads nothing again.
        assert all(f.status == "unchanged" for r in ws.ingest() for f in r.files)
