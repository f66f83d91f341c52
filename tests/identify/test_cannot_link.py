"""Pairwise vetoes hold for the customer: a probabilistic pair never joins two people's records
through a third record that agrees with both (cannot-link constraints)."""

from __future__ import annotations

import numpy as np
import pytest
from _identify_data import Builder, customer_of

from onetoone.identify._components import GuardedUnionFind, guarded_components
from onetoone.store import Store


def _uf() -> GuardedUnionFind:
    """Records 0 and 2: two birth dates decades apart; 1: a web account without one."""
    uf = GuardedUnionFind({"bd": 2}, {"bd": {(0, 2)}})
    uf.add(0, {"bd": {"1974-07-11"}}, {"bd"})
    uf.add(1)
    uf.add(2, {"bd": {"1981-03-02"}}, {"bd"})
    return uf


def test_a_probabilistic_union_may_not_bring_in_another_person() -> None:
    uf = _uf()
    assert uf.union(0, 1, soft=True)
    assert not uf.union(1, 2, soft=True)  # 0 and 2 would meet through 1
    assert uf.find(2) != uf.find(0)
    assert uf.union(1, 2)  # a deterministic edge: only the caps (2 birth dates) apply
    assert uf.find(2) == uf.find(0)


def test_a_forced_union_ignores_cannot_links() -> None:
    uf = _uf()
    assert uf.union(0, 1, soft=True)
    assert uf.union(1, 2, soft=True, force=True)


def test_a_record_that_agrees_with_one_side_joins_it() -> None:
    # 0 and 1 are one customer (a deterministic join) though their birth dates differ; 2
    # agrees with 1: it brings nobody new, whatever its pair with 0.
    uf = GuardedUnionFind({}, {"bd": {(0, 1), (0, 2)}})
    for item in range(3):
        uf.add(item, known={"bd"})
    assert uf.union(0, 1)
    assert uf.union(2, 0, soft=True)
    # a fourth record apart from all three is another person
    uf.cannot["bd"] |= {(0, 3), (1, 3), (2, 3)}
    uf.add(3, known={"bd"})
    assert not uf.union(3, 0, soft=True)


def test_strongest_probabilistic_edge_wins() -> None:
    # nodes 10 and 11 are two pairs of the web account 1: with 0 (first) and with 2
    for first, second, kept in ((0, 2, 0), (2, 0, 2)):
        roots = guarded_components(
            np.array([0, 1, 2]),
            [(1, 10, False, True), (first, 10, False, True),
             (1, 11, False, True), (second, 11, False, True)],
            {}, {}, {"bd": {(0, 2)}}, {0: {"bd"}, 2: {"bd"}})
        assert roots[1] == roots[kept] != roots[2 if kept == 0 else 0]


def _pairs(monkeypatch: pytest.MonkeyPatch, pairs: list[tuple[str, str, float]]) -> None:
    """Probabilistic matching that links the given pairs (scores made up for the test)."""
    from onetoone.identify import _probabilistic

    def linked(store: Store, *_args: object, **_kwargs: object) -> _probabilistic.Outcome:
        store.execute("DELETE FROM identity_review WHERE status IN ('linked', 'pending')")
        for left, right, prob in pairs:
            store.execute(
                "INSERT INTO identity_review VALUES (?, ?, ?, 0.0, '{}'::JSON, 'linked', NULL)",
                [*sorted((left, right)), prob])
        return _probabilistic.Outcome(links=len(pairs))

    monkeypatch.setattr(_probabilistic, "match_pairs", linked)


NAMESAKES = ("1,Sandrine,Martin,,,1974-07-11,,49000,Angers,\n"
             "2,Sandrine,Martin,,,1981-03-02,,49000,Angers,\n"
             "3,Anne,Roy,,,1980-01-01,,49000,Angers,\n"
             "4,Anne,Roy,,,1990-01-01,,49000,Angers,\n"
             "5,Marie,Moreau,,,,,72000,Le Mans,\n"
             "6,Paul,Moreau,,,,,72000,Le Mans,\n")
WEB = "w1,Sandrine,Martin,,\nw2,,Moreau,,\n"  # w2: no first name


def test_namesakes_are_not_joined_through_a_web_account(
        base: Builder, monkeypatch: pytest.MonkeyPatch) -> None:
    _pairs(monkeypatch, [("web:w1", "crm:1", 0.99), ("web:w1", "crm:2", 0.97),
                         ("crm:3", "crm:4", 0.99),  # a direct pair: its veto was weighed
                         ("web:w2", "crm:5", 0.98), ("web:w2", "crm:6", 0.99)])
    ws = base(crm=NAMESAKES, web=WEB, identify="probabilistic = true")
    ws.identify()
    assert customer_of(ws, "web:w1") == customer_of(ws, "crm:1") != customer_of(ws, "crm:2")
    assert customer_of(ws, "crm:3") == customer_of(ws, "crm:4")
    # first names clearly different (Marie / Paul): the stronger pair wins
    assert customer_of(ws, "web:w2") == customer_of(ws, "crm:6") != customer_of(ws, "crm:5")
    assert ws.store.scalar("SELECT method FROM customer_links WHERE record_key = 'crm:2'"
                           ) == "singleton"


def test_without_vetoes_the_pairs_join_everyone(
        base: Builder, monkeypatch: pytest.MonkeyPatch) -> None:
    _pairs(monkeypatch, [("web:w1", "crm:1", 0.99), ("web:w1", "crm:2", 0.97)])
    ws = base(crm=NAMESAKES, web=WEB,
              identify="probabilistic = true\nprobabilistic_vetoes = false")
    ws.identify()
    assert customer_of(ws, "crm:1") == customer_of(ws, "crm:2")


def test_a_record_without_a_first_name_does_not_bridge_a_household(base: Builder) -> None:
    # The family e-mail is split by first name; record 4 has no name, so it goes to the
    # largest group (Arthur's) by default, but Léa's phone is on it too: it joins Léa, not
    # both (Léa and Arthur are two people by their first names).
    ws = base(crm="1,Léa,Bertrand,family@mail.fr,+33684332924,,,,,\n"
                  "2,Arthur,Daniel,family@mail.fr,+33607040115,,,,,\n"
                  "3,Arthur,Daniel,family@mail.fr,,,,,,\n"
                  "4,,,family@mail.fr,+33684332924,,,,,\n")
    ws.identify()
    assert customer_of(ws, "crm:4") == customer_of(ws, "crm:1") != customer_of(ws, "crm:2")
    assert customer_of(ws, "crm:2") == customer_of(ws, "crm:3")
