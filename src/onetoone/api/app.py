"""The FastAPI application: routers, one error handler, body-size limit, privacy-safe logs.

Logs name the route template and the status, never a path value, a query string or a body: no
personal data reaches them.
"""

from __future__ import annotations

import gc
import logging
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from onetoone import __version__
from onetoone.api.routes import (
    admin,
    customers,
    decisions,
    events,
    health,
    jobs,
    keys,
    measure,
)
from onetoone.errors import OneToOneError
from onetoone.jobs import JobRunner
from onetoone.schedule import Scheduler
from onetoone.workspace import Workspace

log = logging.getLogger("onetoone.api")
access = logging.getLogger("onetoone.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """413 for bodies above ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await _too_large(self.max_bytes)(scope, receive, send)
                    return
        if declared is not None:  # the server reads no more than declared
            await self.app(scope, receive, send)
            return
        # streamed without a length (chunked): read up to the limit before the application
        # does, so that a body over it is a 413, not a body the application fails to parse
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.max_bytes:
                await _too_large(self.max_bytes)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replay: list[Message] = [{"type": "http.request", "body": b"".join(chunks),
                                  "more_body": False}]

        async def buffered() -> Message:
            return replay.pop() if replay else await receive()

        await self.app(scope, buffered, send)


class AccessLog:
    """One line per request at INFO: method, route template, status, duration (plain ASGI: a
    ``@app.middleware("http")`` costs a task and a stream per request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not access.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            access.info(
                "%s %s %d %.1fms",
                scope["method"],
                _route(scope),
                status,
                1000 * (time.perf_counter() - started),
            )


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        {"error": "PayloadTooLargeError", "message": f"The request body exceeds {limit} bytes."},
        status_code=413,
    )


def _error(
    status: int, error: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if not _noise(p)) or "body"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    more = len(exc.errors()) - 5
    return "Invalid request: " + "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _noise(part: object) -> bool:
    """Parts of a pydantic location that mean nothing to the caller."""
    text = str(part)
    return text in ("body", "event", "batch") or text.startswith("function-")


def build_app(workspace: Workspace | Path | str) -> FastAPI:
    """The application owning ``workspace`` (opened here when given as a folder)."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    _ = ws.decisions  # started now: the catalog saved, the propensities and profiles loaded
    runner = JobRunner(ws)  # the batch steps, one at a time, beside the decisions
    # [schedule]: runs steps as jobs by cron expressions and chains, while the server serves
    scheduler = Scheduler(runner, ws.config.schedule, ws.config.workspace.timezone)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # What is loaded at start (modules, catalog, every profile) lives as long as the
        # service: kept out of the cyclic collector, whose full passes over it took ~120 ms
        # (a pause of every request) with 6,000 profiles.
        gc.collect()
        gc.freeze()
        scheduler.start()
        yield
        scheduler.stop()
        runner.close()
        ws.close()

    app = FastAPI(
        title="onetoone",
        version=__version__,
        lifespan=lifespan,
        description="Events in, next best action out: the one-to-one decision service. "
        "Authenticate with `Authorization: Bearer KEY`.",
    )
    app.state.workspace = ws
    app.state.jobs = runner
    app.state.scheduler = scheduler
    for module in (events, customers, decisions, keys, measure, admin, jobs, health):
        app.include_router(module.router)

    @app.exception_handler(OneToOneError)
    async def _domain(_request: Request, exc: OneToOneError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
        return _error(exc.http_status, type(exc).__name__, exc.user_message(), headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "InvalidInputError", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, "HTTPError", str(exc.detail))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        # The type and the frames, not the message: it could quote a value.
        frames = "".join(traceback.format_tb(exc.__traceback__))
        log.error("internal error %s on %s\n%s", type(exc).__name__, _route(request.scope), frames)
        return _error(500, "InternalError", "An internal error occurred; it has been logged.")

    app.add_middleware(AccessLog)
    app.add_middleware(BodyLimit, max_bytes=ws.config.api.max_body_bytes)
    return app


def _route(scope: Scope) -> str:
    """The route template (``/v1/customers/{customer_id}``), never the path's values."""
    return getattr(scope.get("route"), "path", "(no route)")
