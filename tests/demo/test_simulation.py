"""Weeks of simulated decisions: policies compared, every decision checked for consent and caps."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from onetoone.customize.settings import Cap
from onetoone.demo.simulation import _Customer, check_contacts, compare

pytestmark = pytest.mark.slow


def test_adaptive_beats_random_and_no_decision_breaks_consent_or_caps() -> None:
    results = {r.policy: r for r in compare(customers=1500, weeks=6, seed=3)}
    for r in results.values():
        assert r.violations == [], r.violations[:3]
        assert r.contacts > 0 and r.lift is not None
        assert r.lift.n_control > 0.05 * r.lift.n_treated  # universal share 10 %
        low, high = r.lift.incremental_value_interval
        assert low <= r.true_incremental_value <= high  # the measurement covers the truth
    adaptive, random, static = results["adaptive"], results["random"], results["static"]
    assert adaptive.true_incremental_value > random.true_incremental_value
    # the static rule only contacts the top tier, with one offer
    assert set(static.actions) == {"retention_offer"} and static.contacts < adaptive.contacts
    # the adaptive policy learned that the retention offer suits the most (top-tier) customers
    assert max(adaptive.actions, key=adaptive.actions.__getitem__) == "retention_offer"
    # do-not-disturbs unsubscribed, and were not contacted afterwards (checked above)
    assert adaptive.unsubscribes > 0
    # the uplift policy learns for half the weeks (half of each action's customers held out),
    # then ranks by the uplift it learned: all three actions in use, each decision of the
    # second half ranked by it
    uplift = results["uplift"]
    assert set(uplift.actions) == set(adaptive.actions)
    assert 0 < uplift.contacts_ranked_by_uplift < uplift.contacts
    assert adaptive.contacts_ranked_by_uplift == 0
    assert len(uplift.weekly_value) == 6 and sum(uplift.weekly_value[3:]) > 0


def test_the_checker_catches_a_broken_cap_and_a_contact_without_consent() -> None:
    t = datetime(2026, 9, 7, 9)
    people = [_Customer("top", "persuadable", [(datetime(2026, 1, 1), True)]),
              _Customer("low", "lost_cause", [(datetime(2026, 1, 1), True),
                                              (t + timedelta(days=1), False)])]
    caps = [Cap(channel="email", max=2, days=7)]
    log = [(0, t, "email"), (0, t + timedelta(days=2), "email"),
           (0, t + timedelta(days=4), "email"), (1, t + timedelta(days=3), "email")]
    problems = check_contacts(log, people, caps)
    assert len(problems) == 2
    assert "3 contacts on email in 7 days" in problems[0] or "3 contacts" in problems[1]
    assert any("without consent" in p for p in problems)
    assert check_contacts(log[:2], people, caps) == []
