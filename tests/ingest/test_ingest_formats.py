"""JSON, JSON Lines (nested, exploded) and Parquet sources, and ad-hoc files."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ORDERS = """
[sources.web_accounts]
entity = "customers"
path = "accounts.jsonl"
[sources.web_accounts.columns]
source_id = "account_id"
email = "email"
created_at = "created_at"

[sources.web_orders]
entity = "transactions"
path = "orders.jsonl"
customer_source = "web_accounts"
[sources.web_orders.columns]
source_id = "order_id"
customer_source_id = "account_id"
occurred_at = "ordered_at"
amount = "total"
status = "status"
[sources.web_orders.identifiers]
email = "customer.email"

[sources.web_items]
entity = "transaction_items"
path = "orders.jsonl"
explode = "items"
[sources.web_items.columns]
transaction_id = "order_id"
product_id = "items.sku"
quantity = "items.qty"
unit_price = "items.unit_price"
"""


def _orders() -> str:
    lines = [
        {"order_id": "W1", "account_id": "42", "customer": {"email": "Marie@Exemple.fr"},
         "ordered_at": "2024-12-31T10:00:00+01:00", "total": 59.9, "status": "paid",
         "items": [{"sku": "A", "qty": 1, "unit_price": 19.9},
                   {"sku": "B", "qty": 2, "unit_price": 20.0}]},
        {"order_id": "W2", "account_id": "43", "customer": {"email": None},
         "ordered_at": "not a date", "total": 10, "status": "paid",
         "items": [{"sku": "A", "qty": 1, "unit_price": 10}]},
    ]
    return "\n".join(json.dumps(x) for x in lines) + "\n{broken json\n"


def test_jsonl_nested_and_exploded(make_workspace):
    accounts = json.dumps({"account_id": "42", "email": "marie@exemple.fr",
                           "created_at": "2024-01-02T03:04:05Z", "newsletter": True})
    ws = make_workspace(ORDERS, {"accounts.jsonl": accounts + "\n", "orders.jsonl": _orders()})
    results = {r.source: r for r in ws.ingest()}
    orders = results["web_orders"]
    assert (orders.total("rows_read"), orders.total("rows_loaded"),
            orders.total("rows_quarantined")) == (3, 1, 2)
    assert ws.store.fetchall(
        "SELECT source_id, occurred_at::VARCHAR, amount::VARCHAR, customer_record_key "
        "FROM transactions") == [("W1", "2024-12-31 09:00:00", "59.90", "web_accounts:42")]
    # The order's e-mail is attached to the account it names.
    assert ("web_accounts:42", "email", "marie@exemple.fr") in ws.store.fetchall(
        "SELECT record_key, type, value FROM identifiers")
    items = ws.store.fetchall("SELECT transaction_id, product_id, quantity, unit_price::VARCHAR"
                              " FROM transaction_items ORDER BY transaction_id, product_id")
    assert items == [("W1", "A", 1.0, "19.90"), ("W1", "B", 2.0, "20.00"),
                     ("W2", "A", 1.0, "10.00")]
    assert json.loads(ws.store.scalar(
        "SELECT attributes FROM customer_records WHERE source_id = '42'")) == {
        "newsletter": "true"}
    reasons = sorted(r for (r,) in ws.store.fetchall(
        "SELECT reason FROM quarantine WHERE source = 'web_orders'"))
    assert reasons[0].startswith("line is not valid JSON")
    assert reasons[1].startswith("occurred_at 'not a date' is not a date and time")
    # The account 43 has no profile but exists as a referenced customer record... only once
    # its order loads; W2 was quarantined, so it does not.
    assert ws.store.scalar("SELECT count(*) FROM customer_records") == 1
    # Identical re-run adds nothing.
    again = ws.ingest()
    assert all(f.status == "unchanged" for r in again for f in r.files)


def test_parquet_and_adhoc_file(make_workspace, tmp_path: Path):
    ws = make_workspace("")
    table = pa.table({"id": ["1", "2"], "mail": ["a@b.fr", "nope"],
                      "born": pa.array([None, None], pa.date32()), "score": [1.5, 2.0]})
    pq.write_table(table, tmp_path / "people.parquet")
    [result] = ws.ingest(path=tmp_path / "people.parquet", entity="customers",
                         columns={"source_id": "id", "email": "mail", "birth_date": "born"})
    assert result.total("rows_loaded") == 2
    assert result.total("values_invalid") == 1
    rows = ws.store.fetchall("SELECT source_id, email, attributes FROM customer_records "
                             "ORDER BY source_id")
    assert rows[0][:2] == ("1", "a@b.fr")
    assert json.loads(rows[1][2]) == {"score": "2", "_invalid": {"email": "nope"}}
