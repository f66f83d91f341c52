"""The comparisons rewritten for speed give Splink's own agreement levels, pair for pair."""

from __future__ import annotations

import random

import duckdb
import pandas as pd
import pytest

pytest.importorskip("splink")

from onetoone.identify._comparisons import (
    birth_date_comparison,
    derived_columns_sql,
    email_comparison,
    one_typo_comparison,
    within_one_edit,
)


def _edit(rng: random.Random, text: str, alphabet: str) -> str:
    chars = list(text)
    kind = rng.choice(["substitute", "insert", "delete", "transpose", "same", "two"])
    if kind == "substitute" and chars:
        chars[rng.randrange(len(chars))] = rng.choice(alphabet)
    elif kind == "insert":
        chars.insert(rng.randrange(len(chars) + 1), rng.choice(alphabet))
    elif kind == "delete" and chars:
        chars.pop(rng.randrange(len(chars)))
    elif kind == "transpose" and len(chars) > 1:
        i = rng.randrange(len(chars) - 1)
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
    elif kind == "two":
        for _ in range(2):
            if chars:
                chars[rng.randrange(len(chars))] = rng.choice(alphabet)
    return "".join(chars)


def _case(comparison: object, columns: list[str]) -> str:
    """The SQL CASE of ``comparison`` as a linker on ``columns`` runs it."""
    from splink import DuckDBAPI, Linker, SettingsCreator

    frame = pd.DataFrame({"unique_id": ["1", "2"], **{c: [None, None] for c in columns}})
    linker = Linker(DuckDBAPI(duckdb.connect()).register(frame),
                    SettingsCreator(link_type="dedupe_only", comparisons=[comparison]))
    sql = linker._settings_obj.comparisons[0]._case_statement
    return str(sql[: sql.rfind(" as ")])


def test_within_one_edit_is_damerau_levenshtein_at_most_one() -> None:
    rng = random.Random(7)
    left = ["".join(rng.choice("ab0") for _ in range(rng.randrange(0, 10)))
            for _ in range(20_000)]
    frame = pd.DataFrame({"a": left, "b": [_edit(rng, s, "ab0") for s in left]})
    con = duckdb.connect()
    con.register("t", frame)
    differ, close = con.execute(
        f"SELECT count(*) FILTER (WHERE (damerau_levenshtein(a, b) <= 1) <> "
        f"{within_one_edit('a', 'b')}), count(*) FILTER (WHERE damerau_levenshtein(a, b) "
        f"<= 1 AND a <> b) FROM t").fetchall()[0]
    assert close > 5_000  # the sample holds many one-edit pairs, not only equal or far ones
    assert differ == 0


def test_phone_levels_are_splinks() -> None:
    import splink.comparison_library as cl

    rng = random.Random(3)
    left = ["+336" + "".join(rng.choice("0123") for _ in range(8)) for _ in range(5_000)]
    frame = pd.DataFrame({"phone_l": [*left, None], "phone_r": [
        _edit(rng, s, "0123") for s in left] + ["+33600000000"]})
    con = duckdb.connect()
    con.register("t", frame)
    ours, theirs = (_case(one_typo_comparison("phone"), ["phone"]),
                    _case(cl.DamerauLevenshteinAtThresholds("phone", [1]), ["phone"]))
    assert con.execute(f"SELECT count(*) FILTER (WHERE ({ours}) <> ({theirs})), "
                       f"count(DISTINCT ({ours})) FROM t").fetchall()[0] == (0, 4)


def test_birth_date_levels_are_splinks() -> None:
    import splink.comparison_library as cl

    rng = random.Random(5)
    days = pd.to_datetime("1930-01-01") + pd.to_timedelta(
        [rng.randrange(0, 30_000) for _ in range(5_000)], unit="D")
    other = days + pd.to_timedelta(
        [rng.choice([0, 1, 9, 30, 31, 300, 365, 366, 3652, 3653, 9000]) *
         rng.choice([-1, 1]) for _ in range(5_000)], unit="D")
    frame = pd.DataFrame({"birth_date_l": days.strftime("%Y-%m-%d"),
                          "birth_date_r": other.strftime("%Y-%m-%d")})
    frame.loc[0, "birth_date_l"] = None
    for side in ("l", "r"):
        frame[f"birth_day_{side}"] = (pd.to_datetime(frame[f"birth_date_{side}"])
                                      - pd.Timestamp("1970-01-01")).dt.days.astype("Int64")
    con = duckdb.connect()
    con.register("t", frame)
    ours = _case(birth_date_comparison(), ["birth_date", "birth_day"])
    theirs = _case(cl.DateOfBirthComparison("birth_date", input_is_string=True),
                   ["birth_date"])
    differ, levels = con.execute(f"SELECT count(*) FILTER (WHERE ({ours}) <> ({theirs})), "
                                 f"count(DISTINCT ({ours})) FROM t").fetchall()[0]
    assert levels == 7  # every level is reached, the null one included
    assert differ == 0


def test_email_levels_read_each_records_parts_as_the_email_split_per_pair() -> None:
    rng = random.Random(11)
    users = ["marie.martin", "mariemartin", "jdupont75", "j.dupont75", "x", "a.b.c1"]
    domains = ["gmail.com", "gmial.com", "orange.fr", "orange.com", "free.fr", ""]

    def email() -> str | None:
        kind = rng.random()
        if kind < 0.05:
            return None
        if kind < 0.1:
            return rng.choice(users)  # no @
        return f"{rng.choice(users)}@{rng.choice(domains)}" + ("@x" if kind > 0.97 else "")

    con = duckdb.connect()
    derived = ", ".join(derived_columns_sql(["email"], []))
    sides = []
    for side in ("l", "r"):
        con.register("t", pd.DataFrame({"email": [email() for _ in range(6_000)]}))
        sides.append(con.execute(f"SELECT *, {derived} FROM t").df().add_suffix(f"_{side}"))
    con.register("p", pd.concat(sides, axis=1))
    user_l, user_r = "split_part(email_l, '@', 1)", "split_part(email_r, '@', 1)"
    typo = ("damerau_levenshtein(split_part(email_l, '@', 2), "
            "split_part(email_r, '@', 2)) <= 2")
    split_per_pair = f"""CASE WHEN email_l IS NULL OR email_r IS NULL THEN -1
        WHEN email_l = email_r THEN 4
        WHEN {user_l} = {user_r} AND {typo} THEN 3
        WHEN replace({user_l}, '.', '') = replace({user_r}, '.', '') AND {typo} THEN 2
        WHEN {user_l} = {user_r} AND regexp_matches({user_l}, '[0-9]') THEN 1
        ELSE 0 END"""
    ours = _case(email_comparison(), ["email", "email_user", "email_bare", "email_domain"])
    differ, levels = con.execute(
        f"SELECT count(*) FILTER (WHERE ({ours}) <> ({split_per_pair})), "
        f"count(DISTINCT ({ours})) FROM p").fetchall()[0]
    assert levels == 6  # every level is reached, the null one included
    assert differ == 0
