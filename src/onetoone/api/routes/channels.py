"""Callbacks of SMS gateways (docs/channels.md): delivery reports and inbound messages; and
the bounces of e-mail channels that relays forward by HTTP.

Gateways call them with GET and cannot send an API key: each URL carries a token, an HMAC
under the workspace's channel secret (:func:`onetoone.channels.sms.callback_token`). A missing
or forged token is a 404, as for a route that does not exist. The answers are empty
``text/plain`` bodies: Kannel would send a non-empty answer to an inbound message back to its
sender as a reply. A bounce is posted with an API key of scope ``events:write``.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from onetoone.api.deps import EventsWriter, WorkspaceDep
from onetoone.channels.bounces import MAX_MESSAGE_BYTES, apply_message
from onetoone.channels.secrets import channel_secret
from onetoone.channels.sms import (
    clean_text,
    customers_with_phone,
    dlr_status,
    is_stop,
    report_delivery,
    valid_token,
)
from onetoone.clock import utcnow
from onetoone.errors import InvalidInputError, NotFoundError, PayloadTooLargeError
from onetoone.interact.events import Consent, Event

router = APIRouter(prefix="/v1/channels", tags=["channels"])
log = logging.getLogger("onetoone.channels")

#: characters of an inbound text kept in ``interactions.text``
INBOUND_TEXT_KEPT = 1600

Param = Annotated[str | None, Query()]


def _empty() -> PlainTextResponse:
    return PlainTextResponse("")


def _not_found() -> NotFoundError:
    return NotFoundError("Not found.")


@router.get("/sms/dlr", response_class=PlainTextResponse,
            responses={404: {"description": "Unknown delivery, or a missing or forged token."},
                       422: {"description": "Unknown delivery report type."}})
def sms_delivery_report(
    ws: WorkspaceDep,
    delivery_id: Annotated[str | None, Query(description="The message's delivery id.")] = None,
    status: Annotated[str | None, Query(description="Kannel's report type (`%d`): 1 "
                                        "delivered, 2 not delivered, 4 buffered, 8 accepted "
                                        "by the SMS centre, 16 refused by it.")] = None,
    token: Annotated[str | None, Query(description="The delivery's callback token.")] = None,
) -> PlainTextResponse:
    """A delivery report: sets the delivery's status (``delivered``, ``bounced``, ``sent``,
    ``failed``)."""
    if not delivery_id or not valid_token(channel_secret(ws.root), delivery_id, token):
        raise _not_found()
    try:
        new_status = dlr_status(int((status or "").strip()))
    except ValueError:
        raise InvalidInputError("status must be a Kannel delivery report type (1, 2, 4, 8 "
                                "or 16).") from None
    found = ws.decisions.writer.write(report_delivery(delivery_id, new_status, utcnow()))
    if not found:
        raise NotFoundError("No such delivery.")
    return _empty()


@router.get("/sms/inbound", response_class=PlainTextResponse,
            responses={404: {"description": "A missing or forged token."},
                       422: {"description": "The sender is not a phone number."}})
def sms_inbound(
    ws: WorkspaceDep,
    sender: Annotated[str | None, Query(alias="from", description="The sender's phone "
                                        "number (Kannel's `%p`).")] = None,
    text: Annotated[str | None, Query(description="The message (Kannel's `%a`).")] = None,
    token: Annotated[str | None, Query(description="The inbound callback token.")] = None,
    message_id: Annotated[str | None, Query(alias="id", description="The gateway's message "
                                            "id (Kannel's `%I`): a message received twice "
                                            "is recorded once.")] = None,
) -> PlainTextResponse:
    """An inbound SMS: an interaction of its sender (type ``reply``, or ``stop``); a STOP
    withdraws SMS consent for every purpose of each customer carrying the number."""
    if not valid_token(channel_secret(ws.root), "inbound", token):
        raise _not_found()
    if not sender or not sender.strip():
        raise InvalidInputError("from must be the sender's phone number.")
    body = clean_text(text or "")[:INBOUND_TEXT_KEPT]
    stop = is_stop(body)
    event_id = f"sms-in-{message_id.strip()}" if message_id and message_id.strip() \
        else f"sms-in-{uuid.uuid4().hex}"
    try:
        event = Event(event_id=event_id[:200], occurred_at=datetime.now(UTC),
                      customer={"phone": sender.strip()}, channel="sms",
                      type="stop" if stop else "reply",
                      properties={"direction": "inbound", **({"text": body} if body else {})})
    except ValidationError:
        raise InvalidInputError("from must be the sender's phone number.") from None
    service = ws.decisions
    service.ingest_events([event])  # an unknown number becomes a customer (a reference)
    if stop:
        customers = {service.find_customer({"phone": sender.strip()})}
        phone = service.resolver.normalize([("phone", sender.strip())])
        normalized = next(iter(phone.values()))
        if normalized:
            customers.update(customers_with_phone(service.cursor(), normalized))
        withdrawn = Consent(channel="sms", purpose="all", granted=False)
        for customer_id in sorted(customers):
            service.set_consent(customer_id, withdrawn, actor="channel:sms")
        log.info("sms STOP: consent withdrawn for %d customer(s)", len(customers))
    return _empty()


@router.post("/{name}/bounces",
             responses={404: {"description": "No channel of type smtp by this name."},
                        413: {"description": "A message over 1 MiB."},
                        422: {"description": "An empty body."}},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "message/rfc822": {"schema": {"type": "string", "format": "binary"}}}}})
async def channel_bounce(
    name: Annotated[str, PathParam(min_length=1, max_length=100,
                                   description="The channel (`[channels.NAME]`, of type "
                                   "smtp) whose message bounced.")],
    request: Request, ws: WorkspaceDep, _: EventsWriter,
) -> dict[str, int]:
    """One message received at the channel's return path (a delivery status notification,
    RFC 3464), as a relay forwards it: applied as ``onetoone campaign bounces`` applies the
    messages of a bounce mailbox (docs/channels.md#bounces). The counts: ``bounced``,
    ``soft``, ``unmatched``, ``already`` (applied before: nothing changes), ``replies`` (a
    customer's answer to a campaign's e-mail, recorded), ``other``."""
    config = ws.config.channels.get(name)
    if config is None or config.type != "smtp":
        raise NotFoundError(f"No channel '{name}' of type smtp.")
    too_large = PayloadTooLargeError(f"A bounce is at most {MAX_MESSAGE_BYTES} bytes.",
                                     hint="Post the report with the original's headers only.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_MESSAGE_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_MESSAGE_BYTES:
            raise too_large
    if not bytes(body).strip():
        raise InvalidInputError("The body must be one e-mail message (message/rfc822).")
    tally = await run_in_threadpool(apply_message, ws.decisions, bytes(body),
                                    config.return_path)
    return tally.summary()
