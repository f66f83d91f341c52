"""The public links of messages (no key: they are signed): the open pixel, click redirects,
one-click unsubscribe (RFC 8058) and QR scans. Each becomes a response to its decision (the
adaptive propensities learn one outcome per decision) and an interaction; a forged link is
404. See docs/channels.md."""

from __future__ import annotations

import base64
import html
import logging
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from onetoone.api.deps import WorkspaceDep
from onetoone.channels.tracking import Link, Signer, web_address
from onetoone.clock import utcnow
from onetoone.errors import NotFoundError, OneToOneError
from onetoone.interact.events import Consent, Event
from onetoone.workspace import Workspace

router = APIRouter(tags=["tracking"], include_in_schema=False)
log = logging.getLogger("onetoone.tracking")

Token = Annotated[str, Path(min_length=10, max_length=4000)]
#: a transparent 1x1 GIF
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_PAGE = ("<!DOCTYPE html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>{title}"
         "</title><meta name=\"viewport\" content=\"width=device-width\"></head><body "
         "style=\"font-family:sans-serif;max-width:32em;margin:3em auto\">{body}</body></html>")


def _signer(ws: Workspace) -> Signer:
    from onetoone.channels.secrets import channel_secret

    return Signer(channel_secret(ws.root))


def _link(ws: Workspace, token: str, kind: str) -> Link:
    link = _signer(ws).read(token, kind)
    if link is None:
        raise NotFoundError("Not found.")
    return link


def _record(ws: Workspace, link: Link, response: str, kind: str) -> str | None:
    """The response to the link's decision and an interaction; the customer's id (None when
    the decision is unknown, e.g. erased since)."""
    service = ws.decisions
    try:
        customer_id = service.customer_of_decision(link.decision_id)
        service.respond(link.decision_id, response)
    except NotFoundError:
        return None
    except OneToOneError as exc:  # an action no longer in the catalog, say
        log.info("tracking link: response not recorded (%s)", type(exc).__name__)
        return None
    event = Event(event_id=f"{kind}-{link.delivery_id}-{int(utcnow().timestamp() * 1000)}",
                  occurred_at=datetime.now().astimezone(), customer={"customer_id": customer_id},
                  channel=link.channel, type=kind,
                  properties={"decision_id": link.decision_id, "direction": "inbound"})
    service.ingest_events([event])
    return customer_id


@router.get("/t/o/{token}.gif")
def opened(token: Token, ws: WorkspaceDep) -> Response:
    """The open pixel: an impression of the decision (opens are not learned as success)."""
    link = _signer(ws).read(token, "o")
    if link is not None:
        _record(ws, link, "impression", "open")
    return Response(PIXEL, media_type="image/gif",
                    headers={"Cache-Control": "no-store, private"})


def _redirect(ws: Workspace, token: str, kind: str, event: str) -> RedirectResponse:
    """Record a click (or a scan), then send the browser where the message said, and only
    there (the target is inside the signed link)."""
    link = _link(ws, token, kind)
    _record(ws, link, "click", event)
    return RedirectResponse(link.target, status_code=302,
                            headers={"Cache-Control": "no-store, private"})


@router.get("/t/c/{token}")
def clicked(token: Token, ws: WorkspaceDep) -> RedirectResponse:
    """A click in a message."""
    return _redirect(ws, token, "c", "click")


@router.get("/r/{token}")
def scanned(token: Token, ws: WorkspaceDep) -> RedirectResponse:
    """A personalized QR code scanned: recorded as a click, then the personalized page. A
    campaign's code holds the delivery only (``short_scan_url``): the decision and the page
    (the treatment's ``url``, else the public URL) are read from it."""
    delivery_id = _signer(ws).read_short(token)
    if delivery_id is None:
        return _redirect(ws, token, "r", "scan")
    found = ws.campaigns.page_of(delivery_id)
    home = ws.config.api.public_url or "/"
    if found is None:  # erased since, say: the home page, nothing recorded
        return RedirectResponse(home, status_code=302, headers={"Cache-Control": "no-store"})
    target = found[1] if found[1] and web_address(found[1]) else home
    _record(ws, Link("r", delivery_id, found[0], "qr", target), "click", "scan")
    return RedirectResponse(target, status_code=302,
                            headers={"Cache-Control": "no-store, private"})


@router.get("/t/u/{token}")
def unsubscribe_page(token: Token, ws: WorkspaceDep, request: Request) -> HTMLResponse:
    """The unsubscribe page: a button (a GET never unsubscribes: mail scanners follow links)."""
    _link(ws, token, "u")
    action = html.escape(str(request.url.path), quote=True)
    body = ("<h1>Se désabonner / Unsubscribe</h1><form method=\"post\" action=\"" + action
            + "\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">"
            "<button type=\"submit\">Ne plus recevoir ces messages / Stop these messages"
            "</button></form>")
    return HTMLResponse(_PAGE.format(lang="fr", title="Unsubscribe", body=body),
                        headers={"Cache-Control": "no-store, private"})


@router.post("/t/u/{token}")
def unsubscribe(token: Token, ws: WorkspaceDep) -> HTMLResponse:
    """One-click unsubscribe (RFC 8058, or the page's button): the marketing consent of the
    message's channel is withdrawn for the very next decision, and the decision is answered
    with a rejection."""
    link = _link(ws, token, "u")
    customer_id = _record(ws, link, "reject", "unsubscribe")
    if customer_id is not None:
        ws.decisions.set_consent(customer_id, Consent(
            channel=link.channel, purpose="marketing", granted=False), actor="link:unsubscribe")
    body = ("<h1>C'est fait / Done</h1><p>Vous ne recevrez plus ces messages. / You will not "
            "receive these messages any more.</p>")
    return HTMLResponse(_PAGE.format(lang="fr", title="Unsubscribed", body=body),
                        headers={"Cache-Control": "no-store, private"})
