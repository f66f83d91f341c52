"""Probabilistic matching: the review band and decisions remembered across runs."""

from __future__ import annotations

import random

import pytest
from _identify_data import Builder, customer_of

pytest.importorskip("splink")

FIRST = ["anne", "paul", "marie", "luc", "eve", "jean", "zoe", "hugo", "lea", "noah",
         "emma", "louis", "jade", "gabriel", "chloe", "arthur", "lina", "jules", "mia", "adam"]
LAST = ["martin", "bernard", "dubois", "thomas", "robert", "richard", "petit", "durand",
        "leroy", "moreau", "simon", "laurent", "lefebvre", "michel", "garcia", "david"]
CITIES = ["paris", "lyon", "lille", "nantes", "rennes", "nice", "metz", "brest"]


def _people(n: int) -> str:
    rng = random.Random(7)
    rows = []
    for i in range(n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        dob = f"19{rng.randint(40, 99)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        city = rng.choice(CITIES)
        rows.append(f"{i},{first},{last},,,{dob},,,{city},\n")
        if i % 4 == 0:  # a duplicate with a typo in the last name
            rows.append(f"{i}d,{first},{last[:-1] + 'x'},,,{dob},,,{city},\n")
    return "".join(rows)


@pytest.mark.slow
def test_review_band_and_remembered_decisions(base: Builder) -> None:
    ws = base(crm=_people(80), identify="probabilistic = true\nmatch_threshold = 0.9999\n"
              "review_threshold = 0.5")
    ws.identify()
    pending = ws.store.fetchall("SELECT record_key_l, record_key_r FROM identity_review "
                                "WHERE status = 'pending' ORDER BY match_probability DESC")
    assert len(pending) >= 2
    (a, b), (c, d) = pending[0], pending[1]
    assert customer_of(ws, a) != customer_of(ws, b)

    ws.identity.review(a, b, accept=True)
    ws.identity.review(c, d, accept=False)
    ws.identify(full=True)
    assert customer_of(ws, a) == customer_of(ws, b)
    assert customer_of(ws, c) != customer_of(ws, d)
    assert ws.store.scalar("SELECT method FROM customer_links WHERE record_key = ?",
                           [a]) == "manual"
    events = ws.store.fetchall("SELECT event FROM identity_events")
    assert ("review_merge",) in events


def test_a_failing_model_leaves_deterministic_links_and_a_note(
        base: Builder, monkeypatch: pytest.MonkeyPatch) -> None:
    from onetoone.identify import _probabilistic

    def broken(*_args: object, **_kwargs: object) -> None:
        raise ValueError("m_probability value 0.0 is below the minimum allowed value")

    monkeypatch.setattr(_probabilistic, "match_pairs", broken)
    ws = base(crm="1,Anne,Martin,anne@mail.fr,,1980-01-02,,,,\n"
                  "2,Anne,Martin,anne@mail.fr,,1980-01-02,,,,\n",
              identify="probabilistic = true")
    result = ws.identify()
    assert customer_of(ws, "crm:1") == customer_of(ws, "crm:2")
    assert any("Probabilistic matching failed" in note for note in result.notes)


@pytest.mark.slow
def test_expectation_maximisation_that_degenerates_does_not_fail(base: Builder) -> None:
    # Every duplicate agrees on everything: EM meets levels that no pair reaches (m = 0),
    # which Splink 5 refuses; the run must train around it and still link the duplicates.
    rows = "".join(f"{i},{FIRST[i % 20]},{LAST[i % 16]},,,19{50 + i % 40}-0{1 + i % 9}-1{i % 9},"
                   f",,{CITIES[i % 8]},\n{i}d,{FIRST[i % 20]},{LAST[i % 16]},,,19{50 + i % 40}-"
                   f"0{1 + i % 9}-1{i % 9},,,{CITIES[i % 8]},\n" for i in range(60))
    ws = base(crm=rows, identify="probabilistic = true")
    result = ws.identify()
    assert not any("failed" in note for note in result.notes), result.notes
    assert customer_of(ws, "crm:7") == customer_of(ws, "crm:7d")


def test_a_level_no_random_pair_reaches_counts_for_a_match() -> None:
    # A user name equal but for dots is never met by chance: its u is at most one in the pairs
    # sampled, not Splink's generic default (which made the level count against a match).
    import pandas as pd

    from onetoone.config import IdentifySettings
    from onetoone.identify._splink_compat import comparisons
    from onetoone.identify._training import make_linker

    rng = random.Random(3)
    rows = [{"unique_id": str(i), "first_name": rng.choice(FIRST), "surname": rng.choice(LAST),
             "email": f"user{i}@mail.fr"} for i in range(200)]
    rows.append({"unique_id": "x", "first_name": "anne", "surname": "martin",
                 "email": "anne.martin@mail.fr"})
    rows.append({"unique_id": "y", "first_name": "anne", "surname": "martin",
                 "email": "annemartin@mail.fr"})
    frame = pd.DataFrame(rows)
    frame["name_concat"] = frame["first_name"] + " " + frame["surname"]
    linker = make_linker(frame, IdentifySettings(max_pairs_for_u=1e4), None, [])
    email = next(c for c in comparisons(linker) if c.output_column_name == "email")
    dots = next(lv for lv in email.comparison_levels if "dots" in lv.label_for_charts)
    assert dots.u_probability <= 1e-4
    assert dots.m_probability > dots.u_probability


@pytest.mark.slow
def test_a_postcode_that_changed_is_not_a_veto() -> None:
    # Nobody moves in these records, so expectation-maximisation puts m(postcode disagrees)
    # at the floor; people do move, so it keeps at least address_change_share.
    import pandas as pd

    from onetoone.config import IdentifySettings
    from onetoone.identify._splink_compat import comparisons, is_else_level
    from onetoone.identify._training import make_linker

    rng = random.Random(5)
    rows = []
    for i in range(150):
        person = {"first_name": rng.choice(FIRST), "surname": rng.choice(LAST),
                  "birth_date": f"19{rng.randint(40, 99)}-0{rng.randint(1, 9)}-1{i % 9}",
                  "postcode": f"{rng.randint(10, 95)}000"}
        rows.append({"unique_id": str(i), **person})
        if i % 3 == 0:
            rows.append({"unique_id": f"{i}d", **person})
    frame = pd.DataFrame(rows)
    frame["name_concat"] = frame["first_name"] + " " + frame["surname"]

    def postcode_m(share: float) -> tuple[float, float]:
        linker = make_linker(frame, IdentifySettings(max_pairs_for_u=1e4,
                                                     address_change_share=share), None, [])
        levels = next(c for c in comparisons(linker)
                      if c.output_column_name == "postcode").comparison_levels
        m = [lv.m_probability for lv in levels if not lv.is_null_level]
        return next(lv.m_probability for lv in levels if is_else_level(lv)), sum(m)

    assert postcode_m(0.0)[0] < 0.01
    m_else, total = postcode_m(0.05)
    assert m_else >= 0.05 and abs(total - 1) < 1e-5
