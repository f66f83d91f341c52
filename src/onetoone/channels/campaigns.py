"""Campaigns (``[campaigns.NAME]``, docs/campaigns.md): select an audience, decide the next best
action of each customer under consent and the contact policy, hold out a control group,
render, deliver on a channel, and report what happened against the control group.

- :meth:`Campaigns.preview` decides on copies of the profiles and writes nothing: no decision
  logged, no cap consumed, no message sent.
- :meth:`Campaigns.run` is idempotent per occurrence (``once``, or the day of a scheduled
  run): a customer already in the occurrence's outbound list is not decided for again, and
  a message already accepted by its channel is not sent again. Decisions and the outbound
  list are committed before anything is sent (a contact counts once its decision is
  durable); a run that stopped part way sends the rest when run again.
- :meth:`Campaigns.status` counts selected, held out, sent, delivered, bounced, opened,
  clicked, converted, unsubscribed, and the lift against the control group.
"""

from __future__ import annotations

import ast
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from onetoone.channels.base import Channel, Message
from onetoone.channels.delivery import Deliverer, Limits, Tally
from onetoone.channels.outbox import Outbox
from onetoone.channels.settings import CampaignConfig, ChannelConfig, send_window
from onetoone.channels.tracking import Signer, message_links, track_clicks
from onetoone.clock import utcnow
from onetoone.customize.policy import ADDRESS_OF
from onetoone.errors import InvalidInputError, NotFoundError
from onetoone.schema import TABLES

if TYPE_CHECKING:
    from pathlib import Path

    from onetoone.channels.definitions import Definitions
    from onetoone.customize.profile import Profile
    from onetoone.interact.service import DecisionService
    from onetoone.store import Store

#: names of the ``scores`` JSON that every scoring run writes
SCORE_NAMES = ("age", "expected_purchases_52w", "expected_spend", "value_rank", "pareto_share",
               "margin", "historical_spend", "defection_risk", "defection_status",
               "defection_reasons", "defection_horizon_days", "needs_segment", "model",
               "fallback", "customer_id")
SAMPLE = 5
#: customers decided, committed and sent at a time (memory stays bounded)
CHUNK = 20_000


def known_fields() -> set[str]:
    """Profile fields an audience rule may name (``context_*`` too)."""
    golden = {c.name for c in TABLES["customers"].columns}
    scores = {c.name for c in TABLES["customer_scores"].columns} - {"scores", "scored_at"}
    return golden | scores | set(SCORE_NAMES)


def audience_names(rule: str) -> list[str]:
    """The field names a rule reads."""
    constants = {"true", "false", "none", "null", "True", "False", "None"}
    return sorted({n.id for n in ast.walk(ast.parse(rule, mode="eval"))
                   if isinstance(n, ast.Name) and n.id not in constants})


def delivery_id(campaign: str, occurrence: str, customer_id: str) -> str:
    """The message's id: one per campaign, occurrence and customer, so never sent twice."""
    return "m" + hashlib.sha256(f"{campaign}\x1f{occurrence}\x1f{customer_id}".encode()
                                ).hexdigest()[:23]


@dataclass
class Selection:
    """What deciding over the audience gave (a preview, or the new part of a run)."""

    customers: int = 0
    audience: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    held_out: int = 0
    to_send: int = 0
    already: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    expected_responses: float = 0.0
    expected_value: float = 0.0
    samples: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"customers": self.customers, "audience": self.audience,
                "not_sent": dict(self.reasons.most_common()), "held_out": self.held_out,
                "to_send": self.to_send, "already_in_this_occurrence": self.already,
                "actions": dict(self.actions.most_common()),
                "expected_responses": round(self.expected_responses, 2),
                "expected_value": round(self.expected_value, 2), "samples": self.samples,
                "errors": self.errors}


class Campaigns:
    """``Workspace.campaigns``: preview, run and status of the configured campaigns."""

    def __init__(self, service: Callable[[], DecisionService],
                 campaigns: dict[str, CampaignConfig],
                 channels: dict[str, ChannelConfig], root: Path, store: Store,
                 public_url: str | None, timezone: str,
                 definitions: Definitions | None = None) -> None:
        self._service, self.channels = service, channels
        self._file, self.definitions = campaigns, definitions
        self.root, self.store, self.public_url, self.timezone = (root, store, public_url,
                                                                 timezone)

    @cached_property
    def configs(self) -> dict[str, CampaignConfig]:
        """The campaigns that run: the file's, then those created through the API (read at
        first use: a scan's page or a status needs none of them)."""
        return {**self._file, **(self.definitions.active() if self.definitions else {})}

    @property
    def service(self) -> DecisionService:
        """The workspace's decision service (started at first use: :meth:`status` reads the
        tables without it)."""
        return self._service()

    def config(self, name: str) -> CampaignConfig:
        found = self.configs.get(name)
        if found is None:
            if self.definitions is not None:  # retired, or no longer allowed: say so
                self.definitions.refuse(name)
            raise NotFoundError(f"No campaign '{name}'.",
                                hint=f"Campaigns: {', '.join(self.configs) or 'none'} "
                                "([campaigns.NAME] in onetoone.toml, or POST /v1/campaigns).")
        return found

    # -- selection ----------------------------------------------------------------------
    def _audience(self, now: datetime) -> Iterator[tuple[Profile, Profile]]:
        """(fresh profile, the service's profile if it holds one) of every customer."""
        from onetoone.interact.profiles import ProfileStore

        service = self.service
        loaded = ProfileStore.load(service.cursor(), now, service.policy.max_days,
                                   service.policy.outbound, exempt=service.policy.exempt)
        for fresh in loaded.profiles():
            yield fresh, (service._profiles.made(fresh.customer_id) or fresh)

    def _select(self, name: str, config: CampaignConfig, now: datetime, *, live: bool,
                occurrence: str, skip: set[str],
                keep: Callable[[Any, Profile, str | None], None] | None = None) -> Selection:
        """Decide for every customer of the audience (on copies unless ``live``)."""
        from onetoone.customize.rules import Rule

        out = Selection()
        rule = Rule(config.audience) if config.audience else None
        engine = self.service.engine
        address_field = ADDRESS_OF.get(config.channel)
        context = {"campaign": f"{name}:{occurrence}"}
        only = frozenset(config.actions) or None
        holdout = (f"campaign:{name}", config.control_share) if config.control_share else None
        for fresh, current in self._audience(now):
            out.customers += 1
            attrs = fresh.attributes
            if not self._in_audience(config, rule, fresh):
                continue
            out.audience += 1
            if fresh.customer_id in skip:
                out.already += 1
                continue
            address = attrs.get(address_field) if address_field else None
            if address_field and not address:
                out.reasons[f"no {address_field}"] += 1
                continue
            profile = current if live else fresh
            if live:
                with profile.lock:
                    decision = engine.decide(profile, config.channel, context, now,
                                             only=only, holdout=holdout)
            else:  # a copy: its counters are thrown away with it
                decision = engine.decide(fresh, config.channel, context, now, only=only,
                                         holdout=holdout)
            if any(group == "campaign" for _, group in decision.withheld):
                out.held_out += 1
            if not decision.given:
                if not decision.withheld:
                    out.reasons[decision.reason or "no action"] += 1
                elif keep is not None:
                    keep(decision, profile, None)
                continue
            out.to_send += 1
            for proposal in decision.given[:1]:
                out.actions[proposal.action.action_id] += 1
                out.expected_responses += float(proposal.propensity or 0)
                out.expected_value += float(proposal.propensity or 0) * float(
                    proposal.value or 0)
                if len(out.samples) < SAMPLE:
                    out.samples.append({"customer_id": fresh.customer_id,
                                        "action": proposal.action.action_id,
                                        **proposal.treatment})
            if keep is not None:
                keep(decision, profile, str(address))
        return out

    def _in_audience(self, config: CampaignConfig, rule: Any, profile: Profile) -> bool:
        attrs = profile.attributes
        if config.tiers and attrs.get("value_tier") not in config.tiers:
            return False
        if config.segments and attrs.get("needs_segment") not in config.segments:
            return False
        return rule is None or bool(rule.test(self.service.engine.environment(profile, {})))

    # -- one customer (a trigger) -------------------------------------------------------
    def run_for(self, name: str, customer_id: str, occurrence: str,
                context: dict[str, Any] | None = None,
                now: datetime | None = None) -> dict[str, Any]:
        """Decide and deliver the campaign for one customer (the one a trigger's event
        names), as occurrence ``occurrence`` (the event): at most one message per event."""
        from onetoone.customize.rules import Rule

        config = self.config(name)
        now = now or utcnow()
        run_id = f"{name}:{occurrence}"
        service = self.service
        profile = service.profile(customer_id)
        if not self._in_audience(config, Rule(config.audience) if config.audience else None,
                                 profile):
            return {"run_id": run_id, "sent": 0, "reason": "not in the audience"}
        if not self._in_window(config, now):
            return {"run_id": run_id, "sent": 0, "reason": "outside the send window"}
        address_field = ADDRESS_OF.get(config.channel)
        address = profile.attributes.get(address_field) if address_field else None
        if address_field and not address:
            return {"run_id": run_id, "sent": 0, "reason": f"no {address_field}"}
        sender = _Sender(self, name, config, run_id, occurrence, lambda: False)
        try:
            if customer_id in sender.decided:
                return {"run_id": run_id, "sent": 0, "reason": "already decided"}
            holdout = (f"campaign:{name}", config.control_share) if config.control_share \
                else None
            with profile.lock:
                decision = service.engine.decide(
                    profile, config.channel, {**(context or {}), "campaign": run_id}, now,
                    only=frozenset(config.actions) or None, holdout=holdout)
            rows = [_outbound_row(run_id, config.channel, decision, customer_id,
                                  str(address), now)] if decision.given else []
            self._commit(decision.rows(), rows)
            sender.send(rows)
        finally:
            sender.close()
        return {"run_id": run_id, "sent": sender.tally.sent,
                "reason": None if rows else (decision.reason or "control group")}

    def _commit(self, decisions: list[dict[str, Any]], outbound: list[dict[str, Any]]) -> None:
        """Decisions and their outbound rows durable, before any of their messages leaves
        (a contact counts once its decision is)."""
        def work(txn: Any) -> None:
            txn.insert("decisions", decisions)
            txn.insert("outbound", outbound)

        self.service.writer.write(work, timeout=None)

    # -- preview ------------------------------------------------------------------------
    def preview(self, name: str, now: datetime | None = None) -> dict[str, Any]:
        """Who would get what, and what it should bring; nothing written, no cap consumed.
        Every treatment of the allowed actions is rendered once: errors are listed (and
        refuse the run)."""
        config = self.config(name)
        chosen = self._deliverer(config)
        if chosen is not None and self.channels[chosen].type == "print":
            _needs_public_url(chosen, self.public_url)  # refused now, not at launch
        now = now or utcnow()
        selection = self._select(name, config, now, live=False,
                                 occurrence=self.occurrence(config, now), skip=set())
        selection.errors = self._render_errors(config)
        return {"campaign": name, "channel": config.channel, **selection.summary()}

    def _render_errors(self, config: CampaignConfig) -> list[str]:
        """Render each treatment of the campaign's actions on the channel with a sample
        customer; the errors, one sentence each."""
        errors = []
        env = {"first_name": "Marie", "last_name": "Martin", "customer_id": "C0",
               "context": {}, "value_tier": "top"}
        for action in self.service.catalog.actions:
            if config.actions and action.action_id not in config.actions:
                continue
            if config.channel not in action.config.channels:
                continue
            for language in ("fr", "en"):
                try:
                    action.render(config.channel, language, env, language)
                except Exception as exc:  # a template that fails: said, never raised
                    errors.append(f"{action.action_id} ({config.channel}, {language}): "
                                  f"{type(exc).__name__}: {str(exc)[:200]}")
        return errors

    # -- run ----------------------------------------------------------------------------
    def _local(self, now: datetime) -> datetime:
        """``now`` (naive UTC) in the workspace's time zone."""
        from onetoone.schedule import zone

        return now.replace(tzinfo=UTC).astimezone(zone(self.timezone))

    def occurrence(self, config: CampaignConfig, now: datetime) -> str:
        """``once``, or the day of a scheduled run in the workspace's time zone."""
        return "once" if config.schedule == "once" else f"{self._local(now):%Y-%m-%d}"

    def _in_window(self, config: CampaignConfig, now: datetime) -> bool:
        if config.send_window is None:
            return True
        local = self._local(now)
        minute = local.hour * 60 + local.minute
        start, end = send_window(config.send_window)
        return start <= minute < end if start <= end else minute >= start or minute < end

    def run(self, name: str, now: datetime | None = None,
            cancelled: Callable[[], bool] = lambda: False) -> dict[str, Any]:
        """Decide for the new part of the audience, commit, then deliver what is not sent."""
        config = self.config(name)
        now = now or utcnow()
        if not self._in_window(config, now):
            raise InvalidInputError(f"The campaign '{name}' sends between "
                                    f"{config.send_window} only ({self.timezone}).",
                                    hint="Run it then, or schedule it.")
        errors = self._render_errors(config)
        if errors:
            raise InvalidInputError(f"The campaign '{name}' has treatments that fail: "
                                    f"{errors[0]}.", hint="'onetoone campaign preview' "
                                    "lists them all; fix them in the catalog.")
        started = time.perf_counter()
        occurrence = self.occurrence(config, now)
        run_id = f"{name}:{occurrence}"
        sender = _Sender(self, name, config, run_id, occurrence, cancelled)
        try:
            sender.resume()  # what an earlier run of this occurrence decided but did not send
            decisions: list[dict[str, Any]] = []
            outbound: list[dict[str, Any]] = []
            # a chunk's messages go out on a thread of their own while the next chunk is
            # decided (writing files, waiting for a relay: time the deciding need not wait)
            with ThreadPoolExecutor(1, thread_name_prefix="onetoone-delivery") as delivery:
                sending: list[Future[None]] = []

                def flush() -> None:
                    """Decisions and the list durable, then their messages sent, one chunk
                    in flight at most (its error raised here)."""
                    rows, chosen = list(outbound), list(decisions)
                    decisions.clear()
                    outbound.clear()
                    self._commit(chosen, rows)
                    while sending:
                        sending.pop().result()
                    sending.append(delivery.submit(sender.send, rows))

                def keep(decision: Any, profile: Profile, address: str | None) -> None:
                    decisions.extend(decision.rows())
                    if decision.given:
                        outbound.append(_outbound_row(run_id, config.channel, decision,
                                                      profile.customer_id, address, now))
                    if len(decisions) >= CHUNK:
                        flush()

                selection = self._select(name, config, now, live=True,
                                         occurrence=occurrence, skip=sender.decided,
                                         keep=keep)
                flush()
                while sending:
                    sending.pop().result()
        finally:
            sender.close()
        return {"campaign": name, "run_id": run_id, **selection.summary(),
                "delivery": sender.tally.summary(),
                "seconds": round(time.perf_counter() - started, 2)}

    def _channel(self, config: CampaignConfig) -> tuple[str, Channel, Limits]:
        """The adapter that delivers the campaign: ``deliver_with``, else the channel that
        carries its decision channel, else the outbox."""
        chosen = self._deliverer(config)
        if chosen is None:
            return ("outbox", Outbox(config.channel, self.root / "outbox",
                                     email=config.channel == "email"),
                    Limits(1e6, 1, 0, batch=2000, queue_first=False))
        settings = self.channels[chosen]
        limits = Limits(settings.rate_per_second, settings.max_attempts,
                        settings.backoff_seconds, batch=2000 if settings.type == "outbox"
                        else 100, queue_first=settings.type == "http_gateway")
        return chosen, build_channel(chosen, settings, self.root, config.channel,
                                     self.public_url, self.store), limits

    def _deliverer(self, config: CampaignConfig) -> str | None:
        """The ``[channels.NAME]`` that delivers the campaign (None: the outbox)."""
        return config.deliver_with or next(
            (n for n, c in self.channels.items() if (c.carries or n) == config.channel), None)

    def _signer(self) -> Signer | None:
        if not self.public_url:
            return None
        from onetoone.channels.secrets import channel_secret

        return Signer(channel_secret(self.root))

    # -- status -------------------------------------------------------------------------
    def page_of(self, delivery_id: str) -> tuple[str, str | None] | None:
        """(decision id, the treatment's ``url``) of a delivery, for its QR code's scan; None
        when there is no such delivery (erased since, say)."""
        cur = self.store.con.cursor()
        try:
            found = cur.execute("""
                SELECT d.decision_id, json_extract_string(o.treatment, '$.url')
                FROM deliveries d LEFT JOIN outbound o
                  ON o.run_id = d.campaign AND o.decision_id = d.decision_id
                WHERE d.delivery_id = ? LIMIT 1""", [delivery_id]).fetchone()
        finally:
            cur.close()
        return None if found is None else (str(found[0]), found[1])

    def status(self, name: str, lift: Callable[[str], Any] | None = None) -> dict[str, Any]:
        """What the campaign's runs did, from the tables (a retired campaign's too)."""
        if self.definitions is None or self.definitions.get(name) is None:
            self.config(name)
        cur = self.store.con.cursor()
        like = [f"{name}:%"]
        decided = cur.execute("""
            SELECT count(DISTINCT customer_id) FILTER (WHERE control_group IS NULL
                                                       AND action_id IS NOT NULL),
                   count(DISTINCT customer_id) FILTER (WHERE control_group = 'campaign'),
                   list(DISTINCT context->'context'->>'campaign')
            FROM decisions WHERE context->'context'->>'campaign' LIKE ?""", like).fetchall()[0]
        statuses = dict(cur.execute("SELECT status, count(*) FROM deliveries WHERE campaign "
                                    "LIKE ? GROUP BY status", like).fetchall())
        answers = dict(cur.execute("""
            SELECT CASE WHEN r.response = 'accept' THEN 'conversion' ELSE r.response END,
                   count(DISTINCT r.decision_id) FROM responses r
            JOIN outbound o USING (decision_id) WHERE o.run_id LIKE ? GROUP BY ALL""",
                                   like).fetchall())
        events = dict(cur.execute("""
            SELECT i.type, count(DISTINCT i.decision_id) FROM interactions i
            JOIN outbound o USING (decision_id) WHERE o.run_id LIKE ? GROUP BY i.type""",
                                  like).fetchall())
        sent = sum(n for s, n in statuses.items() if s in ("sent", "delivered", "bounced"))
        out: dict[str, Any] = {
            "campaign": name, "runs": sorted(r for r in (decided[2] or []) if r),
            "selected": int(decided[0] or 0) + int(decided[1] or 0),
            "held_out": int(decided[1] or 0), "sent": sent,
            "delivered": statuses.get("delivered", 0), "bounced": statuses.get("bounced", 0),
            "failed": statuses.get("failed", 0) + statuses.get("dead", 0),
            "queued": statuses.get("queued", 0),
            "opened": events.get("open", 0), "clicked": answers.get("click", 0),
            "converted": answers.get("conversion", 0),
            "unsubscribed": events.get("unsubscribe", 0) + events.get("stop", 0),
        }
        if lift is not None and out["runs"]:
            out["lift"] = [lift(run) for run in out["runs"]]
        return out


def _outbound_row(run_id: str, channel: str, decision: Any, customer_id: str,
                  address: str | None, now: datetime) -> dict[str, Any]:
    """The ``outbound`` row of a decision's first given action."""
    proposal = decision.given[0]
    return {"run_id": run_id, "decision_id": decision.decision_id, "customer_id": customer_id,
            "channel": channel, "action_id": proposal.action.action_id,
            "priority": proposal.priority, "address": address,
            "language": proposal.treatment.get("language"),
            "treatment": json.dumps(proposal.treatment, ensure_ascii=False), "created_at": now}


class _Sender:
    """The messages of one campaign occurrence: built from outbound rows, delivered, and
    recorded in ``deliveries`` (inserted once, replaced only when tried again)."""

    def __init__(self, campaigns: Campaigns, name: str, config: CampaignConfig, run_id: str,
                 occurrence: str, cancelled: Callable[[], bool]) -> None:
        self.campaigns, self.name, self.config = campaigns, name, config
        self.run_id, self.occurrence, self.cancelled = run_id, occurrence, cancelled
        service = campaigns.service
        service.writer.sync()
        cur = service.cursor()
        #: customers already in this occurrence's list (not decided for again)
        self.decided = {r[0] for r in cur.execute(
            "SELECT DISTINCT customer_id FROM outbound WHERE run_id = ?", [run_id]).fetchall()}
        states = dict(cur.execute("SELECT delivery_id, status FROM deliveries WHERE "
                                  "campaign = ?", [run_id]).fetchall())
        #: accepted by a channel, or bounced: never sent again (queued or failed: again)
        self.done = {d for d, status in states.items()
                     if status in ("sent", "delivered", "bounced", "dead")}
        #: deliveries with a row already (replaced, not inserted, when recorded)
        self.rowed = set(states)
        self.channel_name, self.channel, self.limits = campaigns._channel(config)
        self.signer = campaigns._signer()
        self.tally = Tally()
        #: when each decision of the messages sent was taken (a failed one's contact goes)
        self.decided_at: dict[str, datetime] = {}

    def resume(self) -> None:
        """Send what an earlier run of this occurrence listed, a chunk at a time."""
        cur = self.campaigns.service.cursor().execute(
            "SELECT decision_id, customer_id, action_id, address, treatment, created_at "
            "FROM outbound WHERE run_id = ? ORDER BY customer_id", [self.run_id])
        names = [d[0] for d in cur.description]
        while rows := cur.fetchmany(CHUNK):
            self.send([dict(zip(names, r, strict=True)) for r in rows])

    def send(self, rows: list[dict[str, Any]]) -> None:
        public = self.campaigns.public_url
        messages = []
        for row in rows:
            did = delivery_id(self.name, self.occurrence, row["customer_id"])
            if did in self.done:
                continue
            self.decided_at[row["decision_id"]] = row["created_at"]
            fields = json.loads(row["treatment"] or "{}")
            links: dict[str, str] = {}
            if self.signer is not None and public:
                links = message_links(self.signer, public, did, row["decision_id"],
                                      self.config.channel)
                if fields.get("html"):
                    fields["html"] = track_clicks(str(fields["html"]), self.signer, public, did,
                                                  row["decision_id"], self.config.channel)
            messages.append(Message(did, row["decision_id"], row["customer_id"], self.run_id,
                                    self.channel_name, row["action_id"], str(row["address"]),
                                    fields, links))
        if not messages:
            return
        dead = None
        if self.channel_name in self.campaigns.channels and \
                self.campaigns.channels[self.channel_name].type == "webhook":
            from onetoone.channels.webhook import dead_letters

            dead = dead_letters(self.campaigns.root, self.channel_name)
        done = Deliverer(self.channel, self.limits, self._record,
                         dead_letters=dead).deliver(messages, self.cancelled)
        self._release([m for m in messages if m.delivery_id in done.failed_ids],
                      done.bounced_ids)
        for key in ("sent", "failed", "retried", "dead"):
            setattr(self.tally, key, getattr(self.tally, key) + getattr(done, key))
        for reason, count in done.errors.items():
            self.tally.errors[reason] = self.tally.errors.get(reason, 0) + count

    def _release(self, failed: list[Message], bounced: set[str]) -> None:
        """A message that failed for good was no contact: its customer's caps get it back;
        an address that bounced is not written to again."""
        from onetoone.channels.bounces import record_bounce

        service = self.campaigns.service
        for message in failed:
            profile = service._profiles.made(message.customer_id)
            when = self.decided_at.get(message.decision_id)
            if profile is not None and when is not None:
                with profile.lock:
                    service.policy.release_contact(profile, self.config.channel, when)
                    if message.delivery_id in bounced:
                        profile.bounced.add(message.to.lower())
            if message.delivery_id in bounced:
                record_bounce(service, message.customer_id, message.decision_id,
                              self.config.channel)

    def _record(self, rows: list[dict[str, Any]]) -> None:
        """New rows inserted; known ones updated, except a state a delivery report set
        meanwhile (a gateway may report ``delivered`` before its send call returns)."""
        from onetoone.interact.writer import arrow_table
        from onetoone.store import frame_view

        known = [r for r in rows if r["delivery_id"] in self.rowed]
        fresh = [r for r in rows if r["delivery_id"] not in self.rowed]
        self.rowed.update(r["delivery_id"] for r in rows)

        def work(txn: Any) -> None:
            if fresh:
                txn.insert("deliveries", fresh)
            if known:
                with frame_view(txn.cur, "_delivered", arrow_table("deliveries", known)):
                    txn.cur.execute("""
                        UPDATE deliveries d SET
                          status = CASE WHEN d.status IN ('delivered', 'bounced')
                                        THEN d.status ELSE n.status END,
                          provider_id = coalesce(n.provider_id, d.provider_id),
                          attempts = n.attempts,
                          error = CASE WHEN d.status IN ('delivered', 'bounced')
                                       THEN d.error ELSE n.error END,
                          sent_at = coalesce(d.sent_at, n.sent_at), updated_at = n.updated_at
                        FROM _delivered n WHERE d.delivery_id = n.delivery_id""")

        self.campaigns.service.writer.write(work)

    def close(self) -> None:
        self.channel.close()


def _needs_public_url(name: str, public_url: str | None) -> str:
    """The workspace's public URL, which a print channel's codes lead to."""
    if not public_url:
        raise InvalidInputError(
            f"The channel '{name}' prints QR codes of signed links to the server: set "
            "[api] public_url in onetoone.toml to the address at which phones reach "
            "'onetoone serve'.")
    return public_url


def build_channel(name: str, settings: ChannelConfig, root: Path, carries: str,
                  public_url: str | None = None, store: Store | None = None) -> Channel:
    """The adapter of ``[channels.NAME]`` (``store``: the workspace's, where a print channel
    reads the postal addresses; by default it opens the database at ``root``)."""
    if settings.type == "outbox":
        return Outbox(name, root / "outbox", email=carries == "email", sender=settings.sender)
    if settings.type == "smtp":
        from onetoone.channels.smtp import SmtpChannel

        return SmtpChannel(name, settings)
    if settings.type == "http_gateway":
        from onetoone.channels.secrets import channel_secret
        from onetoone.channels.sms import HttpGateway

        return HttpGateway(name, settings, secret=channel_secret(root), server_url=public_url)
    if settings.type == "print":
        from onetoone.channels.printing import PrintChannel, golden_records
        from onetoone.channels.secrets import channel_secret

        return PrintChannel(name, root / "outbox",
                            public_url=_needs_public_url(name, public_url),
                            secret=channel_secret(root), golden=golden_records(root, store),
                            fmt=settings.qr_format, scale=settings.qr_scale)
    from onetoone.channels.webhook import Webhook

    return Webhook(name, settings)
