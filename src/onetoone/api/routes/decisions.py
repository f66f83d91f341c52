"""Decisions: next best action out, responses in."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

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
def decide(body: DecisionRequest, service: ServiceDep, _: Decider) -> dict[str, Any]:
    """The next best action(s) for a customer on a channel; ``actions`` is empty when nothing
    should be done."""
    return service.decide(body.customer, body.channel, body.context)


@router.post("/{decision_id}/responses", response_model=ResponseOut)
def respond(
    decision_id: Annotated[str, Path(min_length=1, max_length=64)],
    body: ResponseIn,
    service: ServiceDep,
    _: Decider,
) -> dict[str, Any]:
    """What the customer did; the action's propensity learns from it at once."""
    return service.respond(decision_id, body.response, body.value, body.action, body.occurred_at)
