"""Audiences for ads and addressable TV (``[audiences.NAME]``, docs/channels.md): an export
writes a file of personal data, inside the server's workspace only. Scope ``admin``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from onetoone.api.deps import Admin, WorkspaceDep
from onetoone.api.models import ERROR_RESPONSES
from onetoone.channels.audiences import audience_export, record_export

router = APIRouter(prefix="/v1/audiences", tags=["audiences"], responses=ERROR_RESPONSES)

Name = Annotated[str, Path(min_length=1, max_length=100)]


class ExportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: Literal["google", "meta", "csv"]
    #: where to write the file: inside the workspace folder (default
    #: ``audiences/<name>-<platform>.csv``)
    output: Annotated[str | None, Field(max_length=4_096)] = None


@router.post("/{name}/export")
def export(name: Name, body: ExportIn, ws: WorkspaceDep, key: Admin) -> dict[str, Any]:
    """Write the audience's file for the platform (and its holdout's customer ids to
    ``audiences/<name>-holdout.csv``): only customers whose consent covers the audience's
    purpose on the channel ``ads``. Returns the counts and the files, relative to the
    workspace."""
    output = None if body.output is None else ws.path_inside(body.output)
    result = audience_export(ws.decisions, ws.config.audiences, ws.root, name, body.platform,
                             output)
    record_export(ws.audit, f"key:{key.name}", result, ws.root)
    return result
