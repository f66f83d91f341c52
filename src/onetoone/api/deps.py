"""Dependencies of the routes, as ``Annotated`` aliases: the workspace, its decision service and
the caller's scopes.

:func:`get_principal` checks the key (401 unknown or expired, 429 over ``[api] rate_limit``)
and sets :data:`~onetoone.interact.keys.CALLER` for the rest of the request: the decision
service reads it to bound the customers a key creates.

They are ``async`` (they only read memory): FastAPI runs a plain ``def`` dependency in the
thread pool, a hop per dependency and per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from onetoone.errors import AuthenticationError, PermissionDeniedError
from onetoone.interact.keys import CALLER, Principal
from onetoone.interact.service import DecisionService
from onetoone.workspace import Workspace

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer KEY`.")


async def get_workspace(request: Request) -> Workspace:
    workspace: Workspace = request.app.state.workspace
    return workspace


async def get_service(request: Request) -> DecisionService:
    return (await get_workspace(request)).decisions


async def get_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise AuthenticationError(
            "An API key is required.", hint="Send 'Authorization: Bearer KEY'."
        )
    principal = (await get_workspace(request)).keys.authenticate(credentials.credentials)
    CALLER.set(principal)  # this request's context only (a task, and its thread-pool calls)
    return principal


def require(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.allows(scope):
            raise PermissionDeniedError(f"This API key lacks the scope '{scope}'.")
        return principal

    return check


WorkspaceDep = Annotated[Workspace, Depends(get_workspace)]
ServiceDep = Annotated[DecisionService, Depends(get_service)]
AnyKey = Annotated[Principal, Depends(get_principal)]
EventsWriter = Annotated[Principal, Depends(require("events:write"))]
CustomersReader = Annotated[Principal, Depends(require("customers:read"))]
Decider = Annotated[Principal, Depends(require("decisions"))]
JobsScope = Annotated[Principal, Depends(require("jobs"))]
Admin = Annotated[Principal, Depends(require("admin"))]
PrivacyScope = Annotated[Principal, Depends(require("privacy"))]
