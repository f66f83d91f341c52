"""``onetoone apikey create`` and ``onetoone decide`` (a campaign run) through the CLI."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import duckdb
from typer.testing import CliRunner

from _service_server import CONFIG
from onetoone import Workspace
from onetoone.cli import app

CUSTOMERS = """id;prenom;mail;langue;pays
1;Marie;marie@exemple.fr;fr;FR
2;John;john@example.co.uk;en;GB
3;Paul;;fr;FR
4;Lea;lea@exemple.fr;fr;FR
5;Zoe;zoe@exemple.fr;fr;FR
"""
CONSENTS = """client;canal;ok;date
1;email;oui;2026-01-10
2;email;oui;2026-01-10
3;email;oui;2026-01-10
4;email;oui;2026-01-10
4;email;non;2026-03-01
"""
SOURCES = """
[identify]
probabilistic = false

[sources.crm]
entity = "customers"
path = "crm.csv"
delimiter = ";"
[sources.crm.columns]
source_id = "id"
first_name = "prenom"
email = "mail"
language = "langue"
country = "pays"

[sources.optin]
entity = "consents"
path = "consents.csv"
delimiter = ";"
customer_source = "crm"
[sources.optin.columns]
customer_source_id = "client"
channel = "canal"
granted = "ok"
occurred_at = "date"
"""


def _workspace(tmp_path: Path) -> Path:
    (tmp_path / "crm.csv").write_text(CUSTOMERS, encoding="utf-8")
    (tmp_path / "consents.csv").write_text(CONSENTS, encoding="utf-8")
    with Workspace.init(tmp_path, config_text=CONFIG + SOURCES) as ws:
        ws.ingest()
        ws.identify()
    return tmp_path


def test_apikey_create_prints_the_key_last_and_stores_its_hash(tmp_path: Path) -> None:
    with Workspace.init(tmp_path, config_text=CONFIG):
        pass
    result = CliRunner().invoke(app, ["apikey", "create", "crm-sync", "--scopes",
                                      "events:write,customers:read", "--workspace",
                                      str(tmp_path)])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("oto_") and len(key) > 40
    with duckdb.connect(str(tmp_path / "onetoone.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT name, key_hash, scopes FROM api_keys").fetchall()
    assert rows == [("crm-sync", hashlib.sha256(key.encode()).hexdigest(),
                     ["events:write", "customers:read"])]
    bad = CliRunner().invoke(app, ["apikey", "create", "x", "--scopes", "root",
                                   "--workspace", str(tmp_path)])
    assert bad.exit_code == 1 and "Unknown or missing scopes: root" in bad.output


def test_decide_writes_the_outbound_list_and_respects_consent_and_caps(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    runs = []
    for i in range(3):
        out = root / f"run{i}.csv"
        result = CliRunner().invoke(app, ["decide", "--channel", "email", "--workspace",
                                          str(root), "--output", str(out)])
        assert result.exit_code == 0, result.output
        with out.open(encoding="utf-8") as fh:
            runs.append(list(csv.DictReader(fh)))
    first = runs[0]
    # Marie and John consented; Paul has no e-mail; Lea withdrew; Zoe never consented
    assert sorted(r["address"] for r in first) == ["john@example.co.uk", "marie@exemple.fr"]
    by_address = {r["address"]: r for r in first}
    assert by_address["marie@exemple.fr"]["subject"] == "Marie, -20 % pour vous"
    assert by_address["john@example.co.uk"]["subject"] == "John, 20% off for you"
    assert by_address["john@example.co.uk"]["language"] == "en"
    # e-mail cap: 2 per 7 days, so the third run contacts nobody
    assert [len(r) for r in runs] == [2, 2, 0]
    with duckdb.connect(str(root / "onetoone.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM outbound").fetchone() == (4,)
        logged = con.execute("SELECT count(DISTINCT decision_id) FROM decisions").fetchone()
        assert logged == (12,)  # 4 customers with an e-mail x 3 runs, all logged
        reasons = dict(con.execute("""SELECT context->>'reason', count(*) FROM decisions
                                      WHERE action_id IS NULL GROUP BY ALL""").fetchall())
        # every decision names its run, so that the run's lift can be measured
        assert con.execute("""SELECT count(*) FROM decisions d WHERE NOT EXISTS (
            SELECT 1 FROM outbound o WHERE o.run_id = d.context->'context'->>'campaign')
            AND d.action_id IS NOT NULL""").fetchone() == (0,)
    assert reasons == {"no consent, or suppressed after ignores": 6,
                       "cap email 2 per 7 days": 2}
