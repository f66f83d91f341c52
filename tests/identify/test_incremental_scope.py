"""An incremental run rebuilds only what new records reach, and equals a full run."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

pytest.importorskip("splink")


def _state(ws: object) -> dict[str, list[tuple[object, ...]]]:
    store = ws.store  # type: ignore[attr-defined]
    return {
        "links": store.fetchall("SELECT record_key, customer_id, method FROM customer_links "
                                "ORDER BY ALL"),
        # Older pairs keep the scores of the run that found them; a full run weighs them
        # with term frequencies that count the new records, and a pair near a threshold may
        # cross it. The pairs of new records are scored alike.
        "review of new records": store.fetchall("""
            SELECT record_key_l, record_key_r, status FROM identity_review
            WHERE record_key_l IN (SELECT record_key FROM customer_records WHERE ingestion_id
                                   = (SELECT max(ingestion_id) FROM customer_records))
               OR record_key_r IN (SELECT record_key FROM customer_records WHERE ingestion_id
                                   = (SELECT max(ingestion_id) FROM customer_records))
            ORDER BY ALL"""),
        "graph": store.fetchall("SELECT record_key, component FROM identity_graph "
                                "ORDER BY ALL"),
        "golden": store.fetchall("SELECT * EXCLUDE (resolved_at) FROM customers ORDER BY ALL"),
        "events": store.fetchall("SELECT event, customer_id, other_customer_id "
                                 "FROM identity_events ORDER BY ALL"),
        "transactions": store.fetchall("SELECT source, source_id, customer_id "
                                       "FROM transactions ORDER BY ALL"),
    }


@pytest.mark.slow
@pytest.mark.parametrize("probabilistic", [True, False])
def test_new_web_accounts_are_linked_like_a_full_run_would(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, probabilistic: bool) -> None:
    # A fifth of the web accounts arrives after the first run: they join their people's
    # customers by e-mail, by device and probabilistically, and merge customers. The
    # incremental run rebuilds a part of the base only, and gives what a full run with the
    # same model gives.
    from onetoone import Workspace
    from onetoone.demo import generate_demo

    root = tmp_path / "incremental"
    company = generate_demo(root, customers=400, seed=11)
    accounts = root / "exports" / "web" / "accounts.jsonl"
    lines = accounts.read_text(encoding="utf-8").splitlines(keepends=True)
    later = set(random.Random(2).sample(range(len(lines)), len(lines) // 5))
    accounts.write_text("".join(x for i, x in enumerate(lines) if i not in later),
                        encoding="utf-8")
    ws = Workspace.init(root, config_text='[workspace]\nname = "t"\ndefault_country = "FR"'
                        f'\n[identify]\nprobabilistic = {str(probabilistic).lower()}\n\n'
                        f'{company.sources_toml}')
    ws.ingest()
    assert ws.identify().mode == "full"
    accounts.write_text("".join(lines), encoding="utf-8")
    ws.ingest()
    ws.close()
    shutil.copytree(root, tmp_path / "full")

    with Workspace.open(root) as ws:
        result = ws.identify()
        incremental = _state(ws)
    with Workspace.open(tmp_path / "full") as ws:
        from onetoone.identify import _probabilistic
        from onetoone.identify._training import _saved_model

        model = _saved_model(ws.store)
        assert (model is not None) == probabilistic
        # The names match_pairs calls, in the orchestrator's namespace.
        predict = _probabilistic.predict_pairs
        monkeypatch.setattr(_probabilistic, "predict_pairs", lambda frame, settings, _model,
                            *args: predict(frame, settings, model, *args))
        monkeypatch.setattr(_probabilistic, "home_odds",
                            lambda _store, *_records: model["home_odds"])
        assert ws.identify(full=True).mode == "full"
        full = _state(ws)

    assert result.mode == "incremental"
    assert 0 < result.records_rebuilt < result.records / 2
    assert result.merges > 0 and (result.probabilistic_links > 0) == probabilistic
    assert full["review of new records"] or not probabilistic
    for name in full:
        assert incremental[name] == full[name], name


def _both_ways(tmp_path: Path, first: dict[str, str], later: dict[str, str],
               identify: str = "") -> list[tuple[set[frozenset[str]], object]]:
    """Groups of records after an incremental run and after a full one, on the same loads."""
    from _identify_data import SOURCES, groups

    from onetoone import Workspace

    runs = []
    for full in (False, True):
        root = tmp_path / ("full" if full else "incremental")
        root.mkdir()
        files = {"web1.csv": "id,first,last,email,num\n",
                 "tx.csv": "tid,cust,email,at,amount\n", **first}
        for name, body in files.items():
            (root / name).write_text(body, encoding="utf-8")
        ws = Workspace.init(root, config_text='[workspace]\nname = "t"\n[identify]\n'
                            f'probabilistic = false\n{identify}\n{SOURCES}')
        ws.ingest()
        ws.identify()
        for name, body in later.items():
            (root / name).write_text(body, encoding="utf-8")
        ws.ingest()
        result = ws.identify(full=full)
        runs.append((groups(ws), result))
        ws.close()
    return runs


@pytest.mark.slow
def test_a_value_that_new_records_make_too_common_stops_joining(tmp_path: Path) -> None:
    # Three records share an e-mail; a fourth makes it one held by more records than
    # max_records_per_value: it joins nobody any more, in the older records' customer too.
    from _identify_data import CRM_HEADER

    crm = CRM_HEADER + "".join(f"{i},Anne,Martin,anne@mail.fr,,,,,,\n" for i in (1, 2, 3))
    web = "id,first,last,email,num\nw,Anne,Martin,anne@mail.fr,\n"
    (incremental, result), (full, _) = _both_ways(
        tmp_path, {"crm.csv": crm}, {"web2.csv": web}, "max_records_per_value = 3")
    assert result.mode == "incremental"  # type: ignore[attr-defined]
    assert incremental == full
    assert frozenset({"crm:1", "crm:2", "crm:3"}) not in full


@pytest.mark.slow
def test_a_changed_record_regroups_a_shared_value_across_customers(tmp_path: Path) -> None:
    # A family e-mail is split in groups of one person's records; a record without a first
    # name joins the largest. Two of Anne's records change e-mail: Paul's group, another
    # customer, becomes the largest, and the record joins it as a full run would.
    from _identify_data import CRM_HEADER

    def crm(anne: str) -> str:
        return CRM_HEADER + (
            "1,Paul,Martin,fam@mail.fr,,1970-01-01,,,,\n2,Paul,Martin,fam@mail.fr,,,,,,\n"
            "3,Anne,Martin,fam@mail.fr,,1972-02-02,,,,\n"
            f"4,Anne,Martin,{anne},,1972-02-02,N4,,,\n5,Anne,Martin,{anne},,,N4,,,\n"
            "6,,Martin,fam@mail.fr,,,,,,\n")

    (incremental, result), (full, _) = _both_ways(
        tmp_path, {"crm.csv": crm("fam@mail.fr")}, {"crm.csv": crm("anne@mail.fr")})
    assert result.mode == "incremental"  # type: ignore[attr-defined]
    assert incremental == full
    assert any({"crm:1", "crm:6"} <= group for group in full)
