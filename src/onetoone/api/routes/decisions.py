"""Decisions: next best action out, responses in."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from starlette.concurrency import run_in_threadpool

from onetoone.api.deps import Decider, ServiceDep
from onetoone.api.models import (
    ERROR_RESPONSES,
    DecisionOut,
    DecisionRequest,
    ResponseIn,
    ResponseOut,
)

router = APIRouter(prefix="/v1/decisions", tags=["decisions"], responses=ERROR_RESPONSES)


@router.post("", response_model=DecisionOut)
async def decide(body: DecisionRequest, service: ServiceDep, _: Decider) -> Any:
    """The next best action(s) for a customer on a channel; ``actions`` is empty when nothing
    should be done."""
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
    return Response(
        json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode(),
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
