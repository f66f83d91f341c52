"""The decision engine: next best action for one customer, now, on one channel.

1. *Rank* every action of the catalog for the customer and context, whatever the channel:
   rules (eligibility, applicability, suitability), validity dates, then
   ``priority = propensity x context weight x value x lever`` with the propensity drawn from the
   adaptive model (:mod:`.propensity`); actions at or below ``min_priority`` drop out.
2. *Filter* to the actions the asking channel can carry: the same customer gets the same
   ranking on the web site and in the call centre, each channel shows what it can.
3. *Contact policy* (:class:`~onetoone.customize.policy.ContactPolicy`): quiet hours and caps for
   the channel, consent and ignore-suppression per action.
4. *Control groups*: marketing actions are withheld from the universal control group, and an
   action from its holdout (the customer then gets the next action); withheld actions are logged
   with their ``control_group`` so that lift can be measured.

"No action" is a valid answer, logged with its reason.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from onetoone.customize.catalog import Action, Catalog
from onetoone.customize.policy import ContactPolicy
from onetoone.customize.profile import Profile
from onetoone.customize.propensity import AdaptivePropensities
from onetoone.customize.settings import ABTestConfig, ControlGroupSettings, DecisioningSettings
from onetoone.measure.control import ab_arm, in_holdout, in_universal_control, uniform
from onetoone.measure.uplift import uplift_key


@dataclass
class Proposal:
    action: Action
    priority: float
    propensity: float
    weight: float
    value: float
    lever: float
    rank: int = 0
    treatment: dict[str, Any] = field(default_factory=dict)
    basis: str = "propensity"  # what ``propensity`` holds: the propensity, or the uplift



@dataclass
class Decision:
    decision_id: str
    customer_id: str
    channel: str
    decided_at: datetime
    segment: str
    context: dict[str, Any]
    given: list[Proposal] = field(default_factory=list)
    withheld: list[tuple[Proposal, str]] = field(default_factory=list)
    reason: str | None = None

    def payload(self) -> dict[str, Any]:
        """The answer to the channel: control groups look like "no action"."""
        return {
            "decision_id": self.decision_id,
            "customer_id": self.customer_id,
            "actions": [
                {
                    "action": p.action.action_id,
                    "treatment": p.treatment,
                    "priority": round(p.priority, 6),
                }
                for p in self.given
            ],
        }

    def rows(self) -> list[dict[str, Any]]:
        """Rows of the ``decisions`` table: one per action given or withheld, else one."""

        def row(p: Proposal | None, rank: int | None, group: str | None) -> dict[str, Any]:
            detail: dict[str, Any] = {"context": self.context, "segment": self.segment}
            if p is not None:
                detail.update(
                    propensity=p.propensity,
                    basis=p.basis,
                    weight=p.weight,
                    value=p.value,
                    lever=p.lever,
                    overall_rank=p.rank,
                )
            if self.reason and p is None:
                detail["reason"] = self.reason
            return {
                "decision_id": self.decision_id,
                "customer_id": self.customer_id,
                "channel": self.channel,
                "decided_at": self.decided_at,
                "action_id": p.action.action_id if p else None,
                "rank": rank,
                "priority": p.priority if p else None,
                "control_group": group,
                "context": json.dumps(detail, default=str, ensure_ascii=False),
            }

        out = [row(p, i + 1, None) for i, p in enumerate(self.given)]
        out += [row(p, p.rank, group) for p, group in self.withheld]
        return out or [row(None, None, None)]


_ID_KEY = os.urandom(32)  # this process's secret: ids cannot be told from earlier ones
_id_counter = itertools.count()


def new_decision_id() -> str:
    """128 bits in hex (as a UUID4 would be): a keyed BLAKE2b of a counter, unpredictable
    without this process's secret key (a Mersenne Twister's ids can be predicted from ones a
    client has seen), and without a system call per decision: on the event loop, a call that
    releases the GIL may wait for it behind the writer thread."""
    counter = next(_id_counter).to_bytes(8, "little")
    return "d-" + hashlib.blake2b(counter, key=_ID_KEY, digest_size=16).hexdigest()


class DecisionEngine:
    """Ranks, filters and arbitrates; pure in-memory, shared by the API and campaign runs."""

    def __init__(
        self,
        catalog: Catalog,
        propensities: AdaptivePropensities,
        policy: ContactPolicy,
        decisioning: DecisioningSettings,
        control: ControlGroupSettings,
        default_language: str = "fr",
        exploration: str | None = None,
        ab_tests: Mapping[str, ABTestConfig] | None = None,
    ) -> None:
        self.catalog = catalog
        #: action -> (test, arms) of the A/B/n tests: a customer is offered their arm only
        self.arm_of = {action: (name, list(test.actions)) for name, test in (ab_tests or {}).items()
                       for action in test.actions}
        self.propensities = propensities
        self.policy = policy
        self.settings = decisioning
        self.control = control
        self.default_language = default_language
        self.exploration = exploration or decisioning.exploration

    def segment_of(self, profile: Profile) -> str:
        for name in self.settings.segment_by:
            value = profile.attributes.get(name)
            if value not in (None, ""):
                return f"{name}={value}"
        return "all"

    @staticmethod
    def environment(profile: Profile, context: Mapping[str, Any]) -> dict[str, Any]:
        env = dict(profile.attributes)
        env.update({f"context_{k}": v for k, v in context.items()})
        return env

    def _in_arm(self, customer_id: str, action_id: str) -> bool:
        test = self.arm_of.get(action_id)
        return test is None or ab_arm(customer_id, test[0], test[1],
                                      self.control.salt) == action_id

    def rank(
        self,
        profile: Profile,
        context: Mapping[str, Any],
        now: datetime,
        env: Mapping[str, Any] | None = None,
    ) -> list[Proposal]:
        """Every applicable action by decreasing priority (independent of the channel)."""
        env = env if env is not None else self.environment(profile, context)
        candidates = [a for a in self.catalog.actions if a.valid_at(now) and a.applies_to(env)
                      and self._in_arm(profile.customer_id, a.action_id)]
        if not candidates:
            return []
        segment = self.segment_of(profile)
        ids = [a.action_id for a in candidates]
        if self.exploration == "mean":
            theta = self.propensities.means(ids, segment)
        elif self.exploration == "random":
            period = str(int(now.timestamp() // 60))
            theta = np.array([uniform("random", profile.customer_id, a, period) for a in ids])
        else:
            period = str(int(now.timestamp() // (60 * self.settings.draw_period_minutes)))
            theta = self.propensities.sample(
                ids, segment, (uniform(profile.customer_id, a, period) for a in ids)
            )
        levers = self.settings.issue_levers
        out = []
        for action, p in zip(candidates, theta, strict=True):
            basis = "propensity"
            if action.config.rank_by == "uplift":
                # the customer's incremental propensity for this action (onetoone uplift),
                # else the propensity; no effect or a harmful one: not proposed
                uplift = env.get(uplift_key(action.action_id))
                if isinstance(uplift, int | float) and math.isfinite(uplift):
                    if uplift <= action.config.min_uplift:
                        continue
                    p, basis = float(uplift), "uplift"
            weight = action.context_weight(env)
            value = action.value_for(env)
            lever = action.config.lever * levers.get(action.config.issue, 1.0)
            priority = float(p) * weight * value * lever
            if priority > self.settings.min_priority:
                out.append(Proposal(action, priority, float(p), weight, value, lever,
                                    basis=basis))
        out.sort(key=lambda x: (-x.priority, x.action.action_id))
        for i, proposal in enumerate(out):
            proposal.rank = i + 1
        return out

    def decide(
        self,
        profile: Profile,
        channel: str,
        context: Mapping[str, Any],
        now: datetime,
        decision_id: str | None = None,
        *,
        only: Collection[str] | None = None,
        holdout: tuple[str, float] | None = None,
    ) -> Decision:
        """The decision for ``profile`` on ``channel`` at ``now`` (naive UTC); with ``only``,
        among those actions; with ``holdout`` = (campaign, share), that share of customers
        (the same ones at every run) is held out of the campaign as its control group.

        Updates the profile's contact counters when an outbound contact is made; call under
        ``profile.lock`` when several threads may decide for the same customer.
        """
        env = self.environment(profile, context)
        ranked = self.rank(profile, context, now, env)
        decision = Decision(
            decision_id or new_decision_id(),
            profile.customer_id,
            channel,
            now,
            self.segment_of(profile),
            dict(context),
        )
        offered = [p for p in ranked if channel in p.action.config.channels
                   and (only is None or p.action.action_id in only)]
        if not ranked:
            decision.reason = "no applicable action"
            return decision
        if not offered:
            decision.reason = f"no applicable action for channel {channel}"
            return decision
        policy = self.policy
        if policy.bounced(profile, channel):
            decision.reason = "address bounced"
            return decision
        if policy.quiet(profile, channel, now):
            decision.reason = "quiet hours"
            return decision
        cap = policy.cap_reached(profile, channel, now)
        if cap:  # only transactional messages exempt from caps may still go
            offered = [p for p in offered if p.action.config.exempt_from_caps]
            if not offered:
                decision.reason = cap
                return decision
        allowed = [
            p
            for p in offered
            if policy.consent(profile, channel, p.action.config.purpose)
            and not policy.suppressed(profile, p.action.action_id, now)
        ]
        if not allowed:
            decision.reason = "no consent, or suppressed after ignores"
            return decision
        control = self.control
        universal = in_universal_control(profile.customer_id, control.universal_share, control.salt)
        slots = self.settings.max_actions
        universal_withheld = 0
        for proposal in allowed:
            if len(decision.given) + universal_withheld >= slots:
                break
            action = proposal.action
            if universal and action.is_marketing:
                decision.withheld.append((proposal, "universal"))
                universal_withheld += 1
            elif in_holdout(
                profile.customer_id, action.action_id, action.config.holdout_share, control.salt
            ):
                decision.withheld.append((proposal, "holdout"))
            elif holdout is not None and in_holdout(profile.customer_id, holdout[0],
                                                    holdout[1], control.salt):
                decision.withheld.append((proposal, "campaign"))
            else:
                decision.given.append(proposal)
        if decision.given:
            language = str(profile.attributes.get("language") or self.default_language)
            tenv = {**env, "customer_id": profile.customer_id, "context": dict(context)}
            for proposal in decision.given:
                proposal.treatment = proposal.action.render(
                    channel, language, tenv, self.default_language
                )
            if not all(p.action.config.exempt_from_caps for p in decision.given):
                policy.record_contact(profile, channel, now)
        elif not decision.withheld:
            decision.reason = "held out"
        return decision
