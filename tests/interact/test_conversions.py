"""Purchases after a campaign's message become conversions of its decision: by a batch
export (``onetoone ingest``) and by a purchase event of the API, once per decision, the last
message before the purchase taking it, cancelled orders, refunds and the control group's
purchases converting nothing; the propensities learn one outcome per decision."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
from typer.testing import CliRunner

from _service_server import CONFIG, OPTIN, Server, crm_sources, make_workspace
from onetoone import Workspace
from onetoone.cli import app
from onetoone.interact.conversions import attributable
from onetoone.jobs import attribute_conversions

CUSTOMERS = 30
ORDERS_HEAD = "ref;client;quand;montant;statut\n"

SOURCES = crm_sources({"source_id": "id", "first_name": "prenom", "email": "mail"},
                      OPTIN) + """
[sources.orders]
entity = "transactions"
path = "orders.csv"
delimiter = ";"
customer_source = "crm"
[sources.orders.columns]
source_id = "ref"
customer_source_id = "client"
occurred_at = "quand"
amount = "montant"
status = "statut"

[campaigns.spring]
channel = "email"
actions = ["retention_offer"]
control_share = 0.3
"""


def _workspace(root: Path) -> dict[str, str]:
    crm = ["id;prenom;mail"] + [f"{i};Client{i};client{i}@exemple.fr"
                                for i in range(1, CUSTOMERS + 1)]
    (root / "crm.csv").write_text("\n".join(crm) + "\n", encoding="utf-8")
    optin = ["client;canal;ok;date"] + [f"{i};email;oui;2026-01-10"
                                        for i in range(1, CUSTOMERS + 1)]
    (root / "consents.csv").write_text("\n".join(optin) + "\n", encoding="utf-8")
    # a purchase long before any message converts nothing
    (root / "orders.csv").write_text(ORDERS_HEAD + "old;1;2026-01-02 10:00:00+00:00;80;paid\n",
                                     encoding="utf-8")
    keys = make_workspace(root, CONFIG + SOURCES)
    with Workspace(root) as ws:
        ws.ingest()
        ws.identify()
    return keys


def _rows(root: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(root / "onetoone.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def _source_id(customer_id: str, root: Path) -> str:
    return str(_rows(root, f"""SELECT r.source_id FROM customer_records r JOIN customer_links
                               USING (record_key) WHERE customer_id = '{customer_id}'
                               AND r.source = 'crm'""")[0][0])


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S+00:00")


def test_purchases_after_a_message_convert_it_once(tmp_path: Path) -> None:
    _workspace(tmp_path)
    runner = CliRunner()
    where = ["--workspace", str(tmp_path)]
    run = runner.invoke(app, ["campaign", "run", "spring", *where])
    assert run.exit_code == 0, run.output
    sent = _rows(tmp_path, "SELECT customer_id, decision_id, sent_at FROM deliveries "
                           "WHERE status = 'sent' ORDER BY customer_id")
    held = [r[0] for r in _rows(tmp_path, "SELECT DISTINCT customer_id FROM decisions "
                                          "WHERE control_group = 'campaign' ORDER BY 1")]
    assert len(sent) >= 6 and held
    (a, a_decision, at), (b, b_decision, _), (c, _, _), (d, _, _), (e, e_decision, _) = sent[:5]
    soon = at.replace(microsecond=0) + timedelta(seconds=1)
    orders = [
        ("a1", a, soon, "42.50", "paid"),
        ("b1", b, soon, "20", "paid"), ("b2", b, soon + timedelta(seconds=1), "99", "paid"),
        ("c1", c, soon, "35", "cancelled"),    # cancelled: no conversion
        ("d1", d, soon, "-15", "returned"),    # a refund: no conversion
        ("h1", held[0], soon, "60", "paid"),   # the control group has no message to convert
        ("e1", e, soon, "70", "paid"),         # e's decision converted by its id already
    ]
    with Workspace(tmp_path) as ws:
        ws.decisions.respond(e_decision, "conversion", value=70.0)
    text = ORDERS_HEAD + "old;1;2026-01-02 10:00:00+00:00;80;paid\n" + "".join(
        f"{ref};{_source_id(who, tmp_path)};{_stamp(when)};{amount};{status}\n"
        for ref, who, when, amount, status in orders)
    (tmp_path / "orders.csv").write_text(text, encoding="utf-8")
    while datetime.now(UTC).replace(tzinfo=None) <= soon + timedelta(seconds=1):
        time.sleep(0.2)  # the purchases must be in the past when they are loaded

    loaded = runner.invoke(app, ["ingest", *where])
    assert loaded.exit_code == 0, loaded.output
    assert "2 purchase(s) converted campaign messages" in loaded.output
    conversions = dict(((d, v) for d, v in _rows(
        tmp_path, "SELECT decision_id, value FROM responses WHERE response = 'conversion'")))
    assert conversions == {a_decision: 42.5, b_decision: 20.0, e_decision: 70.0}
    learned = _rows(tmp_path, "SELECT sum(successes) FROM propensities "
                              "WHERE action_id = 'retention_offer'")[0][0]
    assert learned == 3  # one success a decision, b's second purchase included

    with Workspace(tmp_path) as ws:  # again: nothing new
        assert attribute_conversions(ws) == 0
        status = ws.campaigns.status("spring")
        assert status["converted"] == 3
        # a message later than the purchase does not take it; a window of 0 days takes none
        cur = ws.store.con.cursor()
        assert attributable(cur, 0) == []


def test_a_purchase_event_converts_the_message_at_once(tmp_path: Path) -> None:
    keys = _workspace(tmp_path)
    runner = CliRunner()
    run = runner.invoke(app, ["campaign", "run", "spring", "--workspace", str(tmp_path)])
    assert run.exit_code == 0, run.output
    (customer, decision, _), = _rows(tmp_path, "SELECT customer_id, decision_id, sent_at "
                                               "FROM deliveries WHERE status = 'sent' "
                                               "ORDER BY customer_id LIMIT 1")
    number = _source_id(customer, tmp_path)
    server = Server(tmp_path, keys).start()
    try:
        with server.client("admin") as client:
            later = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
            time.sleep(1.2)
            answer = client.post("/v1/events", json={"events": [{
                "event_id": "web-order-1", "occurred_at": later, "type": "purchase",
                "channel": "web", "customer": {"email": f"client{number}@exemple.fr"},
                "properties": {"amount": 55.0}}]})
            assert answer.status_code == 200, answer.text
            assert answer.json()["conversions"] == 1
            again = client.post("/v1/events", json={"events": [{
                "event_id": "web-order-2", "occurred_at": later, "type": "purchase",
                "channel": "web", "customer": {"email": f"client{number}@exemple.fr"},
                "properties": {"amount": 10.0}}]})
            assert again.json()["conversions"] == 0  # the decision converted already
            status = client.get("/v1/campaigns/spring/status").json()
            assert status["converted"] == 1
    finally:
        server.stop()
    assert _rows(tmp_path, "SELECT decision_id, value FROM responses "
                           "WHERE response = 'conversion'") == [(decision, 55.0)]
