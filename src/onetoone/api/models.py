"""Request and response bodies of the REST API (events and consents live in
:mod:`onetoone.interact.events`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from onetoone.interact.events import (
    Code,
    CustomerRef,
    ResponseKind,
    check_customer,
    check_text,
    check_when,
)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No API key, or an invalid one."},
    403: {"description": "The key lacks the scope."},
    404: {"description": "Unknown customer or decision."},
    413: {"description": "Request too large."},
    422: {"description": "Invalid input."},
}


class DecisionRequest(BaseModel):
    """Ask for the next best action of a customer on a channel."""

    model_config = ConfigDict(extra="forbid")

    customer: CustomerRef
    channel: Code
    context: dict[str, Any] = Field(default_factory=dict)

    _customer = field_validator("customer")(check_customer)

    @field_validator("context")
    @classmethod
    def _context(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_text(value, "context")
        if len(value) > 50:
            raise ValueError("context may hold at most 50 keys")
        return value


class ActionOut(BaseModel):
    action: str
    treatment: dict[str, Any]
    priority: float


class DecisionOut(BaseModel):
    decision_id: str
    customer_id: str
    actions: list[ActionOut]
    #: on call_centre and store: who the customer is, why each action, their history
    briefing: dict[str, Any] | None = None


class ResponseIn(BaseModel):
    """What the customer did with a decision."""

    model_config = ConfigDict(extra="forbid")

    response: ResponseKind
    value: Annotated[float, Field(allow_inf_nan=False, ge=-1e12, le=1e12)] | None = None
    action: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    occurred_at: datetime | None = None

    _when = field_validator("occurred_at")(check_when)


class ResponseOut(BaseModel):
    decision_id: str
    action: str | None
    response: str
    learned: bool
    propensity: float | None = None
    #: the same response was recorded already (a retry): nothing was added
    duplicate: bool = False


class EventsOut(BaseModel):
    received: int
    accepted: int
    duplicates: int
    #: purchases among them that converted a campaign's message (docs/campaigns.md)
    conversions: int = 0


class ConsentOut(BaseModel):
    channel: str
    purpose: str
    granted: bool
    occurred_at: str


class ConsentsOut(BaseModel):
    customer_id: str
    consents: list[ConsentOut]


class _Expiry(BaseModel):
    """When a new key expires: after ``expires_in_days`` or at ``expires_at`` (UTC without an
    offset); neither: never."""

    model_config = ConfigDict(extra="forbid")

    expires_in_days: float | None = Field(None, gt=0, le=36_500)
    expires_at: datetime | None = None

    @model_validator(mode="after")
    def _one(self) -> _Expiry:
        if self.expires_in_days is not None and self.expires_at is not None:
            raise ValueError("give expires_in_days or expires_at, not both")
        return self

    def expiry(self, now: datetime) -> datetime | None:
        if self.expires_in_days is not None:
            return now + timedelta(days=self.expires_in_days)
        return self.expires_at


class KeyIn(_Expiry):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
    scopes: list[Annotated[str, StringConstraints(max_length=40)]] = Field(
        min_length=1, max_length=4
    )


class KeyRotateIn(_Expiry):
    """Rotate a key: the old secret stays valid ``grace_days`` more; the new one expires as
    given, else after the lifetime of the old one."""

    grace_days: float = Field(7.0, ge=0, le=365)


class KeyOut(BaseModel):
    name: str
    scopes: list[str]
    key: str
    expires_at: datetime | None = None


class KeyRotatedOut(KeyOut):
    #: when the old secret stops being valid
    previous_expires_at: datetime
