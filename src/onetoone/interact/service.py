"""The decision service: events in, next best action out, over one workspace.

A part of the workspace (``Workspace.decisions``): it resolves customers, keeps their profiles in
memory, decides with the engine, learns from responses and writes everything through the
group-commit writer. The REST API is a thin layer over it, and ``onetoone decide`` (a campaign
run) uses the same object, so real-time and batch decisions follow the same rules.
"""

from __future__ import annotations

import csv
import gc
import json
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from onetoone.clock import utcnow
from onetoone.customize.catalog import Catalog, save_catalog
from onetoone.customize.engine import Decision, DecisionEngine
from onetoone.customize.policy import ADDRESS_OF, ContactPolicy
from onetoone.customize.profile import Profile
from onetoone.customize.propensity import FAILURE, SUCCESS, AdaptivePropensities
from onetoone.customize.templates import spreadsheet_cell
from onetoone.errors import InvalidInputError, NotFoundError
from onetoone.identify.resolver import attach_late_events
from onetoone.interact.events import Consent, Event, event_row, utc_naive
from onetoone.interact.identity import CustomerResolver, Resolved
from onetoone.interact.keys import ApiKeys
from onetoone.interact.profiles import ProfileStore, load_profiles
from onetoone.interact.writer import GroupCommitWriter, Txn
from onetoone.privacy.audit import audit_row
from onetoone.schema import TABLES
from onetoone.store import Connection, Store

if TYPE_CHECKING:
    from onetoone.customize.settings import (
        ABTestConfig,
        ActionConfig,
        ContactPolicySettings,
        ControlGroupSettings,
        DecisioningSettings,
    )
    from onetoone.differentiate.settings import ValueSettings
    from onetoone.identify.settings import IdentifySettings
    from onetoone.interact.settings import ApiSettings
    from onetoone.privacy.settings import ConsentSettings
    from onetoone.settings import WorkspaceSettings

_SCORE_COLUMNS = {c.name for c in TABLES["customer_scores"].columns}
RECENT_DECISIONS = 200_000



#: channels where the customer is present (no outbound contact)
PRESENT_CHANNELS = ("web", "app", "store", "call_centre")
#: how far in the future a consent change may be dated (clocks differ)
CLOCK_SKEW = timedelta(minutes=5)


def _follow_links(cur: Connection, rows: list[dict[str, Any]]) -> None:
    """Give event rows the customer their record is linked to now (the ids they were given
    were read before an identify job changed the links)."""
    keys = list({r["customer_record_key"] for r in rows if r.get("customer_record_key")})
    if not keys:
        return
    now = dict(cur.execute(
        "SELECT record_key, customer_id FROM customer_links WHERE record_key IN "
        "(SELECT unnest(?::VARCHAR[]))", [keys]).fetchall())
    for row in rows:
        row["customer_id"] = now.get(row.get("customer_record_key"), row["customer_id"])


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


class _DecisionRef(NamedTuple):
    """A decision, for its responses. The recent ones are kept as plain tuples of strings,
    which the cyclic collector stops tracking (not a tuple subclass): 200,000 of them as
    objects holding lists made its full passes last ~250 ms, a pause of every request."""

    customer_id: str
    segment: str
    given: tuple[str, ...]
    withheld: tuple[str, ...]


@dataclass
class CampaignResult:
    """What a campaign run (``onetoone decide``) did."""

    run_id: str
    channel: str
    customers: int = 0
    contacted: int = 0
    control: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    output: Path | None = None
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """As plain data (a job's result); :meth:`from_summary` reads it back."""
        return {"run_id": self.run_id, "channel": self.channel, "customers": self.customers,
                "contacted": self.contacted, "control": self.control,
                "reasons": dict(self.reasons), "actions": dict(self.actions),
                "output": None if self.output is None else str(self.output),
                "seconds": self.seconds}

    @classmethod
    def from_summary(cls, data: dict[str, Any]) -> CampaignResult:
        return cls(data["run_id"], data["channel"], data["customers"], data["contacted"],
                   data["control"], Counter(data["reasons"]), Counter(data["actions"]),
                   None if data["output"] is None else Path(data["output"]), data["seconds"])


@dataclass(frozen=True)
class ServiceSettings:
    """The sections of ``onetoone.toml`` the decision service reads."""

    workspace: WorkspaceSettings
    identify: IdentifySettings
    actions: dict[str, ActionConfig]
    ab_tests: dict[str, ABTestConfig]
    decisioning: DecisioningSettings
    contact_policy: ContactPolicySettings
    control_groups: ControlGroupSettings
    api: ApiSettings
    consent: ConsentSettings
    value: ValueSettings

    @classmethod
    def of(cls, config: Any) -> ServiceSettings:
        """Those sections of a whole configuration."""
        return cls(**{name: getattr(config, name) for name in cls.__dataclass_fields__})


class DecisionService:
    """Real-time decisions and events over one store; ``Workspace.decisions`` makes it.

    ``keys`` are the workspace's API keys: while the service runs, their writes go through its
    writer. Campaign lists are written under ``outbound``.
    """

    def __init__(self, store: Store, settings: ServiceSettings, keys: ApiKeys,
                 outbound: Path, *, preload: bool | None = None) -> None:
        self.config = settings
        #: every profile read at start (``[api] preload_profiles``, for a server); a command
        #: that reads every customer itself (a campaign) reads them once, not twice
        self.preload = settings.api.preload_profiles if preload is None else preload
        self.con = store.con
        self.outbound = outbound
        self._local = threading.local()
        self.catalog = Catalog(self.config.actions)
        with store.transaction():
            save_catalog(self.con, self.catalog)
        self.propensities = AdaptivePropensities(
            {
                a.action_id: (a.config.prior_propensity, a.config.prior_strength)
                for a in self.catalog.actions
            },
            self._score_priors(),
        )
        self.propensities.load(
            self.con.execute(
                "SELECT action_id, segment, successes, failures FROM propensities"
            ).fetchall()
        )
        self.policy = ContactPolicy(self.config.contact_policy, self.config.workspace.timezone)
        self.policy.exempt = frozenset(a.action_id for a in self.catalog.actions
                                       if a.config.exempt_from_caps)
        self.engine = DecisionEngine(
            self.catalog,
            self.propensities,
            self.policy,
            self.config.decisioning,
            self.config.control_groups,
            self.config.workspace.language,
            ab_tests=self.config.ab_tests,
        )
        self.writer = GroupCommitWriter(
            self.con,
            group_commit_ms=self.config.api.group_commit_ms,
            deferred_ms=0.0 if self.config.api.durable_decisions
            else self.config.api.decision_log_ms,
        )
        self.resolver = CustomerResolver(self.config.workspace, self.config.identify,
                                         self.cursor)
        self.keys = keys
        keys.route(lambda work: self.writer.write(lambda txn: work(txn.cur)))
        self._profiles = ProfileStore()
        self._profile_lock = threading.Lock()
        self._decisions: OrderedDict[str, tuple[str, str, tuple[str, ...], tuple[str, ...]]] \
            = OrderedDict()
        # responses recorded and outcomes learned lately (the tables say for older ones)
        self._responses: OrderedDict[tuple[Any, ...], None] = OrderedDict()
        self._outcomes: OrderedDict[tuple[str, str | None], None] = OrderedDict()
        self._outcome_lock = threading.Lock()
        if self.preload:
            self._profiles = ProfileStore.load(
                self.cursor(), utcnow(), self.policy.max_days, self.policy.outbound,
                exempt=self.policy.exempt)
            _ = self.resolver.base  # the identifier index too

    def close(self) -> None:
        self.keys.route(None)
        self.writer.close()

    def refresh(self) -> None:
        """See what a batch step changed (new and merged customers, scores, segments) without
        a restart or a pause: the profiles are read again on a cursor of their own while
        requests use the old ones, then swapped in; the contacts and ignores a profile in use
        gained meanwhile are kept, so the caps still hold."""
        self.writer.sync()  # every decision so far is in the tables read below
        started = utcnow()
        cur = self.con.cursor()
        try:
            fresh = (ProfileStore.load(cur, started, self.policy.max_days, self.policy.outbound,
                                       exempt=self.policy.exempt)
                     if self.preload else ProfileStore())
            self.resolver.reload(cur)
        finally:
            cur.close()
        with self._profile_lock:
            old, self._profiles = self._profiles, fresh
        for before in old.made_profiles():
            after = fresh.peek(before.customer_id)
            if after is None:
                continue
            with before.lock:
                recent = [c for c in before.contacts if c[0] >= started]
                ignores = {a: v for a, v in before.ignores.items()
                           if v[1] is not None and v[1] >= started}
            if recent or ignores:
                after = fresh.setdefault(before.customer_id, after)
                with after.lock:
                    after.contacts.extend(c for c in recent if c not in after.contacts)
                    after.ignores.update(ignores)
        # what was just read lives until the next refresh: out of the collector's full passes
        # (as at start), which otherwise pause every request for as long as they take
        gc.freeze()

    # -- plumbing -----------------------------------------------------------------------
    def cursor(self) -> Connection:
        """This thread's cursor on the service's database."""
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._local.cursor = self.con.cursor()
        return cur

    def _score_priors(self) -> dict[tuple[str, str], float]:
        """Per-segment prior means of actions whose prior comes from a batch score."""
        out: dict[tuple[str, str], float] = {}
        wanted = [
            (a.action_id, a.config.prior_score)
            for a in self.catalog.actions
            if a.config.prior_score
        ]
        if not wanted:
            return out

        def col(name: str) -> str:
            if name in _SCORE_COLUMNS:
                return f'"{name}"::VARCHAR'
            return "json_extract_string(scores, '$.\"' || ? || '\"')"

        segment_by = self.config.decisioning.segment_by
        seg_parts, seg_params = [], []
        for name in segment_by:
            expr = col(name)
            if "?" in expr:
                seg_params += [name, name]
            seg_parts.append(
                f"CASE WHEN nullif({expr}, '') IS NOT NULL THEN '{name}=' || {expr} END"
            )
        segment = f"coalesce({', '.join([*seg_parts, repr('all')])})"
        for action_id, score in wanted:
            assert score is not None
            expr = col(score)
            params = seg_params + ([score] if "?" in expr else [])
            rows = self.con.execute(
                f"""
                WITH latest AS (SELECT * FROM customer_scores QUALIFY row_number() OVER
                    (PARTITION BY customer_id ORDER BY as_of DESC, scored_at DESC NULLS LAST) = 1)
                SELECT {segment} AS seg, avg(TRY_CAST({expr} AS DOUBLE)) FROM latest
                GROUP BY GROUPING SETS ((seg), ())
            """,
                params,
            ).fetchall()
            for seg, mean in rows:
                if mean is not None and 0 < mean < 1:
                    out[(action_id, seg or "all")] = float(mean)
        return out

    def profile(self, customer_id: str, now: datetime | None = None) -> Profile:
        """The in-memory profile, loaded from the tables on first use."""
        found = self._profiles.get(customer_id)
        if found is not None:
            return found
        with self._profile_lock:
            found = self._profiles.get(customer_id)
            if found is None:
                found = load_profiles(
                    self.cursor(),
                    [customer_id],
                    now or utcnow(),
                    self.policy.max_days,
                    self.policy.outbound,
                    self.policy.exempt,
                )[customer_id]
                found = self._profiles.setdefault(customer_id, found)
        return found

    def _resolve(self, ref: Mapping[str, str], create: bool = True) -> Resolved:
        if create:
            # a new customer counts against the caller's [api] new_identities_per_minute
            self.keys.bound_new_customers(lambda: int(self.resolver.find(dict(ref)) is None))
            return self._new_profiles([self.resolver.resolve(dict(ref), self.writer.submit)])[0]
        found = self.resolver.find(dict(ref))
        if found is None:
            raise NotFoundError("No customer with this identifier.")
        return found

    def _new_profiles(self, resolved: list[Resolved]) -> list[Resolved]:
        """A customer created just now has no history: its profile needs no loading."""
        for r in resolved:
            if r.created and r.customer_id not in self._profiles:
                golden = (r.rows.get("customers") or [{}])[0]
                with self._profile_lock:
                    self._profiles.setdefault(
                        r.customer_id,
                        Profile(
                            r.customer_id,
                            {k: v for k, v in golden.items() if k not in ("resolved_at",)},
                        ),
                    )
        return resolved

    # -- events -------------------------------------------------------------------------
    def ingest_events(self, events: list[Event]) -> dict[str, int]:
        """Append events durably (acknowledged after COMMIT); duplicates count once."""
        ws = self.config.workspace
        planned: list[tuple[str, str, dict[str, Any]]] = []
        keys = [tuple(sorted(e.customer.items())) for e in events]
        unique = list(dict.fromkeys(keys))
        generation = self.resolver.generation

        def unknown() -> int:  # the customers these events would create
            self.resolver.normalize([p for k in unique for p in k if p[0] != "customer_id"])
            return sum(self.resolver.find(dict(k)) is None for k in unique)

        self.keys.bound_new_customers(unknown)  # [api] new_identities_per_minute
        found = self._new_profiles(
            self.resolver.resolve_many([dict(k) for k in unique], self.writer.submit)
        )
        cache = dict(zip(unique, found, strict=True))
        for event, key in zip(events, keys, strict=True):
            resolved = cache[key]
            table, row = event_row(
                event, resolved.customer_id, resolved.record_key, ws.timezone, ws.currency
            )
            planned.append((event.event_id, table, row))

        def work(txn: Txn) -> list[dict[str, Any]]:
            if self.resolver.generation != generation:  # an identify job ended meanwhile
                _follow_links(txn.cur, [row for _, _, row in planned])
            accepted = []
            for event_id, table, row in planned:
                if txn.claim(event_id):
                    txn.insert(table, [row])
                    accepted.append(row)
                    if table == "transactions":
                        bought.add(row["customer_id"])
            return accepted

        bought: set[str] = set()
        accepted: list[dict[str, Any]] = self.writer.write(work)
        for row in accepted:  # contacts made outside the engine count against the caps
            if (
                row.get("direction") == "outbound"
                and row.get("decision_id") is None
                and row["channel"] in self.policy.outbound
            ):
                profile = self.profile(row["customer_id"])
                with profile.lock:
                    self.policy.record_contact(profile, row["channel"], row["occurred_at"])
        out = {
            "received": len(events),
            "accepted": len(accepted),
            "duplicates": len(events) - len(accepted),
        }
        if bought:  # a purchase after a campaign's message converts it
            from onetoone.interact import conversions

            converting = conversions.attributable(
                self.cursor(), self.config.control_groups.window_days, customers=bought,
                exclude_statuses=self.config.value.exclude_statuses)
            if converting:
                out["conversions"] = self.convert(converting)
        return out

    def attach_late_events(self, since: datetime) -> int:
        """After an identify job and :meth:`refresh`: the events written during the job follow
        their records to the customers it made (:func:`attach_late_events`), in the order of
        the service's writes, so that no event resolved before the refresh is left behind."""
        return int(self.writer.write(lambda txn: attach_late_events(txn.cur, since)))

    # -- customers ----------------------------------------------------------------------
    def find_customer(self, ref: Mapping[str, str]) -> str:
        return self._resolve(ref, create=False).customer_id

    def identifier_ref(self, identifier: str) -> dict[str, str]:
        kind, sep, value = identifier.partition(":")
        if not sep or not kind or not value:
            raise InvalidInputError("identifier must be TYPE:VALUE, e.g. email:marie@exemple.fr.")
        return {kind.strip().lower(): value}

    def customer_view(self, customer_id: str) -> dict[str, Any]:
        """Golden record, scores, consents, recent interactions and decisions."""
        self.writer.sync()  # the decisions logged so far are in the table
        cur = self.cursor()
        res = cur.execute("SELECT * FROM customers WHERE customer_id = ?", [customer_id])
        names = [d[0] for d in res.description]
        row = res.fetchone()
        if row is None:
            raise NotFoundError(f"No customer {customer_id}.")
        golden = dict(zip(names, row, strict=True))
        golden.pop("field_sources", None)
        res = cur.execute(
            """SELECT * EXCLUDE (customer_id) FROM customer_scores
                             WHERE customer_id = ? ORDER BY as_of DESC, scored_at DESC NULLS LAST
                             LIMIT 1""",
            [customer_id],
        )
        names = [d[0] for d in res.description]
        score_row = res.fetchone()
        scores = dict(zip(names, score_row, strict=True)) if score_row else {}
        if isinstance(scores.get("scores"), str):
            scores["scores"] = json.loads(scores["scores"])
        consents = [
            {"channel": c, "purpose": p, "granted": g, "occurred_at": t}
            for c, p, g, t in cur.execute(
                """
            SELECT channel, coalesce(purpose, 'marketing') AS purpose,
                   arg_max(granted, (coalesce(received_at, occurred_at), rowid)),
                   arg_max(occurred_at, (coalesce(received_at, occurred_at), rowid))
            FROM consents WHERE customer_id = ? AND granted IS NOT NULL GROUP BY ALL
            ORDER BY channel, purpose""",
                [customer_id],
            ).fetchall()
        ]
        interactions = [
            {
                "occurred_at": t,
                "channel": ch,
                "type": ty,
                "direction": d,
                "event_id": e,
                "amount": a,
            }
            for t, ch, ty, d, e, a in cur.execute(
                """
            SELECT occurred_at, channel, type, direction, event_id, NULL::DOUBLE FROM interactions
            WHERE customer_id = ?
            UNION ALL
            SELECT occurred_at, channel, 'purchase', 'inbound', event_id, amount::DOUBLE
            FROM transactions WHERE customer_id = ?
            ORDER BY 1 DESC LIMIT 20""",
                [customer_id, customer_id],
            ).fetchall()
        ]
        decisions = [
            {
                "decision_id": d,
                "channel": ch,
                "decided_at": t,
                "action": a,
                "rank": r,
                "priority": p,
            }
            for d, ch, t, a, r, p in cur.execute(
                """
            SELECT decision_id, channel, decided_at, action_id, rank, priority FROM decisions
            WHERE customer_id = ? AND control_group IS NULL
            ORDER BY decided_at DESC, rank LIMIT 10""",
                [customer_id],
            ).fetchall()
        ]
        identifiers = [
            {"type": t, "value": v}
            for t, v in cur.execute(
                """
            SELECT DISTINCT i.type, i.value FROM identifiers i JOIN customer_links l
            USING (record_key) WHERE l.customer_id = ? ORDER BY 1, 2""",
                [customer_id],
            ).fetchall()
        ]
        return _jsonable(
            {
                "customer_id": customer_id,
                "profile": golden,
                "identifiers": identifiers,
                "scores": scores,
                "consents": consents,
                "interactions": interactions,
                "decisions": decisions,
            }
        )

    def consent_vocabulary(self) -> tuple[list[str], list[str]]:
        """The channels and purposes a consent may name: the outbound channels of
        ``[contact_policy]``, the channels where customers are present and those of the
        actions; the purposes of ``[consent] purposes`` (checked at load to hold those of the
        actions and of ``consent_defaults``)."""
        actions = [a.config for a in self.catalog.actions]
        channels = {*self.policy.outbound, *PRESENT_CHANNELS,
                    *(c for a in actions for c in a.channels)}
        return sorted(channels), sorted(self.config.consent.purposes)

    def _consent_pairs(self, consent: Consent) -> list[tuple[str, str]]:
        """The (channel, purpose) pairs a change names; refused with the known ones."""
        channels, purposes = self.consent_vocabulary()
        if consent.channel not in (*channels, "all"):
            raise InvalidInputError(f"Unknown channel '{consent.channel}' for a consent.",
                                    hint=f"Channels: {', '.join(channels)}, or 'all' to "
                                    "withdraw everywhere.")
        if consent.purpose not in (*purposes, "all"):
            raise InvalidInputError(f"Unknown purpose '{consent.purpose}' for a consent.",
                                    hint=f"Purposes: {', '.join(purposes)}, or 'all' to "
                                    "withdraw them all.")
        if consent.granted and "all" in (consent.channel, consent.purpose):
            raise InvalidInputError("Consent is granted one channel and purpose at a time; "
                                    "'all' only withdraws.")
        return [(c, p) for c in (channels if consent.channel == "all" else [consent.channel])
                for p in (purposes if consent.purpose == "all" else [consent.purpose])]

    def set_consent(self, customer_id: str, consent: Consent,
                    actor: str = "python") -> dict[str, Any]:
        """Record a consent change (history kept); effective for the next decision. A change
        dated in the future is refused; ``all`` withdraws on every channel or purpose."""
        pairs = self._consent_pairs(consent)
        resolved = self._resolve({"customer_id": customer_id}, create=False)
        now = utcnow()
        when = (
            utc_naive(consent.occurred_at, self.config.workspace.timezone)
            if consent.occurred_at
            else now
        )
        if when > now + CLOCK_SKEW:
            raise InvalidInputError(
                "occurred_at is in the future: a consent change takes effect when it is "
                "received.", hint="Send it when it happens, or without occurred_at.")
        profile = self.profile(resolved.customer_id)
        rows = []
        for channel, purpose in pairs:
            consent_id = uuid.uuid4().hex
            rows.append({
                "record_key": f"api:consent-{consent_id}",
                "source": "api",
                "source_id": f"consent-{consent_id}",
                "channel": channel,
                "purpose": purpose,
                "granted": consent.granted,
                "occurred_at": when,
                "received_at": now,
                "customer_record_key": resolved.record_key,
                "customer_id": resolved.customer_id,
            })
        with profile.lock:  # changes rank by when they are received (a backdated one too)
            for channel, purpose in pairs:
                profile.set_consent(channel, purpose, consent.granted, now)
            audit = audit_row(actor, "consent.change", resolved.customer_id, {
                "channel": consent.channel, "purpose": consent.purpose,
                "granted": consent.granted})

            def write(txn: Txn) -> None:
                txn.insert("consents", rows)
                txn.insert("audit_log", [audit])

            future = self.writer.submit(write)
        future.result(60)
        return {
            "customer_id": resolved.customer_id,
            "consents": [
                {"channel": c, "purpose": p, "granted": g, "occurred_at": t.isoformat()}
                for (c, p), (g, t) in sorted(profile.consents.items())
            ],
        }

    # -- decisions ----------------------------------------------------------------------
    def decide(
        self,
        ref: Mapping[str, str],
        channel: str,
        context: Mapping[str, Any],
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """The next best action(s) for a customer on a channel, logged durably."""
        resolved = self._resolve(ref)
        payload, commit = self._decide(self.profile(resolved.customer_id), channel, context, now)
        if commit is not None:
            commit.result(60)
        return payload

    def decide_in_memory(
        self, ref: Mapping[str, str], channel: str, context: Mapping[str, Any]
    ) -> tuple[dict[str, Any], Future[Any] | None] | None:
        """:meth:`decide` when it needs no database read (the customer is known, its profile
        in memory): the answer and the commit to wait for before giving it (a contact), or
        None (then call :meth:`decide`).

        Cheap and non-blocking, so that the API answers it on the event loop, without a hop
        through the thread pool.
        """
        resolved = self.resolver.find_cached(ref)
        profile = self._profiles.get(resolved.customer_id) if resolved else None
        if profile is None:
            return None
        return self._decide(profile, channel, context, None)

    def _decide(
        self, profile: Profile, channel: str, context: Mapping[str, Any], now: datetime | None
    ) -> tuple[dict[str, Any], Future[Any] | None]:
        """The decision, and the commit of its log row when the answer must wait for it: a
        contact (an action given on an outbound channel) counts against the caps once it is
        durable, before it is answered; other decisions wait only with ``durable_decisions``."""
        with profile.lock:
            decision = self.engine.decide(profile, channel, context, now or utcnow())
            rows = decision.rows()
            wait = self.config.api.durable_decisions or (
                bool(decision.given) and channel in self.policy.outbound)
            # the log is written by a later group commit unless the answer waits for it
            future = self.writer.submit(lambda txn: txn.insert("decisions", rows),
                                        deferred=not wait)
        self._remember(decision)
        return decision.payload(), future if wait else None

    def _remember(self, decision: Decision) -> None:
        self._decisions[decision.decision_id] = (
            decision.customer_id,
            decision.segment,
            tuple(p.action.action_id for p in decision.given),
            tuple(p.action.action_id for p, _ in decision.withheld),
        )
        while len(self._decisions) > RECENT_DECISIONS:
            self._decisions.popitem(last=False)

    def briefing(self, customer_id: str, decision_id: str) -> dict[str, Any]:
        """What an employee facing the customer needs with the decision: who they are, why
        each action, their last interactions and purchases on every channel."""
        view = self.customer_view(customer_id)
        golden, scores = view["profile"], view.get("scores") or {}
        extra = scores.get("scores") or {}
        why = [{"action": a, "propensity": d.get("propensity"), "value": d.get("value"),
                "lever": d.get("lever"), "basis": d.get("basis")}
               for a, d in self._reasons(decision_id)]
        return {
            "customer": {k: golden.get(k) for k in ("first_name", "last_name", "language",
                                                    "city")},
            "value_tier": scores.get("value_tier"), "clv": scores.get("clv"),
            "defection_risk": extra.get("defection_risk"),
            "defection_reasons": extra.get("defection_reasons") or [],
            "needs_segment": extra.get("needs_segment"),
            "why": why,
            "history": view.get("interactions", [])[:10],
        }

    def _reasons(self, decision_id: str) -> list[tuple[str, dict[str, Any]]]:
        """(action, the model inputs logged with it) of a decision's given actions."""
        self.writer.sync()
        return [(a, json.loads(c or "{}")) for a, c in self.cursor().execute(
            "SELECT action_id, context FROM decisions WHERE decision_id = ? AND action_id IS "
            "NOT NULL AND control_group IS NULL ORDER BY rank", [decision_id]).fetchall()]

    def customer_of_decision(self, decision_id: str) -> str:
        """The customer a decision was taken for (404 when unknown)."""
        return self._decision(decision_id).customer_id

    def _decision(self, decision_id: str) -> _DecisionRef:
        found = self._decisions.get(decision_id)
        if found is not None:
            return _DecisionRef(*found)
        rows = (
            self.cursor()
            .execute(
                """
            SELECT customer_id, action_id, control_group, context->>'segment' FROM decisions
            WHERE decision_id = ? ORDER BY rank""",
                [decision_id],
            )
            .fetchall()
        )
        if not rows:
            raise NotFoundError(f"No decision {decision_id}.")
        return _DecisionRef(
            rows[0][0],
            rows[0][3] or "all",
            tuple(a for _, a, g, _ in rows if a and not g),
            tuple(a for _, a, g, _ in rows if a and g),
        )

    def respond(
        self,
        decision_id: str,
        response: str,
        value: float | None = None,
        action: str | None = None,
        occurred_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Record a response; the action's propensity and the ignore counter move at once."""
        ref = self._decision(decision_id)
        if action is not None and action not in ref.given + ref.withheld:
            raise InvalidInputError(f"Action '{action}' is not part of decision {decision_id}.")
        action = action or (
            ref.given[0] if ref.given else (ref.withheld[0] if ref.withheld else None)
        )
        when = utc_naive(occurred_at, self.config.workspace.timezone) if occurred_at else utcnow()
        duplicate, first = self._response_state(decision_id, action, response, value,
                                                occurred_at is not None, when)
        if duplicate:
            return {"decision_id": decision_id, "action": action, "response": response,
                    "learned": False, "duplicate": True}
        learned = False
        if action is not None and action in ref.given and first:
            profile = self.profile(ref.customer_id)
            with profile.lock:
                profile.record_response(action, response, when)
            learned = self.propensities.update(action, ref.segment, response)
        row = {
            "decision_id": decision_id,
            "customer_id": ref.customer_id,
            "action_id": action,
            "response": response,
            "value": value,
            "occurred_at": when,
        }
        segment, propensities = ref.segment, self.propensities

        def work(txn: Txn) -> None:
            txn.insert("responses", [row])
            if learned and action is not None:
                txn.upsert(
                    "propensities",
                    ("action_id", "segment"),
                    propensities.row(action, segment, utcnow()),
                )

        self.writer.write(work)
        out: dict[str, Any] = {
            "decision_id": decision_id,
            "action": action,
            "response": response,
            "learned": learned,
        }
        if learned and action is not None:
            out["propensity"] = round(self.propensities.posterior(action, segment).mean, 6)
        return out

    def convert(self, found: list[tuple[str, float, datetime]]) -> int:
        """Record the conversions :func:`~onetoone.interact.conversions.attributable` found
        (``(decision_id, amount, occurred_at)``, UTC) as responses, learned by the
        propensities; the number recorded."""
        recorded = 0
        for decision_id, amount, occurred_at in found:
            answer = self.respond(decision_id, "conversion", value=amount,
                                  occurred_at=occurred_at.replace(tzinfo=UTC))
            recorded += not answer.get("duplicate", False)
        return recorded

    def _response_state(self, decision_id: str, action: str | None, response: str,
                        value: float | None, dated: bool, when: datetime) -> tuple[bool, bool]:
        """(whether this very response was recorded already: a caller's retry, acknowledged
        without a second row; whether it is the first success or failure of this action in
        this decision: only that one is learned, a thousand clicks on one e-mail being one
        success). Recent ones are remembered, older ones read in one query."""
        key = (decision_id, action, response, value, when if dated else None)
        outcome = action is not None and response in SUCCESS | FAILURE
        with self._outcome_lock:
            if key in self._responses:
                return True, False
            self._responses[key] = None
            first = outcome and (decision_id, action) not in self._outcomes
            if first:
                self._outcomes[(decision_id, action)] = None
            for kept in (self._responses, self._outcomes):
                while len(kept) > RECENT_DECISIONS:
                    kept.popitem(last=False)
        earlier = self.cursor().execute(
            "SELECT response, value, occurred_at FROM responses WHERE decision_id = ? AND "
            "action_id IS NOT DISTINCT FROM ?", [decision_id, action]).fetchall()
        if any(r == response and v == value and (not dated or t == when)
               for r, v, t in earlier):
            return True, False
        return False, first and not any(r in SUCCESS | FAILURE for r, _, _ in earlier)

    # -- campaign runs ------------------------------------------------------------------
    def campaign(
        self,
        channel: str,
        output: Path | None = None,
        now: datetime | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> CampaignResult:
        """Decide for every customer on ``channel``: the outbound list (table + CSV)."""
        known, _ = self.consent_vocabulary()
        if channel not in known:
            raise InvalidInputError(f"Unknown channel '{channel}'.",
                                    hint=f"Channels: {', '.join(known)}.")
        started = time.perf_counter()
        now = now or utcnow()
        result = CampaignResult(f"run-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}", channel)
        # every decision of the run names it, so that its lift can be measured on its own
        run_context = {**(context or {}), "campaign": result.run_id}
        # every customer as of now, in columns; profiles already in use keep their state
        loaded = ProfileStore.load(self.cursor(), now, self.policy.max_days,
                                   self.policy.outbound, exempt=self.policy.exempt)
        address_field = ADDRESS_OF.get(channel)
        decisions: list[dict[str, Any]] = []
        outbound: list[dict[str, Any]] = []
        for fresh in loaded.profiles():
            cid = fresh.customer_id
            profile = self._profiles.made(cid) or fresh
            result.customers += 1
            address = profile.attributes.get(address_field) if address_field else None
            if address_field and not address:
                result.reasons[f"no {address_field}"] += 1
                continue
            with profile.lock:
                decision = self.engine.decide(profile, channel, run_context, now)
            decisions += decision.rows()
            if decision.withheld and not decision.given:
                result.control += 1
            if not decision.given:
                result.reasons[decision.reason or "control group"] += 1
                continue
            result.contacted += 1
            profile = self._profiles.setdefault(cid, profile)  # it holds the contact now
            for rank, proposal in enumerate(decision.given, start=1):
                result.actions[proposal.action.action_id] += 1
                outbound.append(
                    {
                        "run_id": result.run_id,
                        "decision_id": decision.decision_id,
                        "customer_id": cid,
                        "channel": channel,
                        "action_id": proposal.action.action_id,
                        "priority": proposal.priority,
                        "address": address,
                        "language": proposal.treatment.get("language"),
                        "treatment": json.dumps(proposal.treatment, ensure_ascii=False),
                        "created_at": now,
                        "_rank": rank,
                        "_fields": proposal.treatment,
                        "_profile": profile.attributes,
                    }
                )

        table_rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in outbound]

        def work(txn: Txn) -> None:
            txn.insert("decisions", decisions)
            txn.insert("outbound", table_rows)

        self.writer.write(work, timeout=None)
        output = output or self.outbound / f"{result.run_id}.csv"
        self._write_csv(output, outbound)
        result.output = output
        result.seconds = time.perf_counter() - started
        return result

    @staticmethod
    def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
        fields = list(dict.fromkeys(k for r in rows for k in r["_fields"] if k != "language"))
        head = [
            "run_id",
            "decision_id",
            "customer_id",
            "channel",
            "action_id",
            "priority",
            "address",
            "language",
            "first_name",
            "last_name",
            *fields,
        ]
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(head)
            for r in rows:
                writer.writerow([spreadsheet_cell(v) for v in
                    [
                        r["run_id"],
                        r["decision_id"],
                        r["customer_id"],
                        r["channel"],
                        r["action_id"],
                        f"{r['priority']:.6f}",
                        r["address"],
                        r["language"],
                        r["_profile"].get("first_name") or "",
                        r["_profile"].get("last_name") or "",
                        *[r["_fields"].get(f, "") for f in fields],
                    ]
                ])
