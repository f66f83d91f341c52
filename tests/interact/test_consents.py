"""Consent changes rank by when they are received: a backdated withdrawal still withdraws,
now and after a restart; a database of version 4 gains the column that says it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from _service_server import CONFIG
from onetoone import Workspace
from onetoone.interact.events import Consent
from onetoone.schema import SCHEMA_VERSION


def test_a_backdated_withdrawal_outranks_an_earlier_grant(tmp_path: Path) -> None:
    root = tmp_path / "w"
    with Workspace.init(root, config_text=CONFIG) as ws:
        service = ws.decisions
        customer_id = service.decide({"email": "retour@exemple.fr"}, "web", {})["customer_id"]
        service.set_consent(customer_id, Consent(channel="email", granted=True))
        assert service.decide({"customer_id": customer_id}, "email", {})["actions"]
        backdated = Consent(channel="email", granted=False,
                            occurred_at=datetime(2020, 1, 1, tzinfo=UTC))
        states = service.set_consent(customer_id, backdated)["consents"]
        assert [(c["channel"], c["granted"]) for c in states] == [("email", False)]
        assert service.decide({"customer_id": customer_id}, "email", {})["actions"] == []
    with Workspace(root) as ws:  # profiles read again from the tables
        service = ws.decisions
        assert service.decide({"customer_id": customer_id}, "email", {})["actions"] == []
        view = service.customer_view(customer_id)["consents"]
        assert [(c["channel"], c["granted"], str(c["occurred_at"])[:10]) for c in view] == [
            ("email", False, "2020-01-01")]


def test_a_version_4_database_gains_received_at(tmp_path: Path) -> None:
    root = tmp_path / "old"
    with Workspace.init(root, config_text=CONFIG) as ws:
        ws.store.execute("ALTER TABLE consents DROP COLUMN received_at")
        ws.store.execute("UPDATE onetoone_meta SET value = '4' WHERE key = 'schema_version'")
    with Workspace(root) as ws:
        assert ws.store.schema_version() == SCHEMA_VERSION
        assert "received_at" in [r[0] for r in ws.store.fetchall("DESCRIBE consents")]
