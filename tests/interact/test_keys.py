"""API keys, one domain object (``Workspace.keys``) for the CLI and the REST API."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from _service_server import CONFIG
from onetoone import Workspace
from onetoone.cli import app
from onetoone.errors import InvalidInputError, NotFoundError


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
