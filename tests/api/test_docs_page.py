"""``/docs`` works offline: Swagger UI is served from the package's own files, the page asks
nothing of another host, and it renders the operations in a real (headless) browser."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from _service_server import Server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ASSETS = {
    "/static/swagger-ui/swagger-ui-bundle.js": "text/javascript",
    "/static/swagger-ui/swagger-ui.css": "text/css",
    "/static/swagger-ui/favicon-32x32.png": "image/png",
}


def _same_origin(url: str, origin: str) -> bool:
    return url.startswith("data:") or url == origin or url.startswith(origin + "/")


def test_docs_page_references_only_local_assets(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        page = c.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        html = page.text
        # every src/href, and any absolute URL anywhere in the page, stays on this server
        links = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)', html)
        assert set(links) >= set(ASSETS), links
        absolute = [urljoin(server.url + "/docs", link) for link in links]
        absolute += re.findall(r"[a-z][a-z0-9+.-]*://[^\s'\"<>]+", html, re.IGNORECASE)
        foreign = [u for u in absolute if not _same_origin(u, server.url)]
        assert not foreign, f"/docs refers to other hosts: {foreign}"
        for path, kind in ASSETS.items():
            r = c.get(path)
            assert r.status_code == 200, path
            assert r.headers["content-type"].split(";")[0] == kind, (path, r.headers)
            assert len(r.content) > 0
        assert c.get("/openapi.json").status_code == 200
        assert c.get("/docs/oauth2-redirect").status_code == 200
        assert c.get("/redoc").status_code == 404  # ReDoc would need a CDN: not offered

    # the CSP allows this origin, plus exactly the inline script that starts Swagger UI
    csp = dict(part.strip().split(" ", 1) for part in
               page.headers["content-security-policy"].split(";"))
    assert csp["default-src"] == "'none'"
    for directive in ("style-src", "connect-src"):
        assert csp[directive] == "'self'"
    assert csp["img-src"] == "'self' data:"
    inline = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert csp["script-src"] == f"'self' 'sha256-{digest}'"
    assert "unsafe" not in page.headers["content-security-policy"]


@pytest.mark.browser
def test_docs_page_renders_in_chromium_without_network(server: Server) -> None:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"no browser at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")

    requests: list[str] = []
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.on("requestfailed", lambda request: errors.append(
                f"request failed: {request.url} {request.failure}"))
            page.on("console", lambda msg: errors.append(f"console: {msg.text}")
                    if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))

            response = page.goto(f"{server.url}/docs", wait_until="load")
            assert response is not None and response.status == 200
            assert "content-security-policy" in response.headers
            page.locator(".opblock").first.wait_for(state="visible", timeout=30_000)
            decisions = page.locator('.opblock-summary-path[data-path="/v1/decisions"]')
            decisions.first.wait_for(state="visible", timeout=10_000)
            assert page.locator(".opblock").count() >= 5
            assert page.title() == "onetoone - Swagger UI"
            page.wait_for_load_state("networkidle")
        finally:
            browser.close()

    assert f"{server.url}/docs" in requests
    assert f"{server.url}/openapi.json" in requests
    foreign = [url for url in requests if not _same_origin(url, server.url)]
    assert not foreign, f"the page asked other hosts: {foreign}"
    assert not errors, errors
    assert {urlsplit(url).path for url in requests} >= {
        "/static/swagger-ui/swagger-ui-bundle.js", "/static/swagger-ui/swagger-ui.css"}
