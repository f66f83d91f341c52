"""A demo campaign and the customers' simulated answers, drawn from the ground truth.

:func:`run_demo_campaign` runs a campaign of the demo's catalog (``winback``) into the outbox,
on the first Tuesday after the exports end, then :func:`simulate_answers` draws what each
customer of the campaign does in the following ``[control_groups] window_days``, from the true
behaviour of the person behind the customer (``truth/people.parquet``):

- a customer sent a message converts with ``p_response_treated``, one of the control group
  (held out, or in the universal control group) with ``p_response_control``: persuadables
  convert more when contacted, sure things either way, lost causes (almost) never,
  do-not-disturbs less when contacted;
- opens follow the person's ``email_open_rate``; 70 % of the converted click first, 12 % of
  the other openers click; an opener who does not click unsubscribes with probability 15 %
  (do-not-disturbs) or 0.5 % (the others);
- a conversion is a purchase (``Gamma(spend_shape, 1 / spend_rate)`` euros, on the web after
  a click, else on the web or in store by ``web_share``) in the window after the decision.

Answers are recorded as the tracking links and the shop would: opens, clicks and unsubscribes
as responses and interactions of the decision, an unsubscribe also as a withdrawn e-mail
marketing consent, and every conversion as a purchase (``transactions``, where the lift finds
it for treated and control customers alike) and, for those sent a message, a ``conversion``
response with its amount. Same seed, same answers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from onetoone.clock import utcnow
from onetoone.demo._catalog import WINBACK

#: the workspace (``onetoone.workspace.Workspace``; not imported: the workspace imports the
#: demo's truth)
Workspace = Any

CLICK_GIVEN_CONVERSION = 0.7
CLICK_GIVEN_OPEN = 0.12
UNSUBSCRIBE_GIVEN_OPEN = {"do_not_disturb": 0.15}
UNSUBSCRIBE_OTHERWISE = 0.005
#: hours: mean delay of an open after the send, of a click after the open, of a purchase after
#: the click
OPEN_HOURS, CLICK_HOURS, PURCHASE_HOURS = 6.0, 0.1, 20.0
_STREAM = 0x43414D50  # "CAMP": the answers' own random stream of the demo seed
_PEOPLE = ["uplift_type", "p_response_control", "p_response_treated", "email_open_rate",
           "spend_shape", "spend_rate", "web_share"]


@dataclass
class Answers:
    """What the simulated customers did (``true_lift``: the mean of ``p_response_treated -
    p_response_control`` over the customers sent a message, the lift expected)."""

    run_id: str
    sent: int = 0
    opened: int = 0
    clicked: int = 0
    converted: int = 0
    unsubscribed: int = 0
    revenue: float = 0.0
    control: int = 0
    control_converted: int = 0
    control_revenue: float = 0.0
    unmatched: int = 0
    true_lift: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def campaign_time(end: date, window_days: int) -> datetime:
    """When the demo's campaign runs (naive UTC): the first Tuesday after ``end`` at 09:00
    UTC; earlier when that would leave its answers in the future."""
    day = end + timedelta(days=1)
    day += timedelta(days=(1 - day.weekday()) % 7)
    when = datetime.combine(day, time(9, 0))
    latest = utcnow() - timedelta(days=window_days + 1)
    return min(when, latest.replace(minute=0, second=0, microsecond=0))


def run_demo_campaign(ws: Workspace, truth: Path, seed: int, end: date,
                      name: str = WINBACK) -> tuple[dict[str, Any], Answers]:
    """Run the campaign ``name`` as of the demo's :func:`campaign_time`, then simulate and
    record its answers; (the run's result, the answers)."""
    window = ws.config.control_groups.window_days
    result = ws.campaigns.run(name, now=campaign_time(end, window))
    return result, simulate_answers(ws, result["run_id"], truth, seed, window)


def simulate_answers(ws: Workspace, run_id: str, truth: Path, seed: int,
                     window_days: int = 14) -> Answers:
    """Draw and record the answers of the customers of the campaign run ``run_id`` (see the
    module docstring)."""
    from onetoone.demo.truth import person_of_customers

    service = ws.decisions
    service.writer.sync()
    cur = service.cursor()
    sent = cur.execute("""
        SELECT o.decision_id, o.customer_id, o.created_at FROM outbound o
        WHERE o.run_id = ? AND EXISTS (SELECT 1 FROM deliveries v WHERE v.campaign = o.run_id
              AND v.decision_id = o.decision_id AND v.status IN ('sent', 'delivered'))
        ORDER BY o.customer_id""", [run_id]).df()
    control = cur.execute("""
        SELECT customer_id, min(decided_at) AS decided_at FROM decisions
        WHERE context->'context'->>'campaign' = ? AND action_id IS NOT NULL
        GROUP BY customer_id HAVING bool_and(control_group IS NOT NULL)
        ORDER BY customer_id""", [run_id]).df()
    out = Answers(run_id, sent=len(sent), control=len(control))
    if sent.empty and control.empty:
        return out
    person = person_of_customers(ws.store, truth)
    people = pd.read_parquet(truth / "people.parquet", columns=["person_id", *_PEOPLE]
                             ).set_index("person_id")
    rng = np.random.default_rng([seed, _STREAM])

    def truth_of(customers: pd.Series) -> pd.DataFrame:
        found = people.reindex(person.reindex(customers.to_numpy()).to_numpy())
        found.index = customers.index
        return found

    def amounts(rows: pd.DataFrame) -> np.ndarray:
        drawn = rng.gamma(rows["spend_shape"].fillna(3.0).to_numpy(),
                          1.0 / rows["spend_rate"].fillna(0.05).to_numpy())
        return np.round(np.maximum(drawn, 1.0), 2)

    events: list[Any] = []
    responses: list[tuple[str, str, float | None, datetime]] = []
    unsubscribes: list[tuple[str, datetime]] = []

    # -- the customers sent a message -------------------------------------------------
    t = truth_of(sent["customer_id"])
    known = t["p_response_treated"].notna().to_numpy()
    out.unmatched += int((~known).sum())
    n = len(t)
    u = rng.random((n, 5))
    p1 = t["p_response_treated"].fillna(0.0).to_numpy()
    open_rate = t["email_open_rate"].fillna(0.0).to_numpy()
    converted = known & (u[:, 0] < p1)
    reads = known & (u[:, 2] < open_rate)
    clicked = np.where(converted, u[:, 1] < CLICK_GIVEN_CONVERSION,
                       reads & (u[:, 1] < CLICK_GIVEN_OPEN))
    opened = reads | clicked
    p_unsub = t["uplift_type"].map(UNSUBSCRIBE_GIVEN_OPEN).fillna(UNSUBSCRIBE_OTHERWISE)
    unsubscribed = opened & ~clicked & (u[:, 3] < p_unsub.to_numpy())
    spend = amounts(t)
    web = clicked | (u[:, 4] < t["web_share"].fillna(0.5).to_numpy())
    open_after = rng.exponential(OPEN_HOURS, n)
    click_after = open_after + rng.exponential(CLICK_HOURS, n)
    buy_after = np.where(clicked, click_after + rng.exponential(PURCHASE_HOURS, n),
                         rng.uniform(1.0, window_days * 24.0 - 1.0, n))
    last = window_days * 24.0 - 1.0
    for i, row in enumerate(sent.itertuples(index=False)):
        t0 = _utc(row.created_at)
        decision, customer = str(row.decision_id), str(row.customer_id)
        if opened[i]:
            when = t0 + timedelta(hours=min(open_after[i], last))
            events.append(_event("open", decision, customer, when, run_id))
            responses.append((decision, "impression", None, when))
        if clicked[i]:
            when = t0 + timedelta(hours=min(click_after[i], last))
            events.append(_event("click", decision, customer, when, run_id))
            responses.append((decision, "click", None, when))
        if unsubscribed[i]:
            when = t0 + timedelta(hours=min(open_after[i] + 0.05, last))
            events.append(_event("unsubscribe", decision, customer, when, run_id))
            responses.append((decision, "reject", None, when))
            unsubscribes.append((customer, when))
        if converted[i]:
            when = t0 + timedelta(hours=min(buy_after[i], last))
            events.append(_purchase(f"{run_id}:{customer}", customer, when, float(spend[i]),
                                    "web" if web[i] else "store"))
            responses.append((decision, "conversion", float(spend[i]), when))
    out.opened, out.clicked = int(opened.sum()), int(clicked.sum())
    out.converted, out.unsubscribed = int(converted.sum()), int(unsubscribed.sum())
    out.revenue = round(float(spend[converted].sum()), 2)
    if known.any():
        gain = p1 - t["p_response_control"].fillna(0.0).to_numpy()
        out.true_lift = float(gain[known].mean())

    # -- the control group: the same draw of a purchase, without the message ----------
    c = truth_of(control["customer_id"])
    known_c = c["p_response_control"].notna().to_numpy()
    out.unmatched += int((~known_c).sum())
    m = len(c)
    uc = rng.random((m, 2))
    bought = known_c & (uc[:, 0] < c["p_response_control"].fillna(0.0).to_numpy())
    spend_c = amounts(c)
    web_c = uc[:, 1] < c["web_share"].fillna(0.5).to_numpy()
    after = rng.uniform(1.0, window_days * 24.0 - 1.0, m)
    for i, row in enumerate(control.itertuples(index=False)):
        if bought[i]:
            customer = str(row.customer_id)
            when = _utc(row.decided_at) + timedelta(hours=float(after[i]))
            events.append(_purchase(f"{run_id}:{customer}", customer, when,
                                    float(spend_c[i]), "web" if web_c[i] else "store"))
    out.control_converted = int(bought.sum())
    out.control_revenue = round(float(spend_c[bought].sum()), 2)
    _record(ws, events, responses, unsubscribes)
    return out


def campaign_rows(status: dict[str, Any], answers: Answers) -> list[tuple[str, Any]]:
    """The lines of the demo's campaign summary: the campaign's counts
    (``Campaigns.status``), the revenue drawn and the lift the truth expects."""
    rows: list[tuple[str, Any]] = [
        ("selected", status["selected"]), ("held out (control group)", status["held_out"]),
        ("sent (outbox/email/)", status["sent"]), ("opened", status["opened"]),
        ("clicked", status["clicked"]), ("converted", status["converted"]),
        ("unsubscribed", status["unsubscribed"]),
        ("revenue of the contacted", f"{answers.revenue:,.2f}"),
        ("control customers who bought", f"{answers.control_converted:,} of "
                                         f"{answers.control:,}")]
    if answers.true_lift is not None:
        rows.append(("true lift (from the truth)", f"{100 * answers.true_lift:+.1f} %"))
    return rows


def _record(ws: Workspace, events: list[Any], responses: list[tuple[str, str, float | None,
                                                                    datetime]],
            unsubscribes: list[tuple[str, datetime]]) -> None:
    """Through the decision service, as the tracking links and the shop would."""
    from onetoone.interact.events import Consent

    service = ws.decisions
    if events:
        service.ingest_events(events)
    for decision, response, value, when in sorted(responses, key=lambda r: r[3]):
        service.respond(decision, response, value=value, occurred_at=when)
    for customer, when in unsubscribes:
        service.set_consent(customer, Consent(channel="email", purpose="marketing",
                                              granted=False, occurred_at=when),
                            actor="demo:unsubscribe")
    service.writer.sync()


def _utc(value: Any) -> datetime:
    """A naive UTC time of the tables as an aware one."""
    return pd.Timestamp(value).to_pydatetime().replace(tzinfo=UTC)


def _event(kind: str, decision: str, customer: str, when: datetime, run_id: str) -> Any:
    from onetoone.interact.events import Event

    return Event(event_id=f"demo-{kind}-{decision}", occurred_at=when,
                 customer={"customer_id": customer}, channel="email", type=kind,
                 properties={"decision_id": decision, "direction": "inbound",
                             "campaign_id": run_id})


def _purchase(key: str, customer: str, when: datetime, amount: float, channel: str) -> Any:
    from onetoone.interact.events import Event

    return Event(event_id=f"demo-purchase-{key}", occurred_at=when,
                 customer={"customer_id": customer}, channel=channel, type="purchase",
                 properties={"amount": amount, "currency": "EUR"})
