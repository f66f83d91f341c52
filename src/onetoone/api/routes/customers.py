"""Customers: the 360 view (by id or by identifier), the identity view, and consents."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from onetoone.api.deps import AnyKey, CustomersReader, ServiceDep, WorkspaceDep
from onetoone.api.models import ERROR_RESPONSES, ConsentsOut
from onetoone.errors import PermissionDeniedError
from onetoone.interact.events import Consent

router = APIRouter(prefix="/v1/customers", tags=["customers"], responses=ERROR_RESPONSES)

CustomerId = Annotated[str, Path(min_length=1, max_length=64)]


@router.get("")
def find_customer(
    service: ServiceDep,
    _: CustomersReader,
    identifier: Annotated[
        str,
        Query(min_length=3, max_length=300, description="TYPE:VALUE, e.g. email:marie@exemple.fr"),
    ],
) -> dict[str, Any]:
    """The customer carrying an identifier (same answer as by id)."""
    customer_id = service.find_customer(service.identifier_ref(identifier))
    return service.customer_view(customer_id)


@router.get("/{customer_id}")
def get_customer(
    customer_id: CustomerId, service: ServiceDep, _: CustomersReader
) -> dict[str, Any]:
    """Golden record, scores, consents, recent interactions on every channel, last decisions."""
    return service.customer_view(service.find_customer({"customer_id": customer_id}))


@router.get("/{customer_id}/identity")
def get_identity(
    customer_id: CustomerId, ws: WorkspaceDep, _: CustomersReader, why: bool = False
) -> dict[str, Any]:
    """The customer's golden record and source records (how each was linked); with ``why``,
    the evidence that makes them one and why related records are not, as sentences."""
    with ws.reader() as view:
        return view.identity.explain(customer_id, why=why)


@router.get("/identity/reviews")
def get_reviews(ws: WorkspaceDep, _: CustomersReader) -> dict[str, Any]:
    """The pairs of records waiting for a person (``onetoone identify review``): each pair,
    its match probability and its evidence."""
    with ws.reader() as view:
        return {"pairs": [
            {"left": left, "right": right, "probability": prob, "evidence": evidence}
            for left, right, prob, evidence in view.identity.pending_reviews()]}


@router.put("/{customer_id}/consents", response_model=ConsentsOut)
def put_consent(
    customer_id: CustomerId, body: Consent, service: ServiceDep, key: AnyKey
) -> dict[str, Any]:
    """Give or withdraw consent for a channel and purpose (history kept in ``consents``).
    Withdrawing needs ``events:write`` or ``consents:write``; granting, ``consents:write``
    (a key embedded in a web page can stop contacts, never start them)."""
    if body.granted and not key.allows("consents:write"):
        raise PermissionDeniedError("Granting consent needs an API key with the scope "
                                    "'consents:write'.")
    if not (key.allows("events:write") or key.allows("consents:write")):
        raise PermissionDeniedError("This API key lacks the scope 'events:write' or "
                                    "'consents:write'.")
    return service.set_consent(customer_id, body)
