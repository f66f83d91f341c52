"""Deterministic stitching and its guards against over-merging."""

from __future__ import annotations

import pytest
from _identify_data import Builder, customer_of, groups

from onetoone.identify import _golden


def test_records_sharing_an_email_or_phone_become_one_customer(base: Builder) -> None:
    ws = base(crm="1,Anne,Martin,anne@mail.fr,0611223344,1980-01-02,,,,\n"
                  "2,Anne,Martin,,06 11 22 33 44,1980-01-02,,,,\n",
              web="a,Anne,Martin,ANNE@mail.fr ,\n")
    result = ws.identify()
    assert result.customers == 1
    assert customer_of(ws, "crm:1") == customer_of(ws, "crm:2") == customer_of(ws, "web:a")
    methods = dict(ws.store.fetchall("SELECT record_key, method FROM customer_links"))
    assert methods["crm:2"] == "deterministic:phone"
    assert methods["web:a"] == "deterministic:email"


def test_shared_family_email_does_not_merge_two_people(base: Builder) -> None:
    ws = base(crm="1,Anne,Martin,famille.martin@mail.fr,,1980-01-02,,,,\n"
                  "2,Paul,Martin,famille.martin@mail.fr,,1978-05-06,,,,\n",
              web="a,Anne,Martin,famille.martin@mail.fr,\n")
    ws.identify()
    assert customer_of(ws, "crm:1") != customer_of(ws, "crm:2")
    # the value still joins the records that agree on the first name
    assert customer_of(ws, "crm:1") == customer_of(ws, "web:a")


def test_garbage_identifiers_are_ignored(base: Builder) -> None:
    ws = base(crm="1,Jean,Dupont,test@test.com,0600000000,1970-01-01,,,,\n"
                  "2,Marie,Durand,test@test.com,0600000000,1990-01-01,,,,\n"
                  "3,Luc,Petit,contact@boutique.fr,,1985-01-01,,,,\n"
                  "4,Eve,Roux,contact@boutique.fr,,1986-01-01,,,,\n"
                  "5,Max,Blanc,x@example.com,,,n/a,,,\n"
                  "6,Léa,Noir,y@example.com,,,n/a,,,\n")
    result = ws.identify()
    assert result.customers == 6
    assert all(len(g) == 1 for g in groups(ws))


def test_unique_per_person_identifier_never_joins_two_numbers(base: Builder) -> None:
    # crm:6 and crm:7 carry different customer numbers; web:a has crm:6's number and crm:7's
    # e-mail: stitching everything would give one customer two customer numbers.
    ws = base(crm="6,Luc,Petit,luc.p@mail.fr,,1985-01-01,N0006,,,\n"
                  "7,Luc,Petit,luc@petit.fr,,1985-01-01,N0007,,,\n",
              web="a,Luc,Petit,luc@petit.fr,N0006\n",
              identify='unique_per_person = ["customer_number"]')
    ws.identify()
    assert customer_of(ws, "crm:6") == customer_of(ws, "web:a")  # the number is stronger
    assert customer_of(ws, "crm:7") != customer_of(ws, "crm:6")


def test_cardinality_cap_refuses_too_many_emails(base: Builder) -> None:
    phone = "0611223344"
    rows = "".join(f"{i},Zoé,Leroy,z{i}@mail.fr,{phone},1990-01-01,,,,\n" for i in range(4))
    ws = base(crm=rows, identify="max_emails_per_customer = 2")
    ws.identify()
    sizes = sorted(len(g) for g in groups(ws))
    assert sizes == [1, 1, 2]  # the shared phone joins only until the cap is reached


def test_a_garbage_email_counts_for_no_cap(base: Builder) -> None:
    # Two real e-mails reach the cap; the third, test@test.com, is no e-mail of hers.
    phone = "0611223344"
    ws = base(crm=f"1,Zoé,Leroy,z1@mail.fr,{phone},1990-01-01,,,,\n"
                  f"2,Zoé,Leroy,z2@mail.fr,{phone},1990-01-01,,,,\n"
                  f"3,Zoé,Leroy,test@test.com,{phone},1990-01-01,,,,\n",
              identify="max_emails_per_customer = 2")
    ws.identify()
    assert [len(g) for g in groups(ws)] == [3]


def test_store_phone_held_by_many_records_is_ignored(base: Builder) -> None:
    rows = "".join(f"{i},P{i},N{i},,0140000001,,,,,\n" for i in range(5))
    ws = base(crm=rows, identify="max_records_per_value = 4")
    assert ws.identify().customers == 5


def test_event_tables_get_the_customer_id(base: Builder) -> None:
    ws = base(crm="1,Anne,Martin,anne@mail.fr,,,,,,\n",
              tx="t1,1,,2024-01-01,10\nt2,,anne@mail.fr,2024-01-02,20\n"
                 "t3,,bob@mail.fr,2024-01-03,5\n")
    ws.identify()
    rows = dict(ws.store.fetchall("SELECT source_id, customer_id FROM transactions"))
    assert rows["t1"] == rows["t2"] == customer_of(ws, "crm:1")
    assert rows["t3"] is not None and rows["t3"] != rows["t1"]


def test_golden_record_follows_survivorship_rules(base: Builder) -> None:
    ws = base(crm="1,Anne,Martin,anne@mail.fr,0611223344,1980-01-02,,75001,Paris,"
                  "2020-01-01\n"
                  "2,Anne,Martin-Roux,anne@mail.fr,0611223355,1980-01-02,,69001,Lyon,"
                  "2024-01-01\n"
                  "3,Anne,Martin,anne@mail.fr,,1980-01-02,,,,2019-01-01\n")
    ws.identify()
    row = ws.store.execute(
        "SELECT first_name, last_name, phone, city, record_count, sources, "
        "field_sources->>'phone' FROM customers").fetchall()
    assert row == [("Anne", "Martin", "+33611223355", "Lyon", 3, ["crm"], "crm:2")]


def test_golden_record_follows_every_rule(base: Builder) -> None:
    ws = base(crm="1,Anne,Martin,anne@mail.fr,0611223344,,,75001,Paris,2024-01-01\n"
                  "2,Anne,Martin,anne@mail.fr,0611223355,1980-01-02,,75001,Lyon,2020-01-01\n",
              web="a,Annabelle,Martin-Roux,anne@mail.fr,\n",
              identify='source_priority = ["web"]\n'
                       'survivorship = { first_name = "source_priority", '
                       'last_name = "longest", postcode = "non_empty", city = "non_empty", '
                       'phone = "most_frequent" }')
    ws.identify()
    row = ws.store.execute(
        "SELECT first_name, last_name, phone, birth_date::VARCHAR, city, "
        "field_sources->>'first_name', field_sources->>'city', field_sources->>'phone' "
        "FROM customers").fetchall()
    # crm:2 is the most complete record (birth date); phones tie, to the most recent
    assert row == [("Annabelle", "Martin-Roux", "+33611223344", "1980-01-02", "Lyon",
                    "web:a", "crm:2", "crm:1")]


@pytest.mark.slow
@pytest.mark.parametrize("identify", [
    "",
    'source_priority = ["web", "crm"]\n'
    'survivorship = { first_name = "source_priority", last_name = "longest", '
    'city = "non_empty", email = "most_frequent", postcode = "source_priority", '
    'birth_date = "longest" }',
])
def test_golden_records_built_in_parts_are_the_same(
        base: Builder, monkeypatch: pytest.MonkeyPatch, identify: str) -> None:
    rows = "".join(f"{i},P{i % 7},N{i % 5},p{i % 9}@mail.fr,,1980-01-0{1 + i % 3},,"
                   f"7500{i % 4},Paris,2020-01-0{1 + i % 9}\n" for i in range(40))
    web = "".join(f"w{i},Q{i % 3},Name{i % 4},p{i % 9}@mail.fr,\n" for i in range(12))
    ws = base(crm=rows, web=web, identify=identify)
    ws.identify()
    query = "SELECT * EXCLUDE (resolved_at) FROM customers ORDER BY customer_id"
    whole = ws.store.fetchall(query)
    monkeypatch.setattr(_golden, "PART_RECORDS", 3)  # 18 parts, 14 with customers
    ws.identify(full=True)
    assert len(whole) > 5 and ws.store.fetchall(query) == whole


def test_one_persons_email_joins_her_records_despite_typos_nicknames_and_swaps(
        base: Builder) -> None:
    ws = base(crm="1,Frédéric,Thomas,fthomas@mail.fr,,1982-12-21,,,,\n"
                  "2,Frééric,Thomas,fthomas@mail.fr,,1982-12-21,,,,\n"
                  "3,Thomas,Frederic,fthomas@mail.fr,,,,,,\n",
              web="a,Fred,Thomas,fthomas@mail.fr,\n")
    ws.identify()
    assert len({customer_of(ws, k) for k in ("crm:1", "crm:2", "crm:3", "web:a")}) == 1


def test_family_email_keeps_jean_and_jeanne_apart(base: Builder) -> None:
    ws = base(crm="1,Jean,Lefèvre,lefevre@mail.fr,,1950-01-02,,,,\n"
                  "2,Jeanne,Lefèvre,lefevre@mail.fr,,,,,,\n"
                  "3,Jean,Lefèvre,lefevre@mail.fr,,1980-03-04,,,,\n")
    ws.identify()
    # a feminine form is another person; one name with two birth dates is father and son
    assert len({customer_of(ws, k) for k in ("crm:1", "crm:2", "crm:3")}) == 3


def test_a_personal_number_joins_whatever_the_names(base: Builder) -> None:
    ws = base(crm="1,Amelia,Ryan,,,1923-03-01,N0001,,,\n",
              web="a,Edward,Ryan,,N0001\n")
    ws.identify()  # customer_number is not a household type: a name differing is a typo
    assert customer_of(ws, "crm:1") == customer_of(ws, "web:a")
