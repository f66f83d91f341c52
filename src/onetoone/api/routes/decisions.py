"""Decisions: next best action out, responses in."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from starlette.concurrency import run_in_threadpool

from onetoone.api.deps import Decider, ServiceDep, WorkspaceDep
from onetoone.api.models import (
    ERROR_RESPONSES,
    DecisionOut,
    DecisionRequest,
    ResponseIn,
    ResponseOut,
)

router = APIRouter(prefix="/v1/decisions", tags=["decisions"], responses=ERROR_RESPONSES)


#: channels where an employee talks to the customer: the answer briefs them
ASSISTED = ("call_centre", "store")


@router.post("", response_model=DecisionOut)
async def decide(body: DecisionRequest, service: ServiceDep, ws: WorkspaceDep,
                 key: Decider) -> Any:
    """The next best action(s) for a customer on a channel; ``actions`` is empty when nothing
    should be done. On ``call_centre`` and ``store`` the answer also carries a ``briefing``
    for the employee: who the customer is (value tier, defection risk and its reasons, needs
    segment), why each action (propensity, value, lever) and their recent history on every
    channel, so that they say what the e-mail would (one brand promise); audited."""
    # A known customer whose profile is in memory is decided on the event loop (no database
    # read, a fraction of a millisecond; a contact is answered once its commit is done);
    # anything else goes through the thread pool.
    decided = service.decide_in_memory(body.customer, body.channel, body.context)
    if decided is not None:
        payload, commit = decided
        if commit is not None:
            await asyncio.wrap_future(commit)
    else:
        payload = await run_in_threadpool(
            service.decide, body.customer, body.channel, body.context
        )
    if body.channel in ASSISTED:
        payload = {**payload, "briefing": await run_in_threadpool(
            service.briefing, payload["customer_id"], payload["decision_id"])}
        ws.audit(f"key:{key.name}", "customer.read", payload["customer_id"],
                 view=f"briefing:{body.channel}")
    return Response(
        json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode(),
        media_type="application/json",
    )


@router.post("/{decision_id}/responses", response_model=ResponseOut)
def respond(
    decision_id: Annotated[str, Path(min_length=1, max_length=64)],
    body: ResponseIn,
    service: ServiceDep,
    _: Decider,
) -> dict[str, Any]:
    """What the customer did; the action's propensity learns from it at once."""
    return service.respond(decision_id, body.response, body.value, body.action, body.occurred_at)
