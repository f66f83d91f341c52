"""Campaigns (``[campaigns.NAME]``, docs/campaigns.md): preview (nothing written), run (a job
of the server), status. Scope ``jobs`` to run; ``customers:read`` to look."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from onetoone.api.deps import CustomersReader, JobsScope, WorkspaceDep
from onetoone.api.models import ERROR_RESPONSES

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"], responses=ERROR_RESPONSES)

Name = Annotated[str, Path(min_length=1, max_length=100)]


@router.get("")
def list_campaigns(ws: WorkspaceDep, _: CustomersReader) -> list[dict[str, Any]]:
    """The configured campaigns and their settings."""
    return [{"name": name, **config.model_dump(by_alias=True)}
            for name, config in ws.config.campaigns.items()]


@router.get("/{name}/preview")
def preview(name: Name, ws: WorkspaceDep, key: CustomersReader) -> dict[str, Any]:
    """Audience, what consent and the contact policy leave, the control group, expected
    responses and value, sample messages, template errors: nothing written, no cap used."""
    result = ws.campaigns.preview(name)
    ws.audit(f"key:{key.name}", "campaign.preview", None, campaign=name,
             customers=result["audience"], to_send=result["to_send"])
    return result


@router.post("/{name}/run", status_code=202)
def run(name: Name, request: Request, ws: WorkspaceDep, key: JobsScope) -> dict[str, Any]:
    """Queue a run of the campaign (a job: ``GET /v1/jobs/{id}`` follows it)."""
    ws.campaigns.config(name)  # 404 now for an unknown campaign
    job = request.app.state.jobs.submit("campaign", {"name": name, "actor": f"key:{key.name}"})
    return dict(job.as_dict())


@router.get("/{name}/status")
def status(name: Name, ws: WorkspaceDep, _: CustomersReader) -> dict[str, Any]:
    """Selected, held out, sent, delivered, bounced, opened, clicked, converted,
    unsubscribed, and the lift against the control group."""
    return ws.campaigns.status(name, lift=lambda run: _lift(ws, run))


def _lift(ws: Any, run: str) -> dict[str, Any]:
    from onetoone.errors import OneToOneError

    try:
        overall = ws.lift(campaign=run)[0]  # all the campaign's actions together
        return {"run": run, "lift": overall.as_dict(), "text": str(overall)}
    except OneToOneError as exc:
        return {"run": run, "error": exc.user_message()}
