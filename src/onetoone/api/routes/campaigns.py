"""Campaigns (docs/campaigns.md): those of ``[campaigns.NAME]`` and those created through the
API, which the scope ``campaigns`` creates, changes and retires; preview (nothing written),
run (a job of the server), status. Scope ``jobs`` to run; ``customers:read`` to look."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response

from onetoone.api.deps import CustomersReader, JobsScope, WorkspaceDep, require
from onetoone.api.models import ERROR_RESPONSES
from onetoone.channels.definitions import Definition, Definitions
from onetoone.errors import InvalidInputError, NotFoundError
from onetoone.interact.keys import Principal

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"],
                   responses={**ERROR_RESPONSES, 409: {
                       "description": "A campaign of onetoone.toml, a retired campaign, or "
                       "a name taken with other settings."}})

Name = Annotated[str, Path(min_length=1, max_length=100)]
CampaignsWriter = Annotated[Principal, Depends(require("campaigns"))]
Settings = Annotated[dict[str, Any], Body(
    description="The keys of [campaigns.NAME]: channel, audience, tiers, segments, actions, "
    "control_share, schedule, send_window, deliver_with.",
    openapi_examples={"winback": {"value": {
        "name": "winback", "channel": "email",
        "audience": 'value_tier == "top" and defection_risk > 0.3',
        "actions": ["winback_top"], "control_share": 0.2, "schedule": "0 9 * * MON",
        "send_window": "08:00-20:00"}}})]


@router.get("")
def list_campaigns(ws: WorkspaceDep, _: CustomersReader,
                   retired: Annotated[bool, Query(
                       description="Retired campaigns too.")] = False) -> list[dict[str, Any]]:
    """Every campaign and its settings: those of onetoone.toml first (``source``
    ``config``), then those created through the API (``api``)."""
    return [*(_configured(name, config) for name, config in ws.config.campaigns.items()),
            *(d.as_dict() for d in Definitions.of(ws).all()
              if retired or d.retired_at is None)]


@router.get("/{name}")
def get_campaign(name: Name, ws: WorkspaceDep, _: CustomersReader) -> dict[str, Any]:
    """One campaign (a retired one too)."""
    if name in ws.config.campaigns:
        return _configured(name, ws.config.campaigns[name])
    found = Definitions.of(ws).get(name)
    if found is None:
        raise NotFoundError(f"No campaign '{name}'.", hint="GET /v1/campaigns lists them.")
    return found.as_dict()


@router.post("", status_code=201, responses={200: {
    "description": "The name holds these very settings already: nothing changed."}})
def create(settings: Settings, request: Request, response: Response, ws: WorkspaceDep,
           key: CampaignsWriter) -> dict[str, Any]:
    """Create a campaign, checked as ``[campaigns.NAME]`` is when onetoone.toml is read (422
    with the same sentence). It runs like those of the file: preview, run, a cron schedule."""
    name = settings.pop("name", None)
    if not isinstance(name, str):
        raise InvalidInputError("The body needs the campaign's 'name'.")
    found, created = Definitions.of(ws).create(name, settings, key.name)
    if created:
        _audit(ws, key, "campaign.create", found)
        request.app.state.scheduler.plan_campaign(name, found.campaign.schedule)
    else:
        response.status_code = 200
    return found.as_dict()


@router.put("/{name}")
def replace(name: Name, settings: Settings, request: Request, ws: WorkspaceDep,
            key: CampaignsWriter) -> dict[str, Any]:
    """Replace the settings of a campaign created through the API (checked as at creation);
    the next run uses them."""
    if settings.pop("name", name) != name:
        raise InvalidInputError("The body names another campaign than the path.",
                                hint="A campaign is not renamed: create one under the new "
                                "name and retire this one.")
    found, changed = Definitions.of(ws).replace(name, settings)
    if changed:
        _audit(ws, key, "campaign.change", found)
        request.app.state.scheduler.plan_campaign(name, found.campaign.schedule)
    return found.as_dict()


@router.delete("/{name}")
def retire(name: Name, request: Request, ws: WorkspaceDep,
           key: CampaignsWriter) -> dict[str, Any]:
    """Retire a campaign created through the API: it no longer runs (nor is scheduled); its
    deliveries, responses and status stay readable under its name."""
    found, changed = Definitions.of(ws).retire(name)
    if changed:
        _audit(ws, key, "campaign.retire", found)
        request.app.state.scheduler.plan_campaign(name, None)
    return found.as_dict()


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


def _configured(name: str, config: Any) -> dict[str, Any]:
    """A campaign of onetoone.toml, shaped as those created through the API."""
    return {"name": name, "source": "config", **config.model_dump(by_alias=True),
            "created_by": None, "created_at": None, "updated_at": None, "retired_at": None}


def _audit(ws: Any, key: Principal, action: str, found: Definition) -> None:
    """The change in the audit log: the campaign, its channel and schedule (never its
    audience, whose rule may quote a customer's data)."""
    details = {"campaign": found.name, "channel": found.campaign.channel,
               "schedule": found.campaign.schedule}
    try:
        ws.audit(f"key:{key.name}", action, None, **details)
    except ValueError:  # a name that looks like personal data is not logged
        ws.audit(f"key:{key.name}", action, None, campaign=None)


def _lift(ws: Any, run: str) -> dict[str, Any]:
    from onetoone.errors import OneToOneError

    try:
        overall = ws.lift(campaign=run)[0]  # all the campaign's actions together
        return {"run": run, "lift": overall.as_dict(), "text": str(overall)}
    except OneToOneError as exc:
        return {"run": run, "error": exc.user_message()}
