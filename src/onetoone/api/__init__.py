"""The REST API (FastAPI): a thin adapter over the Workspace and its decision service. See
docs/service.md.

FastAPI is imported only by :func:`create_app`, so the core package works without the
``service`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI


def create_app(workspace: Any) -> FastAPI:
    """The application serving ``workspace`` (a folder or an open Workspace)."""
    from onetoone.api.app import build_app

    return build_app(workspace)
