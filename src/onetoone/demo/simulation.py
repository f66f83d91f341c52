"""Replay weeks of decisions and responses on simulated customers with a known response model.

Each customer has a true *uplift type* (Radcliffe & Surry's four: persuadables buy more when
contacted, sure things buy anyway, lost causes never, do-not-disturbs buy less and unsubscribe)
and a value tier; persuadables respond best to the action that suits their tier. Three
targeting policies run through the real engine (rules, contact policy, consent, control group):

* ``adaptive``: the catalog with Thompson-sampled propensities learning from every response;
* ``random``: the same catalog, a random action for every reachable customer;
* ``static``: the classic rule "top tier gets the retention offer";
* ``uplift``: the first half of the weeks as ``adaptive`` with half of every action's customers
  held out; then each action's uplift, learned from its treated and held-out customers
  (:class:`~onetoone.measure.uplift.UpliftModel`, the value tier as the only feature), ranks it
  (``rank_by = "uplift"``) with a 5 % holdout kept.

Every decision is checked afterwards, by code independent of the engine, against the consent the
simulated customer had at that moment and the caps. The measured lift (against the universal
control group, :func:`onetoone.measure.lift`) is reported next to the ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from onetoone.config import parse_config
from onetoone.customize.catalog import Catalog
from onetoone.customize.engine import DecisionEngine
from onetoone.customize.policy import ContactPolicy
from onetoone.customize.profile import Profile
from onetoone.customize.propensity import AdaptivePropensities
from onetoone.customize.settings import Cap
from onetoone.measure.lift import Lift, lift
from onetoone.schema import TABLES
from onetoone.store import Connection, drop_frame, scratch, show_frame

UPLIFT_TYPES = ("persuadable", "sure_thing", "lost_cause", "do_not_disturb")
TIERS = ("top", "middle", "low")
TIER_SHARES = (0.2, 0.4, 0.4)
#: P(uplift type | tier)
TYPE_PROBS = {
    "top": (0.35, 0.25, 0.25, 0.15),
    "middle": (0.25, 0.20, 0.40, 0.15),
    "low": (0.15, 0.10, 0.65, 0.10),
}
BASE_RATE = {"persuadable": 0.02, "sure_thing": 0.20, "lost_cause": 0.003, "do_not_disturb": 0.06}
AMOUNT = {"top": 120.0, "middle": 60.0, "low": 30.0}
ACTIONS = ("retention_offer", "new_collection", "loyalty_points")
#: Extra purchase probability of a contacted persuadable, by action and tier.
PERSUADABLE_UPLIFT = {
    "retention_offer": {"top": 0.20, "middle": 0.04, "low": 0.02},
    "new_collection": {"top": 0.05, "middle": 0.15, "low": 0.03},
    "loyalty_points": {"top": 0.03, "middle": 0.04, "low": 0.10},
}
DND_FACTOR = 0.4
DND_UNSUBSCRIBE = 0.08
EMAIL_CONSENT = 0.8

_CATALOG = """
[workspace]
name = "simulation"
timezone = "Europe/Paris"
[decisioning]
segment_by = ["value_tier"]
[control_groups]
universal_share = {share}
salt = "simulation"
[contact_policy]
suppress_after_ignores = 4
suppress_days = 21
"""
_ACTION = """
[actions.{name}]
channels = ["email"]
value = {value}
prior_propensity = 0.05
prior_strength = 10
{rule}
[actions.{name}.treatments.email]
subject = "{name}"
"""
#: the uplift policy's holdout while it learns, and once it ranks by uplift
LEARNING_HOLDOUT, RANKING_HOLDOUT = 0.5, 0.05


@dataclass
class SimulationResult:
    """One policy's run: volumes, the truth and the measurement."""

    policy: str
    customers: int
    weeks: int
    decisions: int = 0
    contacts: int = 0
    do_not_disturb_contacts: int = 0
    contacts_ranked_by_uplift: int = 0
    conversions: int = 0
    unsubscribes: int = 0
    true_incremental_value: float = 0.0
    lift: Lift | None = None
    violations: list[str] = field(default_factory=list)
    actions: dict[str, int] = field(default_factory=dict)
    #: true incremental value and do-not-disturbs contacted, week by week
    weekly_value: list[float] = field(default_factory=list)
    weekly_do_not_disturb: list[int] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        assert self.lift is not None
        low, high = self.lift.incremental_value_interval
        return {
            "policy": self.policy,
            "contacts": self.contacts,
            "conversions": self.conversions,
            "unsubscribes": self.unsubscribes,
            "do-not-disturbs contacted": self.do_not_disturb_contacts,
            "true incremental value": round(self.true_incremental_value),
            "measured incremental value": round(self.lift.incremental_value),
            "95% interval": f"[{low:,.0f}, {high:,.0f}]",
            "conversion lift": f"{self.lift.difference:+.1%}",
            "violations": len(self.violations),
        }


@dataclass
class _Customer:
    tier: str
    kind: str
    consent: list[tuple[datetime, bool]]  # timeline of e-mail consent


def _population(n: int, rng: np.random.Generator) -> list[_Customer]:
    tiers = rng.choice(len(TIERS), n, p=TIER_SHARES)
    out = []
    for t in tiers:
        tier = TIERS[int(t)]
        kind = UPLIFT_TYPES[int(rng.choice(4, p=TYPE_PROBS[tier]))]
        out.append(
            _Customer(tier, kind, [(datetime(2026, 1, 1), bool(rng.random() < EMAIL_CONSENT))])
        )
    return out


def _catalog(policy: str, share: float, holdout: float = LEARNING_HOLDOUT) -> str:
    text = _CATALOG.format(share=share)
    values = {"retention_offer": 25, "new_collection": 12, "loyalty_points": 8}
    for name in ACTIONS:
        rule = ""
        if policy == "static":
            if name != "retention_offer":
                continue
            rule = "eligibility = \"value_tier == 'top'\""
        if policy == "uplift":
            rule = f'rank_by = "uplift"\nholdout_share = {holdout}'
        value = 1 if policy == "random" else values[name]
        text += _ACTION.format(name=name, value=value, rule=rule)
    return text


def _learn_uplift(decisions: list[dict[str, Any]], transactions: list[dict[str, Any]],
                  profiles: list[Profile], days: int) -> None:
    """Each action's uplift by value tier, learned from its treated and held-out customers and
    set on every profile (``uplift_<action>``), as ``onetoone uplift`` writes it."""
    import pandas as pd

    from onetoone.measure.lift import action_outcomes
    from onetoone.measure.uplift import UpliftModel, uplift_key

    con = _tables(decisions, transactions)
    tiers = pd.DataFrame({"value_tier": [p.attributes["value_tier"] for p in profiles]})
    row = {p.customer_id: i for i, p in enumerate(profiles)}
    for action in ACTIONS:
        units = action_outcomes(con, action, days)
        if units["treated"].nunique() < 2 or units["converted"].nunique() < 2:
            continue
        X = tiers.iloc[[row[c] for c in units["customer_id"]]].reset_index(drop=True)
        model = UpliftModel(learner="logistic").fit(X, units["treated"].astype(int),
                                                    units["converted"].astype(int))
        for profile, uplift in zip(profiles, model.predict(tiers), strict=True):
            profile.attributes[uplift_key(action)] = float(uplift)


def _p_buy(customer: _Customer, action: str | None) -> float:
    p0 = BASE_RATE[customer.kind]
    if action is None or customer.kind in ("sure_thing", "lost_cause"):
        return p0
    if customer.kind == "do_not_disturb":
        return p0 * DND_FACTOR
    return p0 + PERSUADABLE_UPLIFT[action][customer.tier]


def simulate(
    policy: str = "adaptive",
    *,
    customers: int = 2000,
    weeks: int = 8,
    seed: int = 0,
    universal_share: float = 0.1,
    rounds_per_week: int = 3,
) -> SimulationResult:
    """Run one targeting policy; decisions on Monday, Wednesday, Friday at 09:00 UTC."""
    if policy not in ("adaptive", "random", "static", "uplift"):
        raise ValueError("policy must be adaptive, random, static or uplift")
    rng = np.random.default_rng(seed)
    people = _population(customers, rng)
    config = parse_config(_catalog(policy, universal_share))
    catalog = Catalog(config.actions)
    props = AdaptivePropensities(
        {a.action_id: (a.config.prior_propensity, a.config.prior_strength) for a in catalog.actions}
    )
    policy_rules = ContactPolicy(config.contact_policy, config.workspace.timezone)
    engine = DecisionEngine(
        catalog,
        props,
        policy_rules,
        config.decisioning,
        config.control_groups,
        exploration="random" if policy == "random" else None,
    )
    profiles = []
    for i, person in enumerate(people):
        profile = Profile(
            f"S{i:06d}", {"value_tier": person.tier, "country": "FR", "language": "fr"}
        )
        profile.set_consent("email", "marketing", person.consent[0][1], person.consent[0][0])
        profiles.append(profile)
    result = SimulationResult(policy, customers, weeks)
    decisions: list[dict[str, Any]] = []
    transactions: list[dict[str, Any]] = []
    log: list[tuple[int, datetime, str]] = []  # (customer, when, channel) of every contact
    start = datetime(2026, 9, 7, 9, 0)  # a Monday
    offsets = (0, 2, 4)[:rounds_per_week]
    for week in range(weeks):
        if policy == "uplift" and week == weeks // 2:  # learnt: rank by uplift from now on
            _learn_uplift(decisions, transactions, profiles, 7 * week)
            ranking = parse_config(_catalog(policy, universal_share, RANKING_HOLDOUT))
            engine = DecisionEngine(Catalog(ranking.actions), props, policy_rules,
                                    ranking.decisioning, ranking.control_groups)
        result.weekly_value.append(0.0)
        result.weekly_do_not_disturb.append(0)
        for day in offsets:
            now = start + timedelta(days=7 * week + day)
            for i, (person, profile) in enumerate(zip(people, profiles, strict=True)):
                decision = engine.decide(profile, "email", {}, now)
                result.decisions += 1
                decisions += decision.rows()
                action = decision.given[0].action.action_id if decision.given else None
                if action is not None:
                    result.contacts += 1
                    result.contacts_ranked_by_uplift += decision.given[0].basis == "uplift"
                    result.do_not_disturb_contacts += person.kind == "do_not_disturb"
                    result.weekly_do_not_disturb[-1] += person.kind == "do_not_disturb"
                    result.actions[action] = result.actions.get(action, 0) + 1
                    log.append((i, now, "email"))
                    gain = (_p_buy(person, action) - _p_buy(person, None)) * AMOUNT[person.tier]
                    result.true_incremental_value += gain
                    result.weekly_value[-1] += gain
                bought = rng.random() < _p_buy(person, action)
                if bought:
                    result.conversions += 1
                    transactions.append(
                        {
                            "customer_id": profile.customer_id,
                            "occurred_at": now + timedelta(hours=20),
                            "amount": AMOUNT[person.tier],
                        }
                    )
                if action is not None:
                    response = "conversion" if bought else "ignore"
                    props.update(action, decision.segment, response)
                    profile.record_response(action, response, now)
                    if person.kind == "do_not_disturb" and rng.random() < DND_UNSUBSCRIBE:
                        when = now + timedelta(hours=2)
                        person.consent.append((when, False))
                        profile.set_consent("email", "marketing", False, when)
                        result.unsubscribes += 1
    result.violations = check_contacts(log, people, config.contact_policy.caps)
    result.lift = _measure(decisions, transactions, catalog, weeks)
    return result


def check_contacts(
    log: list[tuple[int, datetime, str]], people: list[_Customer], caps: list[Cap]
) -> list[str]:
    """Every contact against the consent the customer had then and every cap (independent of
    the engine's own bookkeeping)."""
    problems = []
    by_customer: dict[int, list[tuple[datetime, str]]] = {}
    for i, when, channel in log:
        by_customer.setdefault(i, []).append((when, channel))
    for i, contacts in by_customer.items():
        contacts.sort()
        for k, (when, channel) in enumerate(contacts):
            state = [granted for t, granted in people[i].consent if t <= when]
            if not state or not state[-1]:
                problems.append(f"customer {i} contacted on {channel} at {when} without consent")
            for cap in caps:
                since = when - timedelta(days=cap.days)
                used = sum(
                    1 for t, ch in contacts[: k + 1] if t > since and cap.channel in ("all", ch)
                )
                if used > cap.max:
                    problems.append(
                        f"customer {i}: {used} contacts on {cap.channel} in "
                        f"{cap.days} days up to {when}"
                    )
    return problems


def _measure(
    decisions: list[dict[str, Any]],
    transactions: list[dict[str, Any]],
    catalog: Catalog,
    weeks: int,
) -> Lift:
    from onetoone.customize.catalog import save_catalog

    con = _tables(decisions, transactions)
    save_catalog(con, catalog)
    return lift(con, window_days=7 * weeks)


def _tables(decisions: list[dict[str, Any]], transactions: list[dict[str, Any]]
            ) -> Connection:
    """An in-memory database holding the run's decisions and transactions."""
    from onetoone.interact.writer import arrow_table

    con = scratch()
    for name in ("decisions", "transactions", "responses", "actions"):
        con.execute(TABLES[name].ddl())
    for table, rows in (("decisions", decisions), ("transactions", transactions)):
        if rows:
            data = arrow_table(table, rows)
            cols = ", ".join(f'"{c}"' for c in data.column_names)
            show_frame(con, "_rows", data)
            con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _rows")
            drop_frame(con, "_rows")
    return con


def compare(
    *, customers: int = 2000, weeks: int = 8, seed: int = 0, universal_share: float = 0.1
) -> list[SimulationResult]:
    """The four policies on the same population (same seed)."""
    return [
        simulate(p, customers=customers, weeks=weeks, seed=seed, universal_share=universal_share)
        for p in ("adaptive", "random", "static", "uplift")
    ]


def figure_svg(results: list[SimulationResult], width: int = 560, height: int = 260) -> str:
    """Bars: true incremental value per policy; dots and whiskers: measured, 95 % interval."""
    assert all(r.lift is not None for r in results)
    lows = [r.lift.incremental_value_interval[0] for r in results]  # type: ignore[union-attr]
    highs = [r.lift.incremental_value_interval[1] for r in results]  # type: ignore[union-attr]
    top = max([*highs, *(r.true_incremental_value for r in results)]) * 1.1
    bottom = min(0.0, *lows) * 1.1
    left, base_h = 70, height - 40

    def y(v: float) -> float:
        return 20 + (top - v) / (top - bottom) * (base_h - 20)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<line x1="{left}" y1="{y(0):.1f}" x2="{width - 10}" y2="{y(0):.1f}" stroke="#444"/>',
    ]
    step = (top - bottom) / 5
    for k in range(6):
        v = bottom + k * step
        parts.append(
            f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v / 1000:,.0f}k</text>'
        )
    slot = (width - left - 10) / len(results)
    for i, r in enumerate(results):
        x = left + i * slot + slot * 0.2
        w = slot * 0.6
        truth = r.true_incremental_value
        parts.append(
            f'<rect x="{x:.1f}" y="{min(y(truth), y(0)):.1f}" width="{w:.1f}" '
            f'height="{abs(y(0) - y(truth)):.1f}" fill="#9cc3e6"/>'
        )
        cx = x + w / 2
        est = r.lift.incremental_value  # type: ignore[union-attr]
        parts.append(
            f'<line x1="{cx:.1f}" y1="{y(lows[i]):.1f}" x2="{cx:.1f}" '
            f'y2="{y(highs[i]):.1f}" stroke="#c0392b" stroke-width="2"/>'
        )
        parts.append(f'<circle cx="{cx:.1f}" cy="{y(est):.1f}" r="4" fill="#c0392b"/>')
        parts.append(f'<text x="{cx:.1f}" y="{height - 12}" text-anchor="middle">{r.policy}</text>')
    parts.append(
        f'<text x="{left}" y="14">Incremental value (EUR): truth (bars), measured '
        "against the control group with 95 % interval (red)</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts)
