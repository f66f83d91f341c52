"""Small multi-silo customer bases that the identify tests build themselves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from onetoone import Workspace

CRM_HEADER = "id,first,last,email,phone,dob,num,postcode,city,updated\n"

SOURCES = """
[sources.crm]
entity = "customers"
path = "crm.csv"
[sources.crm.columns]
source_id = "id"
first_name = "first"
last_name = "last"
email = "email"
phone = "phone"
birth_date = "dob"
postcode = "postcode"
city = "city"
updated_at = "updated"
[sources.crm.identifiers]
customer_number = "num"

[sources.web]
entity = "customers"
path = "web*.csv"
[sources.web.columns]
source_id = "id"
first_name = "first"
last_name = "last"
email = "email"
[sources.web.identifiers]
customer_number = "num"

[sources.tx]
entity = "transactions"
path = "tx.csv"
customer_source = "crm"
[sources.tx.columns]
source_id = "tid"
customer_source_id = "cust"
occurred_at = "at"
amount = "amount"
[sources.tx.identifiers]
email = "email"
"""

Builder = Callable[..., Workspace]


def make_base(tmp_path: Path) -> Builder:
    """A workspace from CSV bodies: ``build(crm=..., web=..., tx=..., identify=...)``."""

    def build(crm: str = "", web: str = "", tx: str = "", identify: str = "") -> Workspace:
        (tmp_path / "crm.csv").write_text(CRM_HEADER + crm, encoding="utf-8")
        (tmp_path / "web1.csv").write_text("id,first,last,email,num\n" + web, encoding="utf-8")
        (tmp_path / "tx.csv").write_text("tid,cust,email,at,amount\n" + tx, encoding="utf-8")
        if "probabilistic" not in identify:
            identify = "probabilistic = false\n" + identify
        config = f'[workspace]\nname = "t"\n\n[identify]\n{identify}\n'
        ws = Workspace.init(tmp_path, config_text=config + SOURCES)
        ws.ingest()
        return ws

    return build


def customer_of(ws: Workspace, record_key: str) -> str:
    cid = ws.store.scalar("SELECT customer_id FROM customer_links WHERE record_key = ?",
                          [record_key])
    assert cid is not None, f"{record_key} is not linked"
    return str(cid)


def groups(ws: Workspace) -> set[frozenset[str]]:
    rows = ws.store.fetchall("SELECT list(record_key) FROM customer_links GROUP BY customer_id")
    return {frozenset(r[0]) for r in rows}
