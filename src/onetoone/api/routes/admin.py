"""The workspace as a whole (scope ``admin``): its tables' sizes and read-only SQL, for the CLI
on a served workspace and for analysts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from onetoone.api.deps import Admin, WorkspaceDep
from onetoone.api.local import MAX_SQL_ROWS
from onetoone.api.models import ERROR_RESPONSES

router = APIRouter(prefix="/v1", tags=["admin"], responses=ERROR_RESPONSES)


class SqlIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: Annotated[str, Field(min_length=1, max_length=100_000)]
    limit: Annotated[int, Field(ge=1, le=MAX_SQL_ROWS)] = 1_000


@router.get("/status")
def status(ws: WorkspaceDep, _: Admin) -> dict[str, Any]:
    """Rows in every table of the workspace."""
    return {"workspace": str(ws.root), "tables": ws.summary()}


@router.post("/sql")
def sql(body: SqlIn, ws: WorkspaceDep, _: Admin) -> dict[str, Any]:
    """One read-only statement (SELECT, WITH, FROM, DESCRIBE, SUMMARIZE, EXPLAIN): its columns,
    its rows (at most ``limit``) and whether there were more; a write is refused (422)."""
    table, truncated = ws.sql(body.query, limit=body.limit)
    return {"columns": table.column_names,
            "rows": [list(row.values()) for row in table.to_pylist()],
            "truncated": truncated}
