"""Keys and requests under limits, against the real server: expiry, rotation and their audit,
the per-key request rate, the bound on new customers per key, bounded rules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from _service_server import CONFIG, Server, make_workspace
from onetoone import Workspace

#: A refill every 50 s (one every 30 s for customers): a test never waits for one.
LIMITED = CONFIG.replace(
    "[api]\n", "[api]\nrate_limit = 0.02\nrate_burst = 4\nnew_identities_per_minute = 2\n"
) + """
[actions.bounded]
issue = "growth"
channels = ["web"]
eligibility = "context_a * context_b != ''"
value = 1
"""
EXTRA_KEYS = {"burst": ["decisions"], "other": ["decisions"], "web": ["decisions"],
              "pixel": ["events:write"], "rules": ["decisions"]}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with a small rate limit and bound; every test uses keys of its own."""
    root: Path = tmp_path_factory.mktemp("limited")
    keys = make_workspace(root, LIMITED)
    with Workspace(root) as ws:
        keys.update({name: ws.keys.create(name, scopes) for name, scopes in EXTRA_KEYS.items()})
    srv = Server(root, keys).start()
    yield srv
    srv.stop()


def _as(server: Server, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"},
                        timeout=30)


def _audit(server: Server, name: str) -> list[list[object]]:
    with server.client("admin") as c:
        r = c.post("/v1/sql", json={"query": "SELECT actor, action, details FROM audit_log "
                                             "WHERE action LIKE 'apikey.%' ORDER BY \"at\""})
        assert r.status_code == 200, r.text
        return [row for row in r.json()["rows"] if f'"{name}"' in str(row[2])]


# -- expiry and rotation ----------------------------------------------------------------
def test_rotation_keeps_the_old_key_for_the_grace_and_revoke_ends_both(server: Server) -> None:
    with server.client("admin") as admin:
        made = admin.post("/v1/apikeys", json={"name": "partner", "scopes": ["decisions"],
                                              "expires_in_days": 30})
        assert made.status_code == 200, made.text
        old = made.json()["key"]
        assert made.json()["expires_at"] is not None
        turned = admin.post("/v1/apikeys/partner/rotate", json={"grace_days": 1})
        assert turned.status_code == 200, turned.text
        new = turned.json()["key"]
        assert new != old and turned.json()["scopes"] == ["decisions"]
        assert turned.json()["previous_expires_at"] < turned.json()["expires_at"]
        for key in (old, new):  # both valid during the grace
            with _as(server, key) as c:
                assert c.get("/v1/ping").status_code == 200
        listed = [k for k in admin.get("/v1/apikeys").json() if k["name"] == "partner"]
        assert len(listed) == 2 and all(k["expires_at"] for k in listed)
        assert admin.post("/v1/apikeys/nobody/rotate", json={}).status_code == 404
        gone = admin.delete("/v1/apikeys/partner")
        assert gone.status_code == 200 and gone.json()["revoked"] == 2
        for key in (old, new):
            with _as(server, key) as c:
                assert c.get("/v1/ping").status_code == 401
    entries = _audit(server, "partner")
    assert [(actor, action) for actor, action, _ in entries] == [
        ("key:admin", "apikey.create"), ("key:admin", "apikey.rotate"),
        ("key:admin", "apikey.revoke")]
    assert all(old not in str(e) and new not in str(e) for e in entries)


def test_an_expired_key_is_401_with_its_date_without_a_restart(server: Server) -> None:
    with server.client("admin") as admin:
        old = admin.post("/v1/apikeys", json={"name": "shortlived",
                                              "scopes": ["decisions"]}).json()["key"]
        turned = admin.post("/v1/apikeys/shortlived/rotate", json={"grace_days": 0})
        assert turned.status_code == 200, turned.text
        with _as(server, old) as c:
            r = c.get("/v1/ping")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"] == "AuthenticationError"
        assert r.json()["message"].startswith("This API key expired on ")
        assert "create a new one or rotate it" in r.json()["message"]
        with _as(server, turned.json()["key"]) as c:
            assert c.get("/v1/ping").status_code == 200
        both = admin.post("/v1/apikeys", json={"name": "x", "scopes": ["decisions"],
                                               "expires_in_days": 1,
                                               "expires_at": "2030-01-01T00:00:00"})
        past = admin.post("/v1/apikeys", json={"name": "x", "scopes": ["decisions"],
                                               "expires_at": "2001-01-01T00:00:00"})
        assert both.status_code == 422 and past.status_code == 422
        assert "in the past" in past.json()["message"]


# -- request rate -------------------------------------------------------------------------
def test_over_the_rate_limit_is_429_with_retry_after(limited: Server) -> None:
    with limited.client("burst") as c:
        assert [c.get("/v1/ping").status_code for _ in range(4)] == [200] * 4
        r = c.get("/v1/ping")
    assert r.status_code == 429
    retry = r.headers["retry-after"]
    assert retry.isdigit() and int(retry) >= 1
    assert r.json()["error"] == "RateLimitedError"
    assert r.json()["message"].startswith("This API key sent more than")
    with limited.client("other") as c:  # a bucket per key
        assert c.get("/v1/ping").status_code == 200


# -- new customers ------------------------------------------------------------------------
def _exists(server: Server, email: str) -> bool:
    with server.client("reader") as c:
        return c.get("/v1/customers", params={"identifier": f"email:{email}"}).status_code == 200


def test_decisions_create_at_most_the_bound_of_new_customers_per_key(limited: Server) -> None:
    def decide(c: httpx.Client, email: str) -> httpx.Response:
        return c.post("/v1/decisions", json={"customer": {"email": email}, "channel": "web"})

    with limited.client("web") as c:
        assert decide(c, "first@exemple.fr").status_code == 200
        assert decide(c, "second@exemple.fr").status_code == 200
        r = decide(c, "third@exemple.fr")
        assert r.status_code == 429, r.text
        assert int(r.headers["retry-after"]) >= 1
        assert "nothing was created" in r.json()["message"]
        assert decide(c, "first@exemple.fr").status_code == 200  # known: not counted
    assert not _exists(limited, "third@exemple.fr")


def test_an_event_batch_over_the_bound_creates_no_one(limited: Server) -> None:
    def batch(*emails: str) -> dict[str, object]:
        return {"events": [{"event_id": f"bound-{e}", "occurred_at": "2026-11-24T10:00:00Z",
                            "customer": {"email": e}, "channel": "web",
                            "type": "page_view"} for e in emails]}

    with limited.client("pixel") as c:
        r = c.post("/v1/events", json=batch("p1@exemple.fr", "p2@exemple.fr", "p3@exemple.fr"))
        assert r.status_code == 429, r.text
        assert r.json()["error"] == "RateLimitedError"
        assert int(r.headers["retry-after"]) >= 1
        assert not _exists(limited, "p1@exemple.fr")
        ok = c.post("/v1/events", json=batch("p1@exemple.fr", "p2@exemple.fr"))
        assert ok.status_code == 200 and ok.json()["accepted"] == 2


# -- rules --------------------------------------------------------------------------------
def test_a_rule_multiplying_huge_context_values_is_422_not_500(limited: Server) -> None:
    with limited.client("rules") as c:
        r = c.post("/v1/decisions", json={"customer": {"email": "rules@exemple.fr"},
                                          "channel": "web",
                                          "context": {"a": "x" * 1000, "b": 10**12}})
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "RuleLimitError"
        assert r.json()["message"] == ("The rule 'context_a * context_b != ''' would compute "
                                       "a string longer than 10,000 items.")
        fine = c.post("/v1/decisions", json={"customer": {"email": "rules@exemple.fr"},
                                             "channel": "web", "context": {"a": "x", "b": 2}})
        assert fine.status_code == 200, fine.text  # the server serves on, small values pass
