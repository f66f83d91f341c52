"""Candidate pairs: made once per pair, exactly those of one rule per blocking key."""

from __future__ import annotations

import random

import duckdb
import pytest

pytest.importorskip("splink")

COLUMNS = ["first_name", "surname", "birth_date", "postcode", "city", "address", "email"]


def _records(n: int) -> list[tuple[object, ...]]:
    # Few names, postcodes and cities: many blocks exceed the cap, so the three-field keys
    # are the ones that pair the records of common names.
    rng = random.Random(11)
    rows = []
    for i in range(n):
        first, last = rng.choice(["anne", "paul", "marie", "luc", "eve"]), \
            rng.choice(["martin", "durand", "petit", "robert"])
        if rng.random() < 0.05:
            first, last = last, first  # names swapped
        rows.append((i, None if rng.random() < 0.1 else first, last,
                     f"19{rng.randint(50, 59)}-0{rng.randint(1, 3)}-1{rng.randint(0, 2)}",
                     rng.choice(["75001", "69002", None]), rng.choice(["paris", "lyon"]),
                     rng.choice(["1 rue a", "2 rue b", None]),
                     None if rng.random() < 0.7 else f"p{rng.randint(0, 40)}@mail.fr",
                     rng.randint(0, 150)))
    return rows


@pytest.mark.parametrize("new", [False, True])
def test_each_pair_once_and_no_pair_lost_or_added(new: bool) -> None:
    from onetoone.identify._blocking import (
        block_key_sql,
        candidate_pairs_sql,
        coarser_keys,
        kept_keys_sql,
    )

    con = duckdb.connect()
    con.execute("CREATE TABLE r (unique_id BIGINT, first_name VARCHAR, surname VARCHAR, "
                "birth_date VARCHAR, postcode VARCHAR, city VARCHAR, address VARCHAR, "
                "email VARCHAR, grp BIGINT)")
    con.executemany("INSERT INTO r VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", _records(600))
    names, hashed, _ = block_key_sql(COLUMNS)
    con.execute(f"CREATE TABLE raw AS SELECT unique_id, grp, {hashed} FROM r")
    con.execute(f"CREATE TABLE k AS SELECT unique_id, grp, unique_id % 7 = 3 AS is_new, "
                f"{kept_keys_sql(names, 'raw', 8)} FROM raw")
    assert con.execute("SELECT count(*) FROM raw WHERE b_0 IS NOT NULL").fetchall()[0][0] > \
        con.execute("SELECT count(*) FROM k WHERE b_0 IS NOT NULL").fetchall()[0][0] > 0
    rules = " UNION ".join(  # the pairs of one rule per key, as Splink's blocking makes them
        f"SELECT l.unique_id AS a, r.unique_id AS b FROM k l JOIN k r ON l.{n} = r.{n} "
        "AND l.unique_id < r.unique_id AND l.grp <> r.grp"
        + (" AND (l.is_new OR r.is_new)" if new else "") for n in names)
    expected = set(con.execute(rules).fetchall())
    made = con.execute(candidate_pairs_sql(names, "k", groups=True, new=new,
                                           coarser=coarser_keys(COLUMNS))).fetchall()
    assert len(made) == len({(a, b) for _, a, b in made})  # each pair once
    assert {(a, b) for _, a, b in made} == expected
    assert len(expected) > (300 if new else 1000)


def test_a_key_refines_the_keys_whose_fields_it_holds() -> None:
    from onetoone.identify._blocking import block_key_sql, coarser_keys

    names = block_key_sql(COLUMNS)[0]
    coarser = coarser_keys(COLUMNS)
    swapped = names[-1]
    assert coarser["b_0"] == [swapped]  # first name + surname agree: the sorted names do
    assert set(coarser["b_10"]) == {"b_0", "b_4", swapped}  # + postcode (no phone key)
    assert swapped not in coarser  # a swap agrees on neither name
