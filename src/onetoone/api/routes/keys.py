"""API keys (scope ``admin``): create, list and revoke while the service runs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from onetoone.api.deps import Admin, WorkspaceDep
from onetoone.api.models import ERROR_RESPONSES, KeyIn, KeyOut
from onetoone.interact.keys import check_scopes

router = APIRouter(prefix="/v1/apikeys", tags=["admin"], responses=ERROR_RESPONSES)


@router.post("", response_model=KeyOut)
def create_key(body: KeyIn, ws: WorkspaceDep, _: Admin) -> KeyOut:
    """A new key; shown once, stored hashed."""
    key = ws.keys.create(body.name, body.scopes)
    return KeyOut(name=body.name, scopes=check_scopes(body.scopes), key=key)


@router.get("")
def list_keys(ws: WorkspaceDep, _: Admin) -> list[dict[str, Any]]:
    """The stored keys: names, scopes, dates (never a key nor its hash)."""
    return ws.keys.list()


@router.delete("/{name}")
def revoke_key(
    name: Annotated[str, Path(min_length=1, max_length=64)], ws: WorkspaceDep, _: Admin
) -> dict[str, Any]:
    """Revoke every valid key of that name."""
    count = ws.keys.revoke(name)
    return {"name": name, "status": "revoked", "revoked": count}
