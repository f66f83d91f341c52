"""``POST /v1/events``: one event or ``{"events": [...]}``, acknowledged once durable."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import Discriminator, Tag

from onetoone.api.deps import EventsWriter, ServiceDep
from onetoone.api.models import ERROR_RESPONSES, EventsOut
from onetoone.errors import PayloadTooLargeError
from onetoone.interact.events import Event, EventBatch


def _shape(value: Any) -> str:
    return "batch" if isinstance(value, dict) and "events" in value else "event"


EventsBody = Annotated[
    Annotated[Event, Tag("event")] | Annotated[EventBatch, Tag("batch")], Discriminator(_shape)
]

router = APIRouter(prefix="/v1/events", tags=["events"], responses=ERROR_RESPONSES)


@router.post("", response_model=EventsOut)
def post_events(body: EventsBody, service: ServiceDep, _: EventsWriter) -> EventsOut:
    """Append events; sending the same ``event_id`` again is harmless (counted once)."""
    events = body.events if isinstance(body, EventBatch) else [body]
    limit = service.config.api.max_events_per_request
    if len(events) > limit:
        raise PayloadTooLargeError(f"At most {limit} events per request.", hint="Split the batch.")
    return EventsOut(**service.ingest_events(events))
