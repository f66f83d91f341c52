"""Score and report a workspace built from generated exports, through ingestion and identify.

The fixture is the project's own: a whitespace-delimited transaction log (the CDNOW layout) with
a status column, order lines and a product catalogue with margins, and a CRM with prospects.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from onetoone import Workspace
from onetoone.config import parse_config
from onetoone.errors import ConfigError


def _exports(root: Path, n: int = 150, seed: int = 3) -> None:
    rng = np.random.default_rng(seed)
    start = np.datetime64("2024-01-01")
    lines, items = [], ["order product qty price"]
    order = 0
    for i in range(n):
        day = int(rng.integers(0, 300))
        rate = rng.gamma(0.7, 1 / 20)
        dropout = rng.beta(2.0, 6.0)
        while day < 600:
            order += 1
            status = "cancelled" if rng.random() < 0.05 else "paid"
            amount = round(float(rng.gamma(3, 12)), 2)
            date = str(start + np.timedelta64(day, "D")).replace("-", "")
            lines.append(f"  O{order:05d}   K{i:04d} {date}  {status}   {amount:>8.2f}")
            items.append(f"O{order:05d} P{order % 2} 1 {amount:.2f}")
            if rng.random() < dropout:
                break
            day += 1 + int(rng.exponential(1 / max(rate, 1e-3)))
    (root / "orders.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "items.txt").write_text("\n".join(items) + "\n", encoding="utf-8")
    (root / "products.csv").write_text("sku,margin\nP0,0.5\nP1,0.7\n", encoding="utf-8")
    crm = ["id,email"] + [f"K{i:04d},k{i}@shop.fr" for i in range(n + 5)]  # 5 prospects
    (root / "crm.csv").write_text("\n".join(crm) + "\n", encoding="utf-8")
    (root / "onetoone.toml").write_text('''
[workspace]
name = "shop"

[sources.crm]
entity = "customers"
path = "crm.csv"
[sources.crm.columns]
source_id = "id"
email = "email"

[sources.orders]
entity = "transactions"
path = "orders.txt"
format = "csv"
delimiter = "whitespace"
header = false
date_format = "%Y%m%d"
customer_source = "crm"
[sources.orders.columns]
source_id = "column1"
customer_source_id = "column2"
occurred_at = "column3"
status = "column4"
amount = "column5"

[sources.items]
entity = "transaction_items"
path = "items.txt"
delimiter = "whitespace"
[sources.items.columns]
transaction_id = "order"
product_id = "product"
quantity = "qty"
unit_price = "price"

[sources.products]
entity = "products"
path = "products.csv"
[sources.products.columns]
source_id = "sku"
margin = "margin"

[identify]
probabilistic = false

[value]
holdout_weeks = 20
''', encoding="utf-8")


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("shop")
    _exports(root)
    ws = Workspace(root)
    results = ws.ingest()
    assert all(r.total("rows_quarantined") == 0 for r in results)
    ws.identify()
    yield ws
    ws.close()


def test_whitespace_delimiter_reads_runs_of_blanks(shop):
    row = shop.store.fetchall("SELECT source_id, amount, status FROM transactions "
                              "ORDER BY source_id LIMIT 1")[0]
    assert row[0] == "O00001" and float(row[1]) > 0 and row[2] in ("paid", "cancelled")
    with pytest.raises(ConfigError, match="single character"):
        parse_config('[sources.x]\nentity = "products"\npath = "p.csv"\ndelimiter = "blank"\n')


def test_score_fills_every_customer_with_margins_and_no_nan(shop):
    result = shop.score()
    n_customers = shop.store.scalar("SELECT count(*) FROM customers")
    rows = shop.store.fetchall("SELECT customer_id, frequency, recency, \"T\", monetary_value, "
                               "p_alive, clv, value_tier, scores FROM customer_scores")
    assert len(rows) == n_customers == len({r[0] for r in rows})
    assert all(np.isfinite(v) for r in rows for v in r[1:7])
    scores = [json.loads(r[8]) for r in rows]
    assert {"expected_purchases_52w", "expected_spend", "model", "value_rank",
            "pareto_share"} <= set(scores[0])
    prospects = [s for s in scores if s["fallback"] == "no_purchase"]
    never_paid = shop.store.scalar(
        "SELECT count(*) FROM customers WHERE customer_id NOT IN (SELECT customer_id FROM "
        "transactions WHERE status = 'paid')")
    assert len(prospects) == never_paid >= 5  # 5 CRM prospects + customers only cancelled
    margins = {round(s["margin"], 6) for s in scores if s["fallback"] is None}
    assert min(margins) >= 0.5 and max(margins) <= 0.7 and len(margins) > 2  # from products
    # cancelled orders are not purchases
    cancelled = shop.store.scalar("SELECT count(*) FROM transactions WHERE status = 'cancelled'")
    assert cancelled > 0
    kept = shop.store.scalar("SELECT count(DISTINCT (customer_id, occurred_at::DATE)) FROM "
                             "transactions WHERE status = 'paid'")
    s = result.scores
    assert int((s["frequency"] + (s["fallback"] != "no_purchase")).sum()) == kept


@pytest.mark.slow
def test_rescoring_replaces_and_keeps_other_score_keys(shop):
    as_of = shop.score().as_of.date()
    shop.store.execute("UPDATE customer_scores SET scores = json_merge_patch(scores, "
                       "'{\"my_score\": 0.5}')")
    shop.score(as_of=as_of)
    n, with_key = shop.store.fetchall(
        "SELECT count(*), count(*) FILTER (WHERE scores->>'my_score' = '0.5') "
        "FROM customer_scores")[0]
    assert n == with_key == shop.store.scalar("SELECT count(*) FROM customers")


@pytest.mark.slow
def test_cli_score_and_report(shop, tmp_path):
    root = str(shop.root)
    shop.close()
    try:
        done = subprocess.run([sys.executable, "-m", "onetoone.cli", "score", "-w", root,
                               "--as-of", "2025-08-01"], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert "Value as of 2025-08-01" in done.stdout and "Top 1 %" in done.stdout
        out = tmp_path / "r.html"
        done = subprocess.run([sys.executable, "-m", "onetoone.cli", "report", "-w", root,
                               "--output", str(out)], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        html = out.read_text(encoding="utf-8")
        assert "Value pyramid" in html and "as of <b>2025-08-01</b>" in html
        assert 'src="http' not in html and "<link" not in html and "<script" not in html
        assert (tmp_path / "r-pareto.png").stat().st_size > 1000
        bad = subprocess.run([sys.executable, "-m", "onetoone.cli", "score", "-w", root,
                              "--as-of", "2099-01-01"], capture_output=True, text=True,
                             timeout=120)
        assert bad.returncode == 1 and "in the future" in bad.stderr
        assert "Traceback" not in bad.stderr
    finally:
        shop.__init__(root)  # reopen for the fixture's teardown
