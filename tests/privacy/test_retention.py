"""Retention and anonymisation: customers inactive beyond ``[privacy] retention_days`` are
counted, then anonymised (their events kept under a random id, their identity gone) or erased;
``onetoone privacy`` on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from onetoone import Workspace
from onetoone.cli import app
from onetoone.errors import InvalidInputError

CRM = """id;prenom;mail;tel
1;Anne;anne.active@exemple.fr;0611111111
2;Bruno;bruno.dormant@exemple.fr;0622222222
3;Chloe;chloe.dormante@exemple.fr;
"""
ORDERS = """order;client;date;total;note
A1;1;{recent};30.00;rappeler Anne au 0611111111
B1;2;2019-03-01;80.00;
B2;2;2019-05-01;20.00;
C1;3;2018-01-10;15.00;
"""
CONFIG = """
[workspace]
name = "retention-test"

[identify]
probabilistic = false

[privacy]
retention_days = 365
retention_mode = "{mode}"

[sources.crm]
entity = "customers"
path = "crm.csv"
delimiter = ";"
[sources.crm.columns]
source_id = "id"
first_name = "prenom"
email = "mail"
phone = "tel"

[sources.orders]
entity = "transactions"
path = "orders.csv"
delimiter = ";"
customer_source = "crm"
[sources.orders.columns]
source_id = "order"
customer_source_id = "client"
occurred_at = "date"
amount = "total"
"""


def _workspace(root: Path, mode: str) -> Path:
    from datetime import date, timedelta

    recent = (date.today() - timedelta(days=20)).isoformat()
    (root / "crm.csv").write_text(CRM, encoding="utf-8")
    (root / "orders.csv").write_text(ORDERS.format(recent=recent), encoding="utf-8")
    with Workspace.init(root, config_text=CONFIG.format(mode=mode)) as ws:
        ws.ingest()
        ws.identify()
    return root


def _everything(ws: Workspace) -> str:
    tables = [r[0] for r in ws.store.fetchall("SELECT table_name FROM duckdb_tables()")]
    return "\n".join(str(row) for t in tables
                     for row in ws.store.fetchall(f'SELECT * FROM "{t}"')).lower()


def test_a_dry_run_counts_then_anonymisation_keeps_the_events_without_the_identity(
        tmp_path: Path) -> None:
    root = _workspace(tmp_path, "anonymise")
    runner = CliRunner()
    dry = runner.invoke(app, ["privacy", "retention", "--workspace", str(root)])
    assert dry.exit_code == 0, dry.output
    assert "2 customers inactive for more than 365 days would be anonymised" in dry.output
    with Workspace(root) as ws:
        assert ws.store.scalar("SELECT count(*) FROM customers") == 3  # nothing changed
    applied = runner.invoke(app, ["privacy", "retention", "--apply", "--workspace", str(root)])
    assert applied.exit_code == 0, applied.output
    assert "2 customers inactive for more than 365 days anonymised" in applied.output
    with Workspace(root) as ws:
        text = _everything(ws)
        for gone in ("bruno", "chloe", "0622222222", "+33622222222"):
            assert gone not in text
        assert "anne.active@exemple.fr" in text  # the active customer is untouched
        rows = ws.store.fetchall("SELECT source_id, customer_id, customer_record_key, amount "
                                 "FROM transactions ORDER BY source_id")
        assert [r[0] for r in rows] == ["A1", "B1", "B2", "C1"]  # the events stay
        anon = {r[0]: r[1] for r in rows if r[0] != "A1"}
        assert all(v.startswith("anon-") for v in anon.values())
        assert anon["B1"] == anon["B2"] != anon["C1"]  # one random id per person
        assert all(r[2] is None for r in rows if r[0] != "A1")
        assert ws.store.scalar("SELECT count(*) FROM customers") == 1
        assert ws.store.fetchall("SELECT action, actor LIKE 'cli:%' FROM audit_log "
                                 "ORDER BY \"at\"") == [
            ("privacy.retention.dry_run", True), ("privacy.anonymise", True),
            ("privacy.anonymise", True)]
        # nobody left to anonymise
        assert ws.privacy.retention(actor="cli:test", apply=True)["customers"] == 0


def test_erasure_by_retention_removes_the_events_too(tmp_path: Path) -> None:
    root = _workspace(tmp_path, "erase")
    with Workspace(root) as ws:
        done = ws.privacy.retention(actor="job:retention", apply=True)
        assert done["customers"] == 2 and done["rows"]["transactions"] == 3
        assert ws.store.fetchall("SELECT source_id FROM transactions") == [("A1",)]
        reasons = ws.store.fetchall("SELECT DISTINCT reason FROM erasures")
        assert reasons == [("retention",)]


def test_no_retention_period_and_bad_names_are_one_sentence(tmp_path: Path) -> None:
    root = _workspace(tmp_path, "erase")
    (root / "onetoone.toml").write_text(
        (root / "onetoone.toml").read_text().replace("retention_days = 365\n", ""))
    with Workspace(root) as ws, pytest.raises(InvalidInputError, match="No retention"):
        ws.privacy.retention(actor="cli:test")
    runner = CliRunner()
    two = runner.invoke(app, ["privacy", "erase", "--email", "a@b.fr", "--phone", "0611111111",
                              "--workspace", str(root)])
    assert two.exit_code == 1 and "exactly one of" in two.output
    unknown = runner.invoke(app, ["privacy", "export", "--email", "nobody@exemple.fr",
                                  "--workspace", str(root)])
    assert unknown.exit_code == 1 and "No customer carries this email" in unknown.output
    bad = runner.invoke(app, ["privacy", "export", "--identifier", "loyalty_card",
                              "--workspace", str(root)])
    assert bad.exit_code == 1 and "TYPE:VALUE" in bad.output
