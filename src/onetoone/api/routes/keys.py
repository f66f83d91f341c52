"""API keys (scope ``admin``): create and revoke while the service runs."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path

from onetoone.api.deps import Admin, ServiceDep
from onetoone.api.keys import PREFIX, Principal, check_scopes, hash_key
from onetoone.api.models import ERROR_RESPONSES, KeyIn, KeyOut
from onetoone.errors import NotFoundError
from onetoone.interact.writer import Txn

router = APIRouter(prefix="/v1/apikeys", tags=["admin"], responses=ERROR_RESPONSES)


@router.post("", response_model=KeyOut)
def create_key(body: KeyIn, service: ServiceDep, _: Admin) -> KeyOut:
    """A new key; shown once, stored hashed."""
    scopes = check_scopes(body.scopes)
    key = PREFIX + secrets.token_urlsafe(32)
    row: dict[str, Any] = {
        "name": body.name,
        "key_hash": hash_key(key),
        "scopes": scopes,
        "created_at": datetime.now(UTC).replace(tzinfo=None),
    }

    def work(txn: Txn) -> None:
        txn.insert("api_keys", [row])

    service.writer.write(work)
    service.keys.add(row["key_hash"], Principal(body.name, frozenset(scopes)))
    return KeyOut(name=body.name, scopes=scopes, key=key)


@router.delete("/{name}")
def revoke_key(
    name: Annotated[str, Path(min_length=1, max_length=64)], service: ServiceDep, _: Admin
) -> dict[str, str]:
    """Revoke every valid key of that name."""
    now = datetime.now(UTC).replace(tzinfo=None)

    def work(txn: Txn) -> int:
        rows = txn.cur.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL RETURNING 1",
            [now, name],
        ).fetchall()
        return len(rows)

    revoked = service.writer.write(work)
    if not service.keys.remove(name) and not revoked:
        raise NotFoundError(f"No valid API key named '{name}'.")
    return {"name": name, "status": "revoked"}
