"""Events sent by channels in real time, validated, and the table rows they become.

An event names its customer by ``customer_id`` or by identifiers (``email``, ``phone``,
``loyalty_card``...). ``type: "purchase"`` with ``properties.amount`` lands in ``transactions``,
anything else in ``interactions``; both keep the ``event_id`` that makes sending twice harmless.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
IdentifierType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=256)]

MAX_PROPERTY_DEPTH = 8
_BAD_CHARS = re.compile(r"[\x00\ud800-\udfff]")

#: A customer reference: ``{"customer_id": "C..."}`` or identifiers ``{"email": "..."}``.
CustomerRef = Annotated[dict[IdentifierType, Text], Field(min_length=1, max_length=20)]


def check_text(value: Any, where: str = "value", depth: int = 0) -> Any:
    """Refuse what the database cannot store: NUL, lone surrogates, NaN, deep nesting."""
    if depth > MAX_PROPERTY_DEPTH:
        raise ValueError(f"{where} is nested more than {MAX_PROPERTY_DEPTH} levels deep")
    if isinstance(value, str):
        if _BAD_CHARS.search(value):
            raise ValueError(
                f"{where} holds a character that is not allowed (NUL or a lone surrogate)"
            )
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} must be a finite number")
    elif isinstance(value, bool | int | type(None)):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63 - 1:
            raise ValueError(f"{where} is too large a number")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, where, depth + 1)
            check_text(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_text(item, f"{where}[{i}]", depth + 1)
    return value


def check_customer(value: dict[str, str]) -> dict[str, str]:
    for key, text in value.items():
        check_text(text, f"customer.{key}")
    return value


def check_when(value: datetime | None) -> datetime | None:
    if value is not None and not 1900 <= value.year <= 2200:
        raise ValueError("must be a date between the years 1900 and 2200")
    return value


class Event(BaseModel):
    """One event: something a customer did or a channel did to them."""

    model_config = ConfigDict(extra="forbid")

    event_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    occurred_at: datetime
    customer: CustomerRef
    channel: Code
    type: Code
    properties: dict[str, Any] = Field(default_factory=dict)

    _customer = field_validator("customer")(check_customer)
    _when = field_validator("occurred_at")(check_when)

    @field_validator("event_id")
    @classmethod
    def _event_id(cls, value: str) -> str:
        return check_text(value, "event_id")

    @field_validator("properties")
    @classmethod
    def _properties(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_text(value, "properties")
        if len(json.dumps(value)) > 64_000:
            raise ValueError("properties may hold at most 64 kB of JSON")
        return value

    @model_validator(mode="after")
    def _purchase_amount(self) -> Event:
        if self.type == "purchase":
            amount = self.properties.get("amount")
            if (
                isinstance(amount, bool)
                or not isinstance(amount, int | float)
                or abs(amount) >= 1e15
            ):
                raise ValueError("a purchase event needs properties.amount, a number")
        return self


class EventBatch(BaseModel):
    """Several events in one request (one transaction, one acknowledgement)."""

    model_config = ConfigDict(extra="forbid")

    events: list[Event] = Field(min_length=1)


class Consent(BaseModel):
    """A consent given or withdrawn."""

    model_config = ConfigDict(extra="forbid")

    channel: Code
    purpose: Code = "marketing"
    granted: bool
    occurred_at: datetime | None = None

    _when = field_validator("occurred_at")(check_when)


ResponseKind = Literal["impression", "click", "accept", "reject", "ignore", "conversion"]


def utc_naive(value: datetime, default_zone: str) -> datetime:
    """UTC without time zone, as the tables store times; naive input is in ``default_zone``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(default_zone))
    return value.astimezone(UTC).replace(tzinfo=None)


_RESERVED = (
    "direction",
    "campaign_id",
    "decision_id",
    "text",
    "amount",
    "currency",
    "store_id",
    "status",
)


def event_row(
    event: Event, customer_id: str, record_key: str | None, timezone: str, currency: str
) -> tuple[str, dict[str, Any]]:
    """The table an event goes to and its row."""
    props = event.properties
    attributes = {k: v for k, v in props.items() if k not in _RESERVED}
    row: dict[str, Any] = {
        "record_key": f"api:{event.event_id}",
        "source": "api",
        "source_id": event.event_id,
        "occurred_at": utc_naive(event.occurred_at, timezone),
        "channel": event.channel,
        "customer_record_key": record_key,
        "customer_id": customer_id,
        "event_id": event.event_id,
        "attributes": json.dumps(attributes, ensure_ascii=False) if attributes else None,
    }
    if event.type == "purchase":
        row.update(
            amount=float(props["amount"]),
            currency=str(props.get("currency") or currency).upper()[:3],
            store_id=_opt(props.get("store_id")),
            status=str(props.get("status") or "paid").lower(),
        )
        return "transactions", row
    row.update(
        type=event.type,
        direction=direction_of(event),
        campaign_id=_opt(props.get("campaign_id")),
        decision_id=_opt(props.get("decision_id")),
        text=_opt(props.get("text")),
    )
    return "interactions", row


def direction_of(event: Event) -> str:
    given = event.properties.get("direction")
    if given in ("inbound", "outbound"):
        return str(given)
    return "outbound" if event.type in ("sent", "delivered", "call_out") else "inbound"


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)
