"""Triggers (``[triggers.NAME]``, docs/campaigns.md): an event (a complaint, an abandoned
basket, a negative review, a first purchase) makes each campaign whose ``schedule`` is
``"trigger:NAME"`` decide and deliver for the customer who did it, after the trigger's delay,
under the same consent, contact policy and control group as any campaign.

The server looks every few seconds for the events that became due (their time plus the
delay) within ``within_hours``; each event is one occurrence of the campaign, so a customer
gets at most one message per event, and an event already decided for (a decision names its
occurrence) is not taken again after a restart. Events come from the API or from ingested
exports alike.
"""

from __future__ import annotations

import logging
import re
import threading
from datetime import datetime, timedelta
from typing import Any

from onetoone.channels.settings import TriggerConfig
from onetoone.clock import utcnow
from onetoone.errors import OneToOneError

log = logging.getLogger("onetoone.triggers")

#: seconds between two looks for due events
POLL_SECONDS = 5.0


class Triggers:
    """Runs the triggered campaigns of a served workspace (``ws``: its Workspace, which
    gives ``decisions`` and ``campaigns``)."""

    def __init__(self, ws: Any, triggers: dict[str, TriggerConfig]) -> None:
        self.ws = ws
        self.triggers = triggers
        self._seen: set[str] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def plans(self) -> list[tuple[str, str]]:
        """(campaign, trigger) of every triggered campaign, the file's and those created
        through the API since (read at each look)."""
        return [(name, c.schedule.removeprefix("trigger:"))
                for name, c in self.ws.campaigns.configs.items()
                if c.schedule.startswith("trigger:")]

    def start(self) -> Triggers:
        if self.triggers:
            self._thread = threading.Thread(target=self._loop, name="onetoone-triggers",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self.tick()
            except Exception as exc:  # a bug: this look is lost, the next one comes
                log.error("triggers: %s", type(exc).__name__)

    def _handled(self) -> set[str]:
        """The occurrences (run ids) already decided for, read once from the decisions."""
        if self._seen is None:
            cur = self.ws.decisions.cursor()
            self._seen = {r[0] for r in cur.execute(
                "SELECT DISTINCT context->'context'->>'campaign' FROM decisions WHERE "
                "context->'context'->>'trigger' IS NOT NULL").fetchall() if r[0]}
        return self._seen

    def tick(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Run the triggered campaigns for the events due at ``now``; what each did."""
        now = now or utcnow()
        service = self.ws.decisions
        service.writer.sync()
        seen = self._handled()
        done = []
        for campaign, name in self.plans():
            trigger = self.triggers[name]
            due = now - timedelta(minutes=trigger.delay_minutes)
            for event_id, customer_id in _due_events(service.cursor(), trigger,
                                                     due - timedelta(hours=trigger.within_hours),
                                                     due):
                occurrence = f"{name}-{_safe(event_id)}"
                run_id = f"{campaign}:{occurrence}"
                if run_id in seen or self._stop.is_set():
                    continue
                seen.add(run_id)
                try:
                    result = self.ws.campaigns.run_for(
                        campaign, customer_id, occurrence,
                        context={"trigger": name, "event_id": event_id}, now=now)
                except OneToOneError as exc:
                    log.warning("triggers: %s not run for an event: %s", campaign,
                                type(exc).__name__)
                    continue
                done.append(result)
        return done


def _due_events(cur: Any, trigger: TriggerConfig, since: datetime,
                until: datetime) -> list[tuple[str, str]]:
    """(event id, customer id) of the trigger's events between ``since`` and ``until``."""
    if trigger.event in ("purchase", "first_purchase"):
        first = ("AND (customer_id, occurred_at) IN (SELECT customer_id, min(occurred_at) "
                 "FROM transactions GROUP BY customer_id)"
                 if trigger.event == "first_purchase" else "")
        channel = "AND channel = ?" if trigger.channel else ""
        sql = (f"SELECT coalesce(event_id, record_key), customer_id FROM transactions "
               f"WHERE customer_id IS NOT NULL AND occurred_at > ? AND occurred_at <= ? "
               f"{channel} {first} ORDER BY occurred_at")
    else:
        channel = "AND channel = ?" if trigger.channel else ""
        sql = (f"SELECT coalesce(event_id, record_key), customer_id FROM interactions "
               f"WHERE type = ? AND customer_id IS NOT NULL AND occurred_at > ? "
               f"AND occurred_at <= ? {channel} ORDER BY occurred_at")
    params: list[Any] = [] if trigger.event in ("purchase", "first_purchase") \
        else [trigger.event]
    params += [since, until]
    if trigger.channel:
        params.append(trigger.channel)
    return [(str(e), str(c)) for e, c in cur.execute(sql, params).fetchall()]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.#-]", "_", text)[:120]
