"""Erasure proved on a demo company: after ``onetoone privacy erase`` (and the compaction it
triggers), none of the person's e-mails or phones, nor their name with their birth date, is
left in any table, in the database file, or in any file onetoone wrote; the user's exports
are untouched; loading them again quarantines the person."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from _service_server import CONFIG
from onetoone import Workspace
from onetoone.cli import app
from onetoone.demo import generate_demo
from onetoone.privacy.registry import HOLDINGS, NO_PERSON
from onetoone.schema import TABLES

pytestmark = pytest.mark.slow

#: the actions of the service tests, so that a campaign writes an outbound list
ACTIONS = CONFIG[CONFIG.index("[actions."):]


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / "exports").rglob("*")) if p.is_file()}


def _values(con: duckdb.DuckDBPyConnection, customer_id: str) -> dict[str, list[str]]:
    """The person's e-mails, phones and (last name, birth date) pairs, from every record."""
    rows = con.execute("""
        SELECT r.email, r.phone, r.last_name, r.birth_date FROM customer_records r
        JOIN customer_links l USING (record_key) WHERE l.customer_id = ?""",
                       [customer_id]).fetchall()
    ids = con.execute("""SELECT type, value FROM identifiers JOIN customer_links
                         USING (record_key) WHERE customer_id = ?""", [customer_id]).fetchall()
    return {
        "emails": sorted({r[0] for r in rows if r[0]} | {v for t, v in ids if t == "email"}),
        "phones": sorted({r[1] for r in rows if r[1]} | {v for t, v in ids if t == "phone"}),
        "names": sorted({(r[2], str(r[3])) for r in rows if r[2] and r[3]}),
    }


def _hits(con: duckdb.DuckDBPyConnection, values: dict[str, list]) -> list[str]:
    """Where any of the values is still found: every table, every row as text."""
    found = []
    tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
    for table in tables:
        text = f'lower(t::VARCHAR) FROM "{table}" t'
        for value in [*values["emails"], *values["phones"]]:
            if con.execute(f"SELECT count(*) FROM (SELECT {text}) x(v) WHERE "
                           "contains(v, lower(?))", [value]).fetchone()[0]:
                found.append(f"{table}: {value}")
        for name, born in values["names"]:
            if con.execute(f"SELECT count(*) FROM (SELECT {text}) x(v) WHERE "
                           "contains(v, lower(?)) AND contains(v, ?)", [name, born]
                           ).fetchone()[0]:
                found.append(f"{table}: {name} born {born}")
    return found


def _in_files(root: Path, values: dict[str, list], exclude: str = "exports") -> list[str]:
    needles = [v.encode() for v in [*values["emails"], *values["phones"]]]
    found = []
    for path in root.rglob("*"):
        if path.is_file() and exclude not in path.relative_to(root).parts[:1]:
            data = path.read_bytes().lower()
            found += [f"{path.name}: {n.decode()}" for n in needles if n.lower() in data]
    return found


def test_every_table_with_a_person_is_in_the_registry() -> None:
    held = {h.table for h in HOLDINGS if not h.working}
    personal = {name for name, table in TABLES.items()
                if {"customer_id", "customer_record_key", "record_key"}
                & {c.name for c in table.columns}}
    assert personal - held - NO_PERSON == set(), "add these tables to privacy/registry.py"
    assert (held | NO_PERSON) == set(TABLES), "the registry names unknown tables"


def test_erasure_leaves_nothing_of_the_person_and_a_reload_quarantines_them(
        tmp_path: Path) -> None:
    company = generate_demo(tmp_path, customers=300, seed=5)
    config = (company.config_text() + "\n" + ACTIONS
              + '\n[campaigns.spring]\nchannel = "email"\ncontrol_share = 0.0\n')
    with Workspace.init(tmp_path, config_text=config) as ws:
        ws.ingest()
        ws.identify()
        ws.score()
        campaign = ws.decisions.campaign("email")
        ws.campaigns.run("spring")  # its e-mails in the outbox
        ws.report()
    runner = CliRunner()
    where = ["--workspace", str(tmp_path)]
    outbound = list(csv.DictReader(campaign.output.open(encoding="utf-8")))
    with duckdb.connect(str(tmp_path / "onetoone.duckdb"), read_only=True) as con:
        # someone in the outbound list with several records, a phone and a birth date
        contacted = [r["customer_id"] for r in outbound]
        person, control = con.execute("""
            SELECT customer_id FROM customers WHERE customer_id IN (SELECT unnest(?))
              AND record_count >= 2 AND phone IS NOT NULL AND birth_date IS NOT NULL
            ORDER BY record_count DESC, customer_id LIMIT 2""", [contacted]).fetchall()
        person, control = person[0], control[0]
        values, kept = _values(con, person), _values(con, control)
    assert values["emails"] and values["phones"] and values["names"]
    with Workspace(tmp_path) as ws:  # a decision with its context, and a response
        email = values["emails"][0]
        decision = ws.decisions.decide({"email": email}, "web", {"page": "home"})
        if decision["actions"]:
            ws.decisions.respond(decision["decision_id"], "click")

    exported = runner.invoke(app, ["privacy", "export", "--email", email.upper(),
                                   "--output", str(tmp_path / "privacy" / "request.json"),
                                   *where])
    assert exported.exit_code == 0, exported.output
    document = json.loads((tmp_path / "privacy" / "request.json").read_text(encoding="utf-8"))
    assert document["customer_id"] == person
    assert len(document["source_records"]) >= 2
    assert document["tables"]["consents"] and document["tables"]["customer_scores"]
    assert document["tables"]["decisions"] and document["tables"]["deliveries"]
    assert {f["file"].split("/")[0] for f in document["files"]} == {"outbound", "outbox"}
    assert _hits(duckdb.connect(str(tmp_path / "onetoone.duckdb"), read_only=True), values)
    before = _digests(tmp_path)

    erased = runner.invoke(app, ["privacy", "erase", "--email", email, *where])
    assert erased.exit_code == 0, erased.output
    assert f"Erased {person}" in erased.output and "compacted" in erased.output

    # nothing in any table, by SQL; the other customer is all there (the check can fail)
    with duckdb.connect(str(tmp_path / "onetoone.duckdb"), read_only=True) as con:
        assert _hits(con, values) == []
        assert len(_hits(con, kept)) > 5
        audit = con.execute("SELECT action FROM audit_log WHERE customer_id = ? "
                            "ORDER BY \"at\"",
                            [person]).fetchall()
        assert [a for (a,) in audit][-3:] == ["privacy.export", "privacy.export.file",
                                               "privacy.erase"]
    # nothing in the database files, nor in any file onetoone wrote; the exports untouched
    assert _in_files(tmp_path, values) == []
    assert _in_files(tmp_path, kept), "the control customer should be found in the files"
    assert not (tmp_path / "privacy" / "request.json").exists()
    assert _digests(tmp_path) == before
    again = runner.invoke(app, ["privacy", "erase", "--email", email, *where])
    assert again.exit_code == 0 and "already erased" in again.output

    # a new load of the same exports: the person is quarantined, not brought back
    for path in (tmp_path / "exports").rglob("*"):
        if path.suffix in (".csv", ".jsonl"):
            with path.open("ab") as out:
                out.write(b"\n")  # a new version of each file, the same records
    with Workspace(tmp_path) as ws:
        ws.ingest()
        ws.identify()
        reasons = ws.store.fetchall(
            "SELECT reason, count(*), count(raw) FROM quarantine WHERE reason LIKE 'erased%' "
            "GROUP BY reason")
        assert len(reasons) == 1
        assert re.fullmatch(r"erased at the person's request on \d{4}-\d{2}-\d{2}",
                            reasons[0][0])
        assert reasons[0][1] >= len(document["source_records"]) and reasons[0][2] == 0
        assert _hits(ws.store.con, values) == []
