"""The FastAPI application: routers, one error handler, body-size limit, privacy-safe logs.

Logs name the route template and the status, never a path value, a query string or a body: no
personal data reaches them.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import logging
import re
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from onetoone import __version__
from onetoone.api.routes import (
    admin,
    audiences,
    campaigns,
    channels,
    customers,
    decisions,
    events,
    health,
    jobs,
    keys,
    measure,
    tracking,
)
from onetoone.errors import OneToOneError, RateLimitedError
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

#: Swagger UI (npm ``swagger-ui-dist``, Apache-2.0), shipped in the package so that ``/docs``
#: needs no CDN: see static/swagger-ui/README.txt.
SWAGGER_UI_DIR = Path(__file__).resolve().parent / "static" / "swagger-ui"
SWAGGER_UI_URL = "/static/swagger-ui"
OPENAPI_URL = "/openapi.json"
DOCS_URL = "/docs"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"  # FastAPI's default, kept


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
    ws.serving = True
    _ = ws.decisions  # started now: the catalog saved, the propensities and profiles loaded
    runner = JobRunner(ws)  # the batch steps, one at a time, beside the decisions
    # [schedule]: runs steps as jobs by cron expressions and chains, while the server serves
    scheduler = Scheduler(runner, ws.config.schedule, ws.config.workspace.timezone,
                          campaigns={name: c.schedule for name, c in ws.config.campaigns.items()
                                     if c.schedule != "once"
                                     and not c.schedule.startswith("trigger:")})
    triggers = ws.trigger_runner()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # What is loaded at start (modules, catalog, every profile) lives as long as the
        # service: kept out of the cyclic collector, whose full passes over it took ~120 ms
        # (a pause of every request) with 6,000 profiles.
        gc.collect()
        gc.freeze()
        scheduler.start()
        triggers.start()
        yield
        triggers.stop()
        scheduler.stop()
        runner.close()
        ws.close()

    app = FastAPI(
        title="onetoone",
        version=__version__,
        lifespan=lifespan,
        description="Events in, next best action out: the one-to-one decision service. "
        "Authenticate with `Authorization: Bearer KEY`.",
        openapi_url=OPENAPI_URL,
        # FastAPI's own pages load their scripts from a CDN: /docs is served below from the
        # vendored Swagger UI instead, and ReDoc is not offered
        docs_url=None,
        redoc_url=None,
    )
    _swagger_ui(app)
    app.state.workspace = ws
    app.state.jobs = runner
    app.state.scheduler = scheduler
    for module in (events, customers, decisions, keys, measure, admin, jobs, health,
                   campaigns, tracking, audiences):
        app.include_router(module.router)
    app.include_router(channels.router)  # gateways' callbacks (tokens), relays' bounces

    @app.exception_handler(OneToOneError)
    async def _domain(_request: Request, exc: OneToOneError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
        if isinstance(exc, RateLimitedError):
            headers = {"Retry-After": str(exc.retry_after)}
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


def _swagger_ui(app: FastAPI) -> None:
    """``/docs``: Swagger UI from the package's own files, under a Content-Security-Policy."""
    app.mount(SWAGGER_UI_URL, StaticFiles(directory=SWAGGER_UI_DIR), name="swagger-ui")

    @app.get(DOCS_URL, include_in_schema=False)
    async def _docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_swagger_ui_html(
            openapi_url=root + OPENAPI_URL,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{SWAGGER_UI_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{SWAGGER_UI_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{SWAGGER_UI_URL}/favicon-32x32.png",
            oauth2_redirect_url=root + OAUTH2_REDIRECT_URL,
            # no badge fetched from validator.swagger.io
            swagger_ui_parameters={"validatorUrl": None},
        )
        return _with_csp(page)

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def _oauth2_redirect() -> HTMLResponse:
        return _with_csp(get_swagger_ui_oauth2_redirect_html())


_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def _with_csp(page: HTMLResponse) -> HTMLResponse:
    """``page`` with a Content-Security-Policy allowing this origin only.

    FastAPI's pages start Swagger UI with an inline ``<script>``. Rather than
    ``'unsafe-inline'``, or a nonce (which ``get_swagger_ui_html`` has no way to put on the
    tag), the policy allows that script by its SHA-256 hash: exactly the script that was sent,
    and nothing injected beside it. Swagger UI sets its inline styles through the DOM's style
    properties, which CSP does not restrict, so ``style-src`` needs no ``'unsafe-inline'``;
    its CSS draws icons from ``data:`` images. The API called by "Try it out" and the OpenAPI
    document are on this origin (``connect-src 'self'``).
    """
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(page.body)
    )
    page.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )
    return page


def _route(scope: Scope) -> str:
    """The route template (``/v1/customers/{customer_id}``), never the path's values."""
    return getattr(scope.get("route"), "path", "(no route)")
