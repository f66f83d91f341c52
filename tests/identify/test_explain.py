"""`customer ID --why`: why records are one customer, and why related ones are not."""

from __future__ import annotations

import pytest
from _identify_data import Builder, customer_of
from typer.testing import CliRunner

from onetoone import Workspace
from onetoone.cli import app

#: Anne (crm:1, crm:3, one customer number) shares a family e-mail with Paul, a shop's phone
#: with Luc, Eve and Zoé, and carries a placeholder phone; Luc's second record (crm:9) is set
#: apart by a person; a pair Anne / Annie is rejected, a pair Anne / web:w waits for review.
CRM = (
    "1,Anne,Martin,anne@mail.fr,0145671234,1980-01-02,N0001,,,\n"
    "2,Paul,Martin,famille@mail.fr,,1978-05-06,N0002,,,\n"
    "3,Anne,Martin,famille@mail.fr,0600000000,1980-01-02,N0001,,,\n"
    "4,Luc,Petit,luc@petit.fr,0145671234,1985-01-01,N0004,,,\n"
    "5,Eve,Roux,eve@roux.fr,0145671234,1990-01-01,N0005,,,\n"
    "6,Zoé,Blanc,zoe@blanc.fr,0145671234,1991-01-01,N0006,,,\n"
    "8,Annie,Martin,annie@autre.fr,,1980-01-03,N0008,,,\n"
    "9,Luc,Petit,luc@petit.fr,,1985-01-01,N0009,,,\n"
)
WEB = "w,Anne,Martin,anne.web@mail.fr,\n"


@pytest.fixture
def ws(base: Builder) -> Workspace:
    ws = base(crm=CRM, web=WEB, identify="max_records_per_value = 3\n")
    ws.identify()
    ws.store.execute("""INSERT INTO identity_review VALUES
        ('crm:3', 'crm:8', 0.61, 0.6, NULL, 'pending', NULL),
        ('crm:1', 'web:w', 0.72, 1.4, NULL, 'pending', NULL)""")
    ws.identity.review("crm:8", "crm:3", accept=False)
    assert customer_of(ws, "crm:9") == customer_of(ws, "crm:4")
    ws.identity.unmerge("crm:9", reason="a namesake, checked by phone")
    return ws


def _refused(ws: Workspace, record_key: str) -> list[str]:
    view = ws.customer(customer_of(ws, record_key), why=True)
    assert not any("not the same person" in line or "apart" in line
                   for line in view["evidence"])
    return list(view["refused"])


def _has(lines: list[str], *parts: str) -> bool:
    return any(all(p in line for p in parts) for line in lines)


def test_refused_links_of_anne(ws: Workspace) -> None:
    anne = customer_of(ws, "crm:1")
    assert customer_of(ws, "crm:3") == anne
    lines = _refused(ws, "crm:1")
    annie, web = customer_of(ws, "crm:8"), customer_of(ws, "web:w")
    day = f"{ws.store.scalar('SELECT max(decided_at) FROM identity_review'):%Y-%m-%d}"
    assert _has(lines, f"A person said on {day} that crm:3 and crm:8 (customer {annie}) are "
                "not the same person.")
    assert _has(lines, f"crm:1 and web:w (customer {web}) may be the same person (probability "
                "0.72): waiting for a person's review.")
    assert _has(lines, "phone number '+33600000000' was ignored: it looks like a placeholder,")
    assert _has(lines, "phone number +33145671234 is shared by 4 records", "not used")
    assert _has(lines, "e-mail famille@mail.fr", "other first names (Anne, Paul)",
                "1 other customer carries it")
    # the e-mails that did join, or that nobody else carries, are not refused
    assert not _has(lines, "anne@mail.fr")
    assert not _has(lines, "apart") and not _has(lines, "split")


def test_refused_links_of_the_others(ws: Workspace) -> None:
    paul = _refused(ws, "crm:2")
    assert paul == ["The e-mail famille@mail.fr is also on records with other first names "
                    "(Anne, Paul), like a family's: it only joins records that may be one "
                    "person; 1 other customer carries it."]

    annie = _refused(ws, "crm:8")
    assert _has(annie, f"that crm:8 and crm:3 (customer {customer_of(ws, 'crm:1')}) are not")
    assert not _has(annie, "web:w") and not _has(annie, "placeholder")

    luc, alone = customer_of(ws, "crm:4"), customer_of(ws, "crm:9")
    assert luc != alone
    lines = _refused(ws, "crm:4")
    assert _has(lines, f"crm:9 (customer {alone}) shares details with this customer",
                "a person set it apart: a namesake, checked by phone")
    assert _has(lines, f"records were split off into customer {alone} (crm:9)",
                "a namesake, checked by phone")
    assert _has(lines, "+33145671234 is shared by 4 records")
    assert not _has(lines, "crm:3") and not _has(lines, "famille@mail.fr")

    nine = _refused(ws, "crm:9")
    assert _has(nine, "a person set crm:9 apart from other records: a namesake")
    assert _has(nine, f"this customer was split off from {luc}")
    assert not _has(nine, "shared by")  # crm:9 carries no shop phone


def test_single_record_without_refusals(base: Builder) -> None:
    ws = base(crm="1,Anne,Martin,anne@mail.fr,,1980-01-02,,,,\n")
    ws.identify()
    view = ws.customer(customer_of(ws, "crm:1"), why=True)
    assert view["refused"] == []
    assert view["evidence"] == ["A single record, matched with no other."]


def test_cli_prints_the_refused_links(ws: Workspace) -> None:
    anne = customer_of(ws, "crm:1")
    root = ws.root
    ws.close()
    done = CliRunner().invoke(app, ["customer", anne, "--workspace", str(root), "--why"])
    assert done.exit_code == 0, done.output
    text = done.output.split("Not part of this customer, and why:")
    assert len(text) == 2
    assert "- The e-mail famille@mail.fr is also on records" in text[1]
    assert "crm:3 and crm:8" in text[1] and "crm:3 and crm:8" not in text[0]
