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

    ws.identity.decide(a, b, accept=True)
    ws.identity.decide(c, d, accept=False)
    ws.identify(full=True)
    assert customer_of(ws, a) == customer_of(ws, b)
    assert customer_of(ws, c) != customer_of(ws, d)
    assert ws.store.scalar("SELECT method FROM customer_links WHERE record_key = ?",
                           [a]) == "manual"
    events = ws.store.fetchall("SELECT event FROM identity_events")
    assert ("review_merge",) in events
