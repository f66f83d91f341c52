"""The workspace as a whole (scope ``admin``): its tables' sizes and read-only SQL, for the CLI
on a served workspace and for analysts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from onetoone.api.deps import Admin, WorkspaceDep
from onetoone.api.local import MAX_SQL_ROWS
from onetoone.api.models import ERROR_RESPONSES
from onetoone.privacy.audit import sql_details
from onetoone.schedule import schedule_status

router = APIRouter(prefix="/v1", tags=["admin"], responses=ERROR_RESPONSES)


class SqlIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: Annotated[str, Field(min_length=1, max_length=100_000)]
    limit: Annotated[int, Field(ge=1, le=MAX_SQL_ROWS)] = 1_000


@router.get("/status")
def status(ws: WorkspaceDep, request: Request, _: Admin) -> dict[str, Any]:
    """Rows in every table of the workspace, and the schedule: each scheduled step, its next
    run (workspace time zone) and its last result."""
    with ws.reader() as view:
        return {"workspace": str(ws.root), "tables": view.summary(),
                "schedule": schedule_status(view, request.app.state.scheduler)}


class ReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: where to write the report: inside the workspace folder (default ``report/index.html``)
    output: Annotated[str | None, Field(max_length=4_096)] = None


@router.post("/report")
def report(body: ReportIn, ws: WorkspaceDep, key: Admin) -> dict[str, str]:
    """Write the HTML report (and its plots) in the workspace folder; returns its path."""
    output = None if body.output is None else ws.path_inside(body.output)
    with ws.reader() as view:
        path = str(view.report(output))
    ws.audit(f"key:{key.name}", "report.write", None)
    return {"path": path}


@router.post("/sql")
def sql(body: SqlIn, ws: WorkspaceDep, key: Admin) -> dict[str, Any]:
    """One read-only statement (SELECT, WITH, FROM, DESCRIBE, SUMMARIZE, EXPLAIN): its columns,
    its rows (at most ``limit``) and whether there were more; a write is refused (422)."""
    table, truncated = ws.sql(body.query, limit=body.limit)
    ws.audit(f"key:{key.name}", "sql.query", None, **sql_details(body.query, table, truncated))
    return {"columns": table.column_names,
            "rows": [list(row.values()) for row in table.to_pylist()],
            "truncated": truncated}
