"""What counts as one person's names and birth dates, and what lifts a probabilistic veto."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from _identify_data import Builder, customer_of

from onetoone.identify._components import (
    BIRTH_DAYS,
    GuardedUnionFind,
    birth_dates,
    same_birth,
)
from onetoone.identify._edges import births_compatible, names_compatible
from onetoone.store import Store


def _names(a: tuple[str, str], b: tuple[str, str]) -> bool:
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE _nick (nick VARCHAR, name VARCHAR)")
    fa, fb, la, lb = (f"'{v}'" for v in (a[0], b[0], a[1], b[1]))
    sql = names_compatible(fa, fb, la, lb)
    return bool(con.execute(f"SELECT {sql}").fetchall()[0][0])


def _births(a: str, b: str, days: int = 0) -> bool:
    sql = births_compatible(f"DATE '{a}'", f"DATE '{b}'", days)
    return bool(duckdb.connect().execute(f"SELECT {sql}").fetchall()[0][0])


@pytest.mark.parametrize(("a", "b", "same"), [
    (("chloe", "ryan"), ("ryna", "chloe"), True),        # swapped, one typo
    (("gabrielle", "langer"), ("laznger", "gabrielle"), True),
    (("chloe", "ryan"), ("ryan", "chloe"), True),        # swapped
    (("chloe", "ryan"), ("ryna", "chleo"), False),       # swapped, two typos
    (("jean", "martin"), ("jeanne", "martin"), False),   # feminine form
    (("marie", "martin"), ("paul", "martin"), False),
])
def test_first_names_of_one_person(a: tuple[str, str], b: tuple[str, str], same: bool) -> None:
    assert _names(a, b) is same


@pytest.mark.parametrize(("a", "b", "typo", "year"), [
    ("1933-01-22", "1933-02-12", True, True),   # digits transposed across the separator
    ("1957-10-24", "1957-12-04", True, True),
    ("1980-03-07", "1980-07-03", True, True),   # day and month swapped
    ("1980-03-07", "1980-03-08", True, True),   # one typo
    ("1980-03-07", "1950-03-07", True, True),   # one typo in the year
    ("1991-04-05", "1991-05-06", False, True),  # within a year
    ("1987-05-25", "1988-05-24", False, True),
    ("1980-03-07", "1983-07-03", False, False),
    ("2022-02-02", "2012-01-06", False, False),
    ("1942-10-30", "1911-11-01", False, False),  # another person
])
def test_birth_dates_of_one_person(a: str, b: str, typo: bool, year: bool) -> None:
    assert _births(a, b) is typo
    assert _births(a, b, BIRTH_DAYS) is year
    assert same_birth(a, b) is year  # the cap counts birth dates as shared values group them


def test_birth_dates_a_year_apart_veto_unless_a_contact_agrees() -> None:
    from onetoone.config import IdentifySettings

    pytest.importorskip("splink")
    from onetoone.identify._vetoes import veto_sql

    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE _nick (nick VARCHAR, name VARCHAR)")
    con.execute("CREATE TEMP TABLE a AS SELECT 'sylvie' AS fn, 'bernard' AS ln, "
                "DATE '1997-02-17' AS bd")
    con.execute("CREATE TEMP TABLE b AS SELECT 'sylvie' AS fn, 'bernard' AS ln, "
                "DATE '1997-03-02' AS bd")
    settings = IdentifySettings()
    for contact, vetoed in (("false", True), ("true", False)):
        sql = veto_sql(settings, contact=contact)
        assert con.execute(f"SELECT {sql} FROM a, b").fetchall()[0][0] is vetoed


@pytest.mark.parametrize(("a", "b", "home", "vetoed"), [
    (("jacqueline", "ferris", "1925-07-08"), ("jacqueline", "ferris", "1925-10-30"), True,
     False),  # one name at one home, months apart: not a parent and a child
    (("keaton", "webb", "1994-07-24"), ("keaton", "webb", "1985-03-28"), True, False),
    (("keaton", "webb", "1994-07-24"), ("keaton", "webb", "1985-03-28"), False, True),
    (("damien", "garnett", "1948-01-29"), ("damien", "garnett", "1990-07-10"), True,
     True),  # 42 years apart: may be a father and his son
    (("amelia", "ryan", "1990-03-01"), ("edward", "ryan", "1995-03-01"), True, True),
])
def test_one_name_at_one_home_is_one_person_unless_a_generation_apart(
        a: tuple[str, str, str], b: tuple[str, str, str], home: bool, vetoed: bool) -> None:
    from onetoone.config import IdentifySettings

    pytest.importorskip("splink")
    from onetoone.identify._vetoes import veto_sql

    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE _nick (nick VARCHAR, name VARCHAR)")
    for name, (fn, ln, bd) in (("a", a), ("b", b)):
        con.execute(f"CREATE TEMP TABLE {name} AS SELECT '{fn}' AS fn, '{ln}' AS ln, "
                    f"DATE '{bd}' AS bd")
    sql = veto_sql(IdentifySettings(), home=str(home).lower())
    assert con.execute(f"SELECT {sql} FROM a, b").fetchall()[0][0] is vetoed


@pytest.mark.parametrize(("a", "b", "vetoed"), [
    (("james", "coleman", "1935-08-03"), ("howie", "james", "1935-08-03"),
     False),  # FEBRL4 rec-3457: the first name written as the surname
    (("robert", "michel", None), ("hugo", "robert", None),
     True),  # a relative's record with the names swapped (Michel Robert), no birth dates
    (("robert", "michel", "1961-04-02"), ("hugo", "robert", "1990-11-17"), True),
    (("paul", "thomas", "1970-01-01"), ("thomas", "thomas", "1970-01-01"),
     True),  # one surname: a household
])
def test_a_first_name_written_as_the_surname_is_not_another_first_name(
        a: tuple[str, str, str | None], b: tuple[str, str, str | None], vetoed: bool) -> None:
    from onetoone.config import IdentifySettings

    pytest.importorskip("splink")
    from onetoone.identify._vetoes import veto_sql

    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE _nick (nick VARCHAR, name VARCHAR)")
    for name, (fn, ln, bd) in (("a", a), ("b", b)):
        con.execute(f"CREATE TEMP TABLE {name} AS SELECT ? AS fn, ? AS ln, ?::DATE AS bd",
                    [fn, ln, bd])
    sql = veto_sql(IdentifySettings())
    assert con.execute(f"SELECT {sql} FROM a, b").fetchall()[0][0] is vetoed


def test_home_agreement_needs_the_address_and_the_postcode_or_city() -> None:
    pytest.importorskip("splink")
    from onetoone.identify._vetoes import home_agreement

    pairs = pd.DataFrame({"gamma_address": [3, 2, 1, 3, 3, -1],
                          "gamma_postcode": [2, 0, 2, 0, -1, 2],
                          "gamma_city": [0, 1, 2, 0, -1, 2]})
    assert home_agreement(pairs).tolist() == [True, True, False, False, False, False]
    assert not home_agreement(pd.DataFrame({"gamma_city": [2]})).any()


def test_personal_agreement_needs_a_close_value_of_a_personal_key() -> None:
    pytest.importorskip("splink")
    from onetoone.identify._vetoes import personal_agreement

    pairs = pd.DataFrame({
        "gamma_x_soc_sec_id": [2, 1, 0, -1, 1],
        "x_soc_sec_id_l": ["2493383", "4817613", "2349971", None, "12"],
        "x_soc_sec_id_r": ["2493383", "4816613", "8853061", "1", "13"],
        "gamma_x_street_number": [2, 2, 2, 2, 2],
    })
    assert personal_agreement(pairs, ["soc_sec_id"]).tolist() == [True, True, False, False,
                                                                   False]
    assert not personal_agreement(pairs, []).any()


def test_personal_keys_are_identifiers_outside_household_types(base: Builder) -> None:
    pytest.importorskip("splink")
    from onetoone.identify._vetoes import personal_keys

    ws = base(crm="1,Anne,Martin,anne@mail.fr,,1980-01-02,N0001,,,\n",
              identify='compare = ["customer_number", "email", "street_number"]')
    assert personal_keys(ws.store, ws.config.identify) == ["customer_number"]


def test_birth_date_typos_are_one_birth_date_for_the_cap() -> None:
    assert birth_dates({"1980-03-07", "1980-07-03", "1980-03-08", "1980-03-17"}) == 1
    assert birth_dates({"1980-03-07", "1955-01-01", "1990-05-05"}) == 3
    uf = GuardedUnionFind({"bd": 2})
    for item, day in enumerate(["1980-03-07", "1980-07-03", "1980-03-08", "1955-01-01",
                                "1990-05-05"]):
        uf.add(item, {"bd": {day}})
    assert all(uf.union(0, other) for other in (1, 2, 3))  # one person's typos, then a second
    assert not uf.union(0, 4)  # a third person's birth date


def test_one_persons_number_gathers_her_birth_date_typos(base: Builder) -> None:
    ws = base(crm="1,Anne,Martin,,,1980-03-07,N0001,,,\n"
                  "2,Anne,Martin,,,1980-07-03,N0001,,,\n"
                  "3,Anne,Martin,,,1980-03-08,N0001,,,\n"
                  "4,Anne,Martin,,,1980-03-17,N0001,,,\n")
    ws.identify()
    assert len({customer_of(ws, f"crm:{i}") for i in range(1, 5)}) == 1


def test_a_number_shared_by_three_people_is_still_capped(base: Builder) -> None:
    ws = base(crm="1,Anne,Martin,,,1980-03-07,N0001,,,\n"
                  "2,Paul,Martin,,,1955-01-01,N0001,,,\n"
                  "3,Lea,Martin,,,2010-05-05,N0001,,,\n")
    ws.identify()  # three birth dates decades apart: never one customer
    assert len({customer_of(ws, f"crm:{i}") for i in range(1, 4)}) == 2


def _home_pairs(rows: list[tuple[str, str, str | None, str, str, str | None]]) -> Store:
    """``_rec`` and ``_scored`` for pairs at one home: (fn_a, ln_a, bd_a, fn_b, ln_b, bd_b)."""
    store = Store(":memory:")
    recs, scored = [], []
    for i, (fa, la, ba, fb, lb, bb) in enumerate(rows):
        recs += [(f"{i}a", fa, la, ba), (f"{i}b", fb, lb, bb)]
        scored.append((f"{i}a", f"{i}b", True))
    store.register("_rec0", pd.DataFrame(recs, columns=["record_key", "fn", "ln", "bd"]))
    store.execute("CREATE TABLE _rec AS SELECT record_key, fn, ln, bd::DATE AS bd FROM _rec0")
    store.register("_scored", pd.DataFrame(scored, columns=["unique_id_l", "unique_id_r",
                                                            "home"]))
    return store


def test_home_odds_count_relatives_among_pairs_at_one_home() -> None:
    pytest.importorskip("splink")
    from onetoone.identify._vetoes import home_odds

    one = ("anne", "roy", "1980-03-07", "anne", "roy", "1980-03-07")
    typo = ("anne", "roy", "1980-03-07", "paul", "roy", "1980-03-07")  # one field differs
    relatives = ("anne", "roy", "1980-03-07", "paul", "roy", "1955-01-01")
    unknown = ("anne", "roy", None, "paul", "roy", "1955-01-01")  # not counted
    assert home_odds(_home_pairs([one] * 8 + [typo] * 2 + [unknown] * 5)) == 10.0
    assert home_odds(_home_pairs([one] * 8 + [relatives] * 3)) == 2.0  # (11 - 3) / (3 + 1)
    assert home_odds(_home_pairs([relatives] * 4)) == 0.0


def test_person_weight_counts_a_shared_surname_for_nothing() -> None:
    pytest.importorskip("splink")
    from onetoone.identify._vetoes import person_weight, relatives_levels

    pairs = pd.DataFrame({"gamma_first_name_surname": [2, 6, 2],
                          "mw_first_name_surname": [5.0, 12.0, -3.0],
                          "mw_tf_adj_first_name_surname": [1.0, 2.0, 0.0],
                          "mw_birth_date": [8.0, -4.0, 8.0],
                          "mw_address": [10.0, 10.0, 10.0]})  # a household field: never
    labels = {"first_name_surname": {6: "Exact match on name_concat",
                                     2: "Exact match on surname"}}
    assert relatives_levels(labels)["first_name_surname"] == {2}
    assert person_weight(pairs).tolist() == [14.0, 10.0, 5.0]
    assert person_weight(pairs, relatives_levels(labels)).tolist() == [8.0, 10.0, 5.0]


@pytest.mark.parametrize(("fa", "fb", "weight", "odds", "lifted"), [
    ("amelia", "edward", 2.0, 12.0, True),   # 2 + 3.58 bits >= 4.25 (0.95)
    ("amelia", "edward", 0.5, 12.0, False),
    ("amelia", "edward", 2.0, 0.15, False),  # a base of households
    ("jean", "jeanne", 9.8, 12.0, False),    # a couple, not a typo
])
def test_a_veto_at_one_home_is_lifted_by_the_bases_odds(fa: str, fb: str, weight: float,
                                                         odds: float, lifted: bool) -> None:
    from onetoone.config import IdentifySettings

    pytest.importorskip("splink")
    from onetoone.identify._vetoes import home_lift_sql

    con = duckdb.connect()
    con.execute(f"CREATE TABLE a AS SELECT '{fa}' AS fn; CREATE TABLE b AS SELECT '{fb}' AS fn;"
                f"CREATE TABLE s AS SELECT true AS home, {weight} AS home_weight")
    sql = home_lift_sql(IdentifySettings(), odds)
    assert con.execute(f"SELECT {sql} FROM a, b, s").fetchall()[0][0] is lifted
    assert home_lift_sql(IdentifySettings(probabilistic_vetoes=False), odds) == "false"


def test_one_first_name_at_one_address_is_a_candidate_pair() -> None:
    """FEBRL4 rec-4120: surname mistyped, postcode transposed, no birth date; only the first
    name, the city and the street address agree."""
    pytest.importorskip("splink")
    from onetoone.identify._blocking import block_keys

    frame = pd.DataFrame({
        "unique_id": ["a", "b", "c"], "first_name": ["casey", "casey", "casey"],
        "surname": ["flatman", "flatan", "flatman"], "birth_date": ["1993-10-02", None, None],
        "postcode": ["7250", "7205", "2000"], "city": ["mentone", "mentone", "sydney"],
        "address": ["wyselaskie circuit", "wyselaskie circuit", "george street"]})
    columns = ["first_name", "surname", "birth_date", "postcode", "city", "address"]
    keys, names = block_keys(frame, columns, 50)
    rows = {k: {n: (None if pd.isna(v) else v) for n, v in row.items()}
            for k, row in keys.set_index("unique_id")[names].iterrows()}
    shared = [n for n in names if rows["a"][n] is not None and rows["a"][n] == rows["b"][n]]
    assert shared and all(rows["c"][n] != rows["a"][n] for n in shared)
