"""Measurement: what the contacts changed, treated against control."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from onetoone.api.deps import CustomersReader, WorkspaceDep
from onetoone.api.models import ERROR_RESPONSES

router = APIRouter(prefix="/v1", tags=["measure"], responses=ERROR_RESPONSES)

Name = Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[\w.:-]+$")]


@router.get("/lift")
def get_lift(
    ws: WorkspaceDep,
    _: CustomersReader,
    action: Name = None,
    channel: Name = None,
    campaign: Name = None,
    window_days: Annotated[int | None, Query(ge=1, le=365)] = None,
    since: date | None = None,
    detect: Annotated[float | None, Query(gt=0, lt=1)] = None,
) -> dict[str, Any]:
    """Lift of all marketing, then of each action (or one), with confidence intervals, the
    sample size needed and a status; figures that cannot be computed are null."""
    results = ws.lift(
        action=action,
        channel=channel,
        campaign=campaign,
        window_days=window_days,
        since=since,
        detect=detect,
    )
    return {
        "window_days": window_days or ws.config.control_groups.window_days,
        "lifts": [r.as_dict() for r in results],
    }


@router.get("/kpis")
def get_kpis(
    ws: WorkspaceDep,
    _: CustomersReader,
    months: Annotated[int, Query(ge=1, le=240)] = 12,
) -> dict[str, Any]:
    """The key figures of the last ``months`` months as stored by the last ``onetoone score``
    (one object per month; a figure that cannot be computed is absent)."""
    wide = ws.key_figures(months)
    return {
        "kpis": [
            {"month": f"{month:%Y-%m-%d}", **{k: float(v) for k, v in row.items() if v == v}}
            for month, row in wide.iterrows()
        ]
    }


@router.get("/ab-tests/{name}")
def get_ab_test(
    ws: WorkspaceDep,
    _: CustomersReader,
    name: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[\w.-]+$")],
) -> dict[str, Any]:
    """An A/B/n test's arms, each against the first with a confidence sequence valid at every
    look, and the verdict."""
    return ws.ab_test(name).as_dict()
