"""What counts as one person's names and birth dates, and what lifts a probabilistic veto."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from _identify_data import Builder

from onetoone.identify._edges import births_compatible, names_compatible


def _names(a: tuple[str, str], b: tuple[str, str]) -> bool:
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE _nick (nick VARCHAR, name VARCHAR)")
    fa, fb, la, lb = (f"'{v}'" for v in (a[0], b[0], a[1], b[1]))
    sql = names_compatible(fa, fb, la, lb)
    return bool(con.execute(f"SELECT {sql}").fetchall()[0][0])


def _births(a: str, b: str) -> bool:
    sql = births_compatible(f"DATE '{a}'", f"DATE '{b}'")
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


@pytest.mark.parametrize(("a", "b", "same"), [
    ("1933-01-22", "1933-02-12", True),   # digits transposed across the separator
    ("1957-10-24", "1957-12-04", True),
    ("1980-03-07", "1980-07-03", True),   # day and month swapped
    ("1980-03-07", "1980-03-08", True),   # one typo
    ("1980-03-07", "1950-03-07", True),   # one typo in the year
    ("1980-03-07", "1983-07-03", False),
    ("1942-10-30", "1911-11-01", False),  # another person
])
def test_birth_dates_of_one_person(a: str, b: str, same: bool) -> None:
    assert _births(a, b) is same


def test_personal_agreement_needs_a_close_value_of_a_personal_key() -> None:
    pytest.importorskip("splink")
    from onetoone.identify._probabilistic import personal_agreement

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
    from onetoone.identify._probabilistic import personal_keys

    ws = base(crm="1,Anne,Martin,anne@mail.fr,,1980-01-02,N0001,,,\n",
              identify='compare = ["customer_number", "email", "street_number"]')
    assert personal_keys(ws.store, ws.config.identify) == ["customer_number"]
