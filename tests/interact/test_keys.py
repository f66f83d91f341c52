"""API keys, one domain object (``Workspace.keys``) for the CLI and the REST API."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from _service_server import CONFIG
from onetoone import Workspace
from onetoone.cli import app
from onetoone.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
)
from onetoone.interact import keys as keys_module
from onetoone.interact.events import Event
from onetoone.interact.keys import (
    CALLER,
    Principal,
    TokenBuckets,
    hash_key,
    parse_duration,
    parse_expiry,
)
from onetoone.privacy.audit import cli_actor


def test_create_list_revoke_without_the_service(tmp_path: Path) -> None:
    with Workspace.init(tmp_path, config_text=CONFIG) as ws:
        key = ws.keys.create("crm", ["decisions", "decisions", " customers:read "])
        principal = ws.keys.principal(key)
        assert principal is not None and principal.name == "crm"
        assert principal.scopes == {"decisions", "customers:read"}
        assert ws.keys.principal(key + "x") is None
        (listed,) = ws.keys.list()
        assert listed["name"] == "crm" and listed["revoked_at"] is None
        assert key not in str(listed) and hashlib.sha256(key.encode()).hexdigest() not in str(
            listed)
        with pytest.raises(InvalidInputError):
            ws.keys.create("", ["decisions"])
        with pytest.raises(InvalidInputError):
            ws.keys.create("x", ["root"])
        assert ws.keys.revoke("crm") == 1
        assert ws.keys.principal(key) is None
        with pytest.raises(NotFoundError):
            ws.keys.revoke("crm")
    with Workspace(tmp_path) as ws:  # revoked for good, stored
        assert ws.keys.principal(key) is None
        assert ws.keys.list()[0]["revoked_at"] is not None


def test_keys_written_through_the_running_service(tmp_path: Path) -> None:
    with Workspace.init(tmp_path, config_text=CONFIG) as ws:
        service = ws.decisions  # the writer owns the writes while it runs
        key = ws.keys.create("web", ["events:write"])
        assert service.keys.principal(key) is not None
        assert ws.store.scalar("SELECT count(*) FROM api_keys WHERE name = 'web'") == 1
        ws.keys.revoke("web")
        assert service.keys.principal(key) is None
    with Workspace(tmp_path) as ws:
        assert ws.store.scalar("SELECT count(*) FROM api_keys WHERE revoked_at IS NOT NULL") == 1


def test_apikey_list_shows_names_never_keys(tmp_path: Path) -> None:
    with Workspace.init(tmp_path, config_text=CONFIG) as ws:
        key = ws.keys.create("crm-sync", ["admin"])
    result = CliRunner().invoke(app, ["apikey", "list", "--workspace", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "crm-sync" in result.output and "admin" in result.output
    assert key not in result.output


def test_two_valid_keys_never_share_a_name(tmp_path: Path) -> None:
    with Workspace.init(tmp_path / "w") as ws:
        ws.keys.create("website", ["decisions"])
        with pytest.raises(InvalidInputError, match="already named 'website'"):
            ws.keys.create("website", ["admin"])
        assert ws.keys.revoke("website") == 1
        ws.keys.create("website", ["decisions"])  # the name is free again once revoked
        assert [k["name"] for k in ws.keys.list()] == ["website", "website"]


# -- expiry, rotation, audit ------------------------------------------------------------
def _audit(ws: Workspace) -> list[tuple[str, str, dict[str, object]]]:
    rows = ws.store.fetchall("SELECT actor, action, details FROM audit_log "
                             "WHERE action LIKE 'apikey.%' ORDER BY \"at\"")
    return [(actor, action, json.loads(details)) for actor, action, details in rows]


def test_an_expired_key_is_refused_with_its_date_frees_its_name_and_can_be_rotated(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime(2026, 3, 1, 12, 0)
    monkeypatch.setattr(keys_module, "utcnow", lambda: now)
    with Workspace.init(tmp_path, config_text=CONFIG) as ws:
        key = ws.keys.create("crm", ["decisions"], expires_at=now + timedelta(hours=1))
        ws.keys.create("partner", ["events:write"], expires_at=now + timedelta(hours=1))
        assert ws.keys.authenticate(key).expires_at == now + timedelta(hours=1)
        assert [k["expires_at"] for k in ws.keys.list()] == [now + timedelta(hours=1)] * 2
        with pytest.raises(InvalidInputError, match="already named"):
            ws.keys.create("crm", ["decisions"])
        now += timedelta(hours=2)  # no restart: the ring knows the expiry
        with pytest.raises(AuthenticationError,
                           match="expired on 2026-03-01 13:00 UTC; create a new one or rotate"):
            ws.keys.authenticate(key)
        assert ws.keys.principal(key) is None
        ws.keys.create("partner", ["decisions"])  # an expired key no longer holds its name
        rotated = ws.keys.rotate("crm")  # as the message says
        assert ws.keys.authenticate(rotated.key).scopes == {"decisions"}
        assert rotated.expires_at == now + timedelta(hours=1)  # the same lifetime
        with pytest.raises(InvalidInputError, match="in the past"):
            ws.keys.create("late", ["decisions"], expires_at=now - timedelta(seconds=1))
    with Workspace(tmp_path) as ws, pytest.raises(AuthenticationError, match="expired on"):
        ws.keys.authenticate(key)  # the expiry is stored


def test_rotation_keeps_the_old_key_for_the_grace_then_revoke_takes_both(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime(2026, 3, 1, 12, 0)
    monkeypatch.setattr(keys_module, "utcnow", lambda: now)
    with Workspace.init(tmp_path, config_text=CONFIG) as ws:
        _ = ws.decisions  # writes go through the running service's writer
        old = ws.keys.create("crm", ["decisions", "customers:read"],
                             expires_at=now + timedelta(days=90))
        now += timedelta(days=10)
        rotated = ws.keys.rotate("crm", timedelta(days=7))
        assert rotated.key != old and rotated.scopes == ["decisions", "customers:read"]
        assert rotated.previous_expires_at == now + timedelta(days=7)
        assert rotated.expires_at == now + timedelta(days=90)  # the old key's lifetime
        new = ws.keys.authenticate(rotated.key)
        assert new.name == "crm" and new.scopes == {"decisions", "customers:read"}
        assert ws.keys.authenticate(old).expires_at == now + timedelta(days=7)
        listed = ws.keys.list()
        assert [(k["name"], k["expires_at"]) for k in listed] == [
            ("crm", now + timedelta(days=7)), ("crm", now + timedelta(days=90))]
        with pytest.raises(InvalidInputError, match="already named"):
            ws.keys.create("crm", ["admin"])  # the pair holds the name
        now += timedelta(days=8)
        with pytest.raises(AuthenticationError, match="expired on"):
            ws.keys.authenticate(old)
        assert ws.keys.authenticate(rotated.key).name == "crm"
        assert ws.keys.revoke("crm") == 2
        assert ws.keys.principal(rotated.key) is None
        with pytest.raises(NotFoundError):
            ws.keys.rotate("crm")
    with Workspace(tmp_path) as ws:
        assert all(k["revoked_at"] is not None for k in ws.keys.list())


def test_rotation_without_grace_ends_the_old_key_at_once(tmp_path: Path) -> None:
    with Workspace.init(tmp_path, config_text=CONFIG) as ws:
        old = ws.keys.create("web", ["events:write"])
        rotated = ws.keys.rotate("web", timedelta(0))
        assert rotated.expires_at is None  # the old key never expired: nor does the new one
        with pytest.raises(AuthenticationError, match="expired on"):
            ws.keys.authenticate(old)
        assert ws.keys.authenticate(rotated.key).name == "web"
        with pytest.raises(InvalidInputError, match="negative"):
            ws.keys.rotate("web", timedelta(hours=-1))


def test_key_changes_are_audited_with_name_and_scopes_never_the_key(tmp_path: Path) -> None:
    with Workspace.init(tmp_path, config_text=CONFIG) as ws:
        key = ws.keys.create("crm", ["decisions"])
        rotated = ws.keys.rotate("crm", timedelta(days=1), actor="key:ops")
        ws.keys.revoke("crm", actor="key:ops")
        entries = _audit(ws)
        text = str(ws.store.fetchall("SELECT * FROM audit_log"))
    assert entries == [
        (cli_actor(), "apikey.create", {"name": "crm", "scopes": ["decisions"]}),
        ("key:ops", "apikey.rotate", {"name": "crm", "scopes": ["decisions"]}),
        ("key:ops", "apikey.revoke", {"name": "crm", "scopes": ["decisions"]}),
    ]
    assert key not in text and rotated.key not in text and hash_key(key) not in text


def test_a_key_name_that_looks_like_personal_data_is_refused(tmp_path: Path) -> None:
    with Workspace.init(tmp_path, config_text=CONFIG) as ws:
        for name in ("ana@example.fr", "shop-0612345678"):
            with pytest.raises(InvalidInputError, match="audit log"):
                ws.keys.create(name, ["decisions"])
        assert ws.keys.list() == []


@pytest.mark.parametrize(("text", "expected"), [
    ("90d", datetime(2026, 5, 30, 12, 0)),
    ("12h", datetime(2026, 3, 2, 0, 0)),
    ("1.5d", datetime(2026, 3, 3, 0, 0)),
    ("2027-01-31", datetime(2027, 1, 31)),
    ("2027-01-31T18:00+01:00", datetime(2027, 1, 31, 17, 0)),
])
def test_expiry_is_a_duration_or_a_date(text: str, expected: datetime) -> None:
    assert parse_expiry(text, now=datetime(2026, 3, 1, 12, 0)) == expected


@pytest.mark.parametrize("text", ["90", "soon", "7w", "99999999999d"])
def test_a_wrong_expiry_is_one_sentence(text: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_expiry(text, now=datetime(2026, 3, 1, 12, 0))
    with pytest.raises(InvalidInputError, match="not a duration"):
        parse_duration(text)


# -- limits -------------------------------------------------------------------------------
def test_token_buckets_allow_a_burst_then_the_rate() -> None:
    clock = [100.0]
    buckets = TokenBuckets(rate=2, burst=3, clock=lambda: clock[0])
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 0]
    assert buckets.take("a") == pytest.approx(0.5)  # half a second for the next token
    assert buckets.take("b") == 0  # another key has its own bucket
    clock[0] += 0.5
    assert buckets.take("a") == 0
    assert buckets.take("a", 5) == float("inf")  # more than a burst never fits
    clock[0] += 100
    assert buckets.take("a", 3) == 0 and buckets.take("a") > 0  # refilled to the burst only


def test_the_request_rate_is_bounded_per_key(tmp_path: Path) -> None:
    config = CONFIG.replace("[api]\n", "[api]\nrate_limit = 0.01\nrate_burst = 2\n")
    with Workspace.init(tmp_path, config_text=config) as ws:
        first, second = ws.keys.create("a", ["decisions"]), ws.keys.create("b", ["decisions"])
        ws.keys.authenticate(first)
        ws.keys.authenticate(first)
        with pytest.raises(RateLimitedError, match=r"more than 0\.01 requests a second") as over:
            ws.keys.authenticate(first)
        assert over.value.http_status == 429 and over.value.retry_after >= 1
        assert isinstance(over.value.retry_after, int)
        assert ws.keys.authenticate(second).name == "b"


def test_new_customers_are_bounded_per_key_and_nothing_is_created_over_the_bound(
        tmp_path: Path) -> None:
    config = CONFIG.replace("[api]\n", "[api]\nnew_identities_per_minute = 2\n")
    with Workspace.init(tmp_path, config_text=config) as ws:
        service = ws.decisions
        token = CALLER.set(Principal("web", frozenset({"decisions", "events:write"})))
        try:
            for i in range(2):
                service.decide({"email": f"new{i}@exemple.fr"}, "web", {})
            service.decide({"email": "new0@exemple.fr"}, "web", {})  # known: not counted
            with pytest.raises(RateLimitedError, match="at most 2 a minute") as over:
                service.decide({"email": "new2@exemple.fr"}, "web", {})
            assert over.value.retry_after >= 1
            with pytest.raises(NotFoundError):
                service.find_customer({"email": "new2@exemple.fr"})
            event = Event.model_validate({
                "event_id": "e1", "occurred_at": "2026-03-01T10:00:00+01:00",
                "customer": {"email": "new3@exemple.fr"}, "channel": "web", "type": "page_view"})
            with pytest.raises(RateLimitedError):
                service.ingest_events([event])
            with pytest.raises(NotFoundError):
                service.find_customer({"email": "new3@exemple.fr"})
            CALLER.set(Principal("ops", frozenset({"admin"})))  # admin keys are not bounded
            assert service.ingest_events([event])["accepted"] == 1
        finally:
            CALLER.reset(token)
        # the CLI, a campaign, Python: no caller, no bound
        service.decide({"email": "new4@exemple.fr"}, "web", {})


# -- the command line -------------------------------------------------------------------
def test_apikey_commands_expire_rotate_and_list_both_keys(tmp_path: Path) -> None:
    with Workspace.init(tmp_path, config_text=CONFIG):
        pass
    runner, where = CliRunner(), ["--workspace", str(tmp_path)]
    made = runner.invoke(app, ["apikey", "create", "crm", "--scopes", "decisions",
                               "--expires-in", "90d", *where])
    assert made.exit_code == 0, made.output
    assert "valid until" in made.output
    old = made.output.strip().splitlines()[-1]
    turned = runner.invoke(app, ["apikey", "rotate", "crm", "--grace", "12h", *where])
    assert turned.exit_code == 0, turned.output
    new = turned.output.strip().splitlines()[-1]
    assert new.startswith("oto_") and new != old and "old key stays valid until" in turned.output
    listed = runner.invoke(app, ["apikey", "list", *where])
    assert listed.exit_code == 0 and "expires" in listed.output
    assert listed.output.count("crm") == 2 and old not in listed.output
    wrong = runner.invoke(app, ["apikey", "rotate", "crm", "--grace", "soon", *where])
    assert wrong.exit_code != 0 and "not a duration" in wrong.output
    gone = runner.invoke(app, ["apikey", "revoke", "crm", *where])
    assert gone.exit_code == 0 and "2 key(s)" in gone.output
    with Workspace(tmp_path) as ws:
        assert ws.keys.principal(old) is None and ws.keys.principal(new) is None
        assert [a[:2] for a in _audit(ws)] == [(cli_actor(), "apikey.create"),
                                              (cli_actor(), "apikey.rotate"),
                                              (cli_actor(), "apikey.revoke")]
