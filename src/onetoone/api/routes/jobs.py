"""Jobs (scope ``jobs``): the batch steps run by the server, one at a time, queued."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from onetoone.api.deps import JobsScope
from onetoone.api.models import ERROR_RESPONSES
from onetoone.errors import PermissionDeniedError
from onetoone.jobs import CAMPAIGN_STEPS, IDENTITY_STEPS, PRIVACY_STEPS, JobRunner

#: steps that exercise a person's rights or erase by retention
PRIVACY_SCOPED = (*PRIVACY_STEPS, "retention")
#: steps whose audit entries name the key that asked
AUDITED = (*PRIVACY_SCOPED, *IDENTITY_STEPS, *CAMPAIGN_STEPS)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES)

JobId = Annotated[str, Path(min_length=1, max_length=64)]


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step: Annotated[str, Field(min_length=1, max_length=32,
                               description="ingest, identify, score, kpis, report, retention, "
                               "bounces, merge, unmerge, review, erase, campaign or decide")]
    args: dict[str, Any] = Field(default_factory=dict)


def _runner(request: Request) -> JobRunner:
    runner: JobRunner = request.app.state.jobs
    return runner


@router.post("", status_code=202)
def submit(body: JobIn, request: Request, key: JobsScope) -> dict[str, Any]:
    """Queue a step; it runs when the jobs before it have ended (422 for an unknown step or
    argument, naming the known ones). Erasure and retention also need the scope
    ``privacy``; the job's actor is the key."""
    args = dict(body.args)
    if body.step in PRIVACY_SCOPED and not key.allows("privacy"):
        raise PermissionDeniedError(f"The step '{body.step}' needs an API key with the "
                                    "scope 'privacy'.")
    if body.step in AUDITED:
        args["actor"] = f"key:{key.name}"
    return _runner(request).submit(body.step, args).as_dict()


@router.get("")
def list_jobs(request: Request, _: JobsScope) -> list[dict[str, Any]]:
    """The jobs since the server started, newest first."""
    return [job.as_dict() for job in _runner(request).list()]


@router.get("/{job_id}")
def get_job(job_id: JobId, request: Request, _: JobsScope) -> dict[str, Any]:
    """One job: status, the part running and the share done, its log, result or error."""
    return _runner(request).get(job_id).as_dict()


@router.delete("/{job_id}")
def cancel(job_id: JobId, request: Request, _: JobsScope) -> dict[str, Any]:
    """Cancel a queued job, or stop a running one at its next progress point (its
    uncommitted part is rolled back)."""
    return _runner(request).cancel(job_id).as_dict()
