"""Customers: the 360 view (by id or by identifier), the identity view, consents, and the
person's rights (export, erasure). Every read of one person's data writes the audit log."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from onetoone.api.deps import AnyKey, CustomersReader, PrivacyScope, ServiceDep, WorkspaceDep
from onetoone.api.models import ERROR_RESPONSES, ConsentsOut
from onetoone.errors import PermissionDeniedError
from onetoone.interact.events import Consent

router = APIRouter(prefix="/v1/customers", tags=["customers"], responses=ERROR_RESPONSES)

CustomerId = Annotated[str, Path(min_length=1, max_length=64)]


@router.get("")
def find_customer(
    service: ServiceDep,
    ws: WorkspaceDep,
    key: CustomersReader,
    identifier: Annotated[
        str,
        Query(min_length=3, max_length=300, description="TYPE:VALUE, e.g. email:marie@exemple.fr"),
    ],
) -> dict[str, Any]:
    """The customer carrying an identifier (same answer as by id)."""
    customer_id = service.find_customer(service.identifier_ref(identifier))
    view = service.customer_view(customer_id)
    ws.audit(f"key:{key.name}", "customer.read", customer_id, view="360", by="identifier")
    return view


@router.get("/{customer_id}")
def get_customer(
    customer_id: CustomerId, service: ServiceDep, ws: WorkspaceDep, key: CustomersReader
) -> dict[str, Any]:
    """Golden record, scores, consents, recent interactions on every channel, last decisions."""
    found = service.find_customer({"customer_id": customer_id})
    view = service.customer_view(found)
    ws.audit(f"key:{key.name}", "customer.read", found, view="360")
    return view


@router.get("/{customer_id}/identity")
def get_identity(
    customer_id: CustomerId, ws: WorkspaceDep, key: CustomersReader, why: bool = False
) -> dict[str, Any]:
    """The customer's golden record and source records (how each was linked); with ``why``,
    the evidence that makes them one and why related records are not, as sentences."""
    with ws.reader() as view:
        found = view.identity.explain(customer_id, why=why)
    ws.audit(f"key:{key.name}", "customer.read", customer_id, view="identity")
    return found


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
    return service.set_consent(customer_id, body, actor=f"key:{key.name}")


@router.get("/{customer_id}/export")
def export_customer(customer_id: CustomerId, ws: WorkspaceDep, key: PrivacyScope,
                    service: ServiceDep) -> dict[str, Any]:
    """Everything the workspace holds about the person (GDPR articles 15 and 20): one
    portable JSON document (docs/privacy.md). Audited."""
    service.writer.sync()  # the decisions logged so far are in the tables
    with ws.reader() as view:
        return view.privacy.export("customer", customer_id, actor=f"key:{key.name}")


#: how long DELETE waits for its erasure job before answering 202 with the job
ERASE_WAIT_S = 120.0


@router.delete("/{customer_id}")
def erase_customer(customer_id: CustomerId, request: Request, key: PrivacyScope,
                   mode: Annotated[str, Query(pattern="^(erase|anonymise)$")] = "erase",
                   ) -> dict[str, Any]:
    """Erase the person from every table (GDPR article 17), or with ``mode=anonymise`` keep
    their events for statistics under a random id; their identifiers are kept as keyed
    hashes so that loading them again quarantines them. Runs as a job (one writer at a
    time); answers with what was removed once it has ended (docs/privacy.md)."""
    from onetoone.errors import NotFoundError, OneToOneError

    runner = request.app.state.jobs
    job = runner.submit("erase", {"customer": customer_id, "mode": mode,
                                  "actor": f"key:{key.name}"})
    deadline = time.monotonic() + ERASE_WAIT_S
    while job.status in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.02)
    if job.status == "succeeded":
        return dict(job.result or {})
    if job.status in ("queued", "running"):
        return {"job": job.as_dict()}
    error = job.error or "The erasure failed."
    if error.startswith("No customer"):
        raise NotFoundError(error)
    raise OneToOneError(error)
