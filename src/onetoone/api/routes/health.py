"""Readiness and a bare endpoint (the benchmark's baseline of the same stack)."""

from __future__ import annotations

from fastapi import APIRouter

from onetoone.api.deps import AnyKey

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The service is up and owns its workspace."""
    return {"status": "ok"}


@router.get("/v1/ping")
async def ping(_: AnyKey) -> dict[str, bool]:
    """A trivial authenticated route: what the stack costs without any work."""
    return {"pong": True}
