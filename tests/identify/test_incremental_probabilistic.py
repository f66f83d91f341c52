"""An incremental run scores only the pairs of new records, and equals a full run."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("splink")


@pytest.mark.slow
def test_incremental_probabilistic_run_equals_full_run(tmp_path: Path) -> None:
    from onetoone import Workspace
    from onetoone.demo import generate_demo

    company = generate_demo(tmp_path, customers=300, seed=3)
    ws = Workspace.init(tmp_path, config_text='[workspace]\nname = "t"\ndefault_country = '
                        f'"FR"\n\n{company.sources_toml}')
    ws.ingest()
    ws.identify()

    def state() -> tuple[list[tuple[object, ...]], ...]:
        return (ws.store.fetchall("SELECT record_key, customer_id, method FROM customer_links "
                                  "ORDER BY ALL"),
                ws.store.fetchall("SELECT record_key_l, record_key_r, round(match_probability,"
                                  " 9), status FROM identity_review ORDER BY ALL"))

    full = state()
    assert any(status == "linked" for *_, status in full[1])
    # The last customer source loaded becomes new: its records and their pairs are redone
    # with the saved model, every older pair keeps its score.
    last = ws.store.scalar("SELECT max(r.ingestion_id) FROM customer_records r "
                           "WHERE r.origin = 'profile'")
    ws.store.execute("DELETE FROM identity_review WHERE record_key_l IN (SELECT record_key "
                     "FROM customer_records WHERE ingestion_id = ?) OR record_key_r IN (SELECT "
                     "record_key FROM customer_records WHERE ingestion_id = ?)", [last, last])
    ws.store.execute("DELETE FROM customer_links WHERE record_key IN (SELECT record_key "
                     "FROM customer_records WHERE ingestion_id = ?)", [last])
    ws.store.execute("DELETE FROM customer_ids WHERE customer_id NOT IN "
                     "(SELECT customer_id FROM customer_links)")
    result = ws.identify()
    assert result.mode == "incremental"
    assert state() == full
    ws.close()
