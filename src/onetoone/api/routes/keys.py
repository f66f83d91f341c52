"""API keys (scope ``admin``): create, list, rotate and revoke while the service runs; each
change is audited with the caller's key name as actor."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path

from onetoone.api.deps import Admin, WorkspaceDep
from onetoone.api.models import ERROR_RESPONSES, KeyIn, KeyOut, KeyRotatedOut, KeyRotateIn
from onetoone.clock import utcnow
from onetoone.interact.keys import check_scopes, utc_naive

router = APIRouter(prefix="/v1/apikeys", tags=["admin"], responses=ERROR_RESPONSES)
KeyName = Annotated[str, Path(min_length=1, max_length=64)]


@router.post("", response_model=KeyOut)
def create_key(body: KeyIn, ws: WorkspaceDep, caller: Admin) -> KeyOut:
    """A new key, valid until ``expires_at`` or for ``expires_in_days`` (neither: never);
    shown once, stored hashed."""
    expires_at = body.expiry(utcnow())
    key = ws.keys.create(body.name, body.scopes, expires_at, actor=f"key:{caller.name}")
    return KeyOut(name=body.name, scopes=check_scopes(body.scopes), key=key,
                  expires_at=utc_naive(expires_at) if expires_at else None)


@router.get("")
def list_keys(ws: WorkspaceDep, _: Admin) -> list[dict[str, Any]]:
    """The stored keys: names, scopes, dates, expiry (never a key nor its hash)."""
    return ws.keys.list()


@router.post("/{name}/rotate", response_model=KeyRotatedOut)
def rotate_key(name: KeyName, body: KeyRotateIn, ws: WorkspaceDep,
               caller: Admin) -> KeyRotatedOut:
    """A new secret for the key ``name`` (same scopes), shown once; the old one stays valid
    ``grace_days`` more, then expires."""
    rotated = ws.keys.rotate(name, timedelta(days=body.grace_days), body.expiry(utcnow()),
                             actor=f"key:{caller.name}")
    return KeyRotatedOut(name=rotated.name, scopes=rotated.scopes, key=rotated.key,
                         expires_at=rotated.expires_at,
                         previous_expires_at=rotated.previous_expires_at)


@router.delete("/{name}")
def revoke_key(name: KeyName, ws: WorkspaceDep, caller: Admin) -> dict[str, Any]:
    """Revoke every key of that name (both keys of a rotated pair)."""
    count = ws.keys.revoke(name, actor=f"key:{caller.name}")
    return {"name": name, "status": "revoked", "revoked": count}
