"""Profiles held as columns (``ProfileStore``) are the very profiles loaded as objects."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from _service_server import CONFIG
from onetoone import Workspace
from onetoone.cli import app
from onetoone.clock import utcnow
from onetoone.customize.profile import Profile
from onetoone.interact.events import Consent
from onetoone.interact.profiles import ProfileStore, load_profiles

pytestmark = pytest.mark.slow


def _state(profile: Profile) -> tuple[object, ...]:
    # a key without a value is no key: rules and templates read both as nothing
    attributes = {k: v for k, v in profile.attributes.items() if v is not None}
    return (profile.customer_id, attributes, profile.consents, profile.contacts, profile.ignores)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scored demo company with decisions, responses (ignores) and consents of the API."""
    from typer.testing import CliRunner

    root = tmp_path_factory.mktemp("profiles") / "demo"
    result = CliRunner().invoke(
        app, ["demo", "--customers", "300", "--seed", "3", "--workspace", str(root)]
    )
    assert result.exit_code == 0, result.output
    config = (root / "onetoone.toml").read_text(encoding="utf-8")
    actions = CONFIG.split("[actions.retention_offer]", 1)[1].split("[api]", 1)[0]
    (root / "onetoone.toml").write_text(
        config + "\n[actions.retention_offer]" + actions, encoding="utf-8"
    )
    with Workspace(root) as ws:
        service = ws.decisions
        ids = [
            r[0]
            for r in ws.store.fetchall(
                "SELECT customer_id FROM customers ORDER BY customer_id LIMIT 40"
            )
        ]
        for i, cid in enumerate(ids):
            service.set_consent(cid, Consent(channel="email", granted=i % 3 != 0))
            payload = service.decide({"customer_id": cid}, "email", {})
            if payload["actions"] and i % 2 == 0:
                service.respond(payload["decision_id"], "ignore")
    return root


def test_every_profile_made_from_columns_is_the_profile_loaded_as_objects(demo: Path) -> None:
    now = utcnow()
    with Workspace(demo, read_only=True) as ws:
        cur = ws.store.con.cursor()
        service_days, outbound = 30, ["email", "sms"]
        objects = load_profiles(cur, None, now, service_days, outbound)
        columns = ProfileStore.load(cur, now, service_days, outbound)
    assert len(columns) == len(objects) > 300  # more customers than people: unmerged records
    assert columns.ids() == sorted(objects)
    with_parts = {"scores": 0, "consents": 0, "contacts": 0, "ignores": 0}
    for cid, expected in objects.items():
        made = columns.peek(cid)
        assert made is not None
        assert _state(made) == _state(expected), cid
        with_parts["scores"] += "p_alive" in made.attributes
        with_parts["consents"] += bool(made.consents)
        with_parts["contacts"] += bool(made.contacts)
        with_parts["ignores"] += bool(made.ignores)
    assert all(with_parts.values()), with_parts  # every part was compared on real rows
    in_chunks = [_state(p) for p in columns.profiles(chunk=7)]  # as a campaign reads them
    assert in_chunks == [_state(objects[c]) for c in sorted(objects)]
    assert columns.peek("no-such-customer") is None


def test_a_profile_made_is_kept_with_its_changes_and_a_peeked_one_is_not(demo: Path) -> None:
    with Workspace(demo, read_only=True) as ws:
        columns = ProfileStore.load(ws.store.con.cursor(), utcnow(), 30, ["email"])
    cid = columns.ids()[0]
    assert columns.made(cid) is None
    peeked = columns.peek(cid)
    assert peeked is not None and columns.made(cid) is None
    got = columns.get(cid)
    assert got is not None and columns.made(cid) is got and columns.get(cid) is got
    got.set_consent("sms", "marketing", True, datetime(2030, 1, 1))
    assert columns.get(cid).consents[("sms", "marketing")] == (True, datetime(2030, 1, 1))
    newcomer = Profile("api-new", {"customer_id": "api-new"})
    assert columns.setdefault("api-new", newcomer) is newcomer
    assert "api-new" in columns and columns.get("api-new") is newcomer
    assert "api-new" in columns.ids() and len(columns) == len(columns.ids())


def test_scores_are_held_typed_when_each_key_has_one_type_else_as_text() -> None:
    import duckdb

    from onetoone.interact.profiles import _scores_structure

    con = duckdb.connect()
    con.execute("CREATE TABLE customer_scores (scores JSON)")
    con.execute("""INSERT INTO customer_scores VALUES ('{"risk": 0.5, "rank": 3, "why": []}'),
        ('{"risk": null, "rank": -1, "why": ["late"], "tier": "top"}'), (NULL)""")
    assert json.loads(_scores_structure(con) or "") == {
        "risk": "DOUBLE",
        "rank": "BIGINT",
        "why": ["VARCHAR"],
        "tier": "VARCHAR",
    }
    con.execute("""INSERT INTO customer_scores VALUES ('{"tier": 1}')""")
    assert _scores_structure(con) is None  # a key that is text here and a number there


def test_a_base_too_large_for_the_load_memory_limit_is_read_without_it(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onetoone.interact import profiles

    with Workspace(demo, read_only=True) as ws:
        cur = ws.store.con.cursor()
        limit = cur.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        expected = ProfileStore.load(cur, utcnow(), 30, ["email"])
        monkeypatch.setattr(profiles, "LOAD_MEMORY_LIMIT", "64KB")
        loaded = ProfileStore.load(cur, utcnow(), 30, ["email"])
        assert cur.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] == limit
    assert len(loaded) == len(expected) > 300
    cid = loaded.ids()[7]
    assert _state(loaded.peek(cid)) == _state(expected.peek(cid))
