"""Customer ids persist across runs; merges, splits and manual decisions are audited."""

from __future__ import annotations

from pathlib import Path

import pytest
from _identify_data import Builder, customer_of, groups

from onetoone.errors import NotFoundError

CRM = "1,Anne,Martin,anne@mail.fr,,1980-01-02,,,,\n2,Bob,Roux,bob@mail.fr,,1975-03-04,,,,\n"


def _add_web(ws_root: Path, name: str, rows: str) -> None:
    (ws_root / name).write_text("id,first,last,email,num\n" + rows, encoding="utf-8")


@pytest.mark.slow
def test_ids_persist_and_the_older_id_survives_a_merge(base: Builder) -> None:
    ws = base(crm=CRM)
    ws.identify()
    anne, bob = customer_of(ws, "crm:1"), customer_of(ws, "crm:2")
    ws.identify(full=True)
    assert (customer_of(ws, "crm:1"), customer_of(ws, "crm:2")) == (anne, bob)

    _add_web(ws.root, "web2.csv", "x,Anne,Martin,anne.martin@work.fr,\n")
    ws.ingest()
    ws.identify()
    work = customer_of(ws, "web:x")
    assert work not in (anne, bob)

    # a new record carries both e-mails: the two customers are one, the older id survives
    _add_web(ws.root, "web3.csv", "y,Anne,Martin,anne@mail.fr,\nz,Anne,Martin,"
             "anne.martin@work.fr,\n")
    ws.ingest()
    ws.store.execute("INSERT INTO identifiers VALUES ('web:y', 'email', "
                     "'anne.martin@work.fr', 'web', 99)")
    result = ws.identify()
    assert result.merges == 1
    assert customer_of(ws, "web:x") == customer_of(ws, "crm:1") == anne
    assert customer_of(ws, "crm:2") == bob
    events = ws.store.fetchall("SELECT event, customer_id, other_customer_id FROM "
                               "identity_events")
    assert events == [("merge", anne, work)]
    # the customer merged away has no golden record left; every linked customer has one
    assert ws.store.fetchall("SELECT customer_id FROM customers ORDER BY 1") == \
        ws.store.fetchall("SELECT DISTINCT customer_id FROM customer_links ORDER BY 1")
    assert work not in {r[0] for r in ws.store.fetchall("SELECT customer_id FROM customers")}
    assert ws.store.scalar("SELECT merged_into FROM customer_ids WHERE customer_id = ?",
                           [work]) == anne
    with pytest.raises(NotFoundError) as error:
        ws.customer(work)
    assert f"merged into {anne}" in error.value.user_message()


@pytest.mark.slow
def test_manual_merge_and_unmerge_are_audited_and_remembered(base: Builder) -> None:
    ws = base(crm=CRM + "3,Anne,Martin,anne@mail.fr,,1980-01-02,,,,\n")
    ws.identify()
    anne, bob = customer_of(ws, "crm:1"), customer_of(ws, "crm:2")
    assert customer_of(ws, "crm:3") == anne

    ws.identity.merge(anne, bob, reason="same person, checked by phone")
    assert customer_of(ws, "crm:2") == anne  # ids created in one run: the smaller survives
    assert ws.store.fetchall("SELECT event, customer_id, other_customer_id, reason "
                             "FROM identity_events") == [
        ("manual_merge", anne, bob, "same person, checked by phone")]
    assert ws.store.scalar("SELECT count(*) FROM customers WHERE customer_id = ?", [bob]) == 0
    ws.identify(full=True)
    assert customer_of(ws, "crm:2") == anne  # remembered

    ws.identity.unmerge("crm:2", reason="not the same person after all")
    assert customer_of(ws, "crm:1") == customer_of(ws, "crm:3") == anne  # larger part keeps id
    alone = customer_of(ws, "crm:2")
    assert alone != anne
    assert ws.store.fetchall("SELECT event, customer_id, other_customer_id FROM "
                             "identity_events WHERE event = 'manual_split'") == [
        ("manual_split", anne, alone)]
    ws.identify(full=True)
    assert customer_of(ws, "crm:2") == alone
    method = ws.store.scalar("SELECT method FROM customer_links WHERE record_key = 'crm:2'")
    assert method == "singleton"
    why = ws.customer(anne, why=True)["evidence"]
    assert any("share the e-mail anne@mail.fr" in line for line in why)


@pytest.mark.slow
def test_incremental_run_equals_full_run(tmp_path: Path) -> None:
    from _identify_data import CRM_HEADER, SOURCES

    from onetoone import Workspace

    first = (
        "1,Anne,Martin,anne@mail.fr,0611223344,1980-01-02,N0001,,,\n"
        "2,Paul,Martin,famille@mail.fr,,1978-05-06,N0002,,,\n"
        "3,Anne,Martin,famille@mail.fr,,1980-01-02,,,,\n"
        "4,Luc,Petit,luc@petit.fr,0622334455,1985-01-01,N0004,,,\n"
        "5,Eve,Roux,eve@roux.fr,,1990-01-01,,,,\n"
    )
    later = (
        "a,Anne,Martin,anne@mail.fr,N0001\n"      # joins Anne
        "b,Paul,Martin,famille@mail.fr,N0009\n"   # family e-mail, other number
        "c,Eve,Roux,luc@petit.fr,\n"               # makes luc@ shared: splits nothing wrong
        "d,Zoé,Blanc,zoe@blanc.fr,\n"              # new customer
    )
    results = []
    for full in (False, True):
        root = tmp_path / ("full" if full else "incremental")
        root.mkdir()
        (root / "crm.csv").write_text(CRM_HEADER + first, encoding="utf-8")
        (root / "web1.csv").write_text("id,first,last,email,num\nw,Eve,Roux,eve@roux.fr,\n",
                                       encoding="utf-8")
        (root / "tx.csv").write_text("tid,cust,email,at,amount\nt1,,luc@petit.fr,2024-01-01,"
                                     "10\n", encoding="utf-8")
        config = '[workspace]\nname = "t"\n[identify]\nprobabilistic = false\n' + SOURCES
        ws = Workspace.init(root, config_text=config)
        ws.ingest()
        ws.identify()
        (root / "web2.csv").write_text("id,first,last,email,num\n" + later, encoding="utf-8")
        ws.ingest()
        result = ws.identify(full=full)
        assert result.mode == ("full" if full else "incremental")
        links = ws.store.fetchall("SELECT record_key, customer_id, method FROM customer_links "
                                  "ORDER BY record_key")
        golden = ws.store.fetchall("SELECT * EXCLUDE (resolved_at, first_seen_at) FROM "
                                   "customers ORDER BY customer_id")
        events = ws.store.fetchall("SELECT event, customer_id, other_customer_id FROM "
                                   "identity_events ORDER BY ALL")
        tx = ws.store.fetchall("SELECT source_id, customer_id FROM transactions")
        results.append((links, golden, events, tx, groups(ws)))
        ws.close()
    assert results[0] == results[1]
    assert len(results[0][0]) == 11


def test_a_customer_whose_records_are_deleted_loses_its_golden_record(base: Builder) -> None:
    ws = base(crm=CRM)
    ws.identify()
    anne, bob = customer_of(ws, "crm:1"), customer_of(ws, "crm:2")
    ws.store.execute("DELETE FROM identifiers WHERE record_key = 'crm:2'")
    ws.store.execute("DELETE FROM customer_records WHERE record_key = 'crm:2'")
    result = ws.identify()
    assert result.mode == "incremental"
    assert ws.store.fetchall("SELECT customer_id FROM customers") == [(anne,)]
    assert ws.store.scalar("SELECT count(*) FROM customer_links WHERE customer_id = ?",
                           [bob]) == 0
