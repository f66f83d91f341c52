"""The service's identifier index answers as the tables do, follows merges, and keeps the
customers the service creates until a fresh index holds them."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from onetoone import Workspace
from onetoone.cli import app
from onetoone.interact.identity import IdentifierIndex, identifier_hash

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("index") / "demo"
    result = CliRunner().invoke(
        app, ["demo", "--customers", "300", "--seed", "5", "--workspace", str(root)])
    assert result.exit_code == 0, result.output
    return root


def test_the_hash_is_the_one_the_database_computes(demo: Path) -> None:
    with Workspace(demo) as ws:
        keys = [r[0] for r in ws.store.fetchall(
            "SELECT DISTINCT type || ':' || value FROM identifiers LIMIT 50")]
        for key in [*keys, "email:élodie@exemple.fr", ""]:
            assert ws.store.scalar("SELECT md5_number_upper(?)", [key]) == identifier_hash(key)


def test_every_identifier_and_customer_is_found_as_the_tables_say(demo: Path) -> None:
    with Workspace(demo) as ws:
        index = IdentifierIndex.load(ws.store.con.cursor())
        expected = dict(ws.store.fetchall("""
            SELECT i.type || ':' || i.value, min(l.customer_id)
            FROM identifiers i JOIN customer_links l USING (record_key) GROUP BY ALL"""))
        assert len(index) == len(expected) > 300
        for key, customer_id in expected.items():
            found = index.find(key)
            assert found is not None and found[0] == customer_id, key
        for customer_id, record_key in ws.store.fetchall(
                "SELECT customer_id, min(record_key) FROM customer_links GROUP BY ALL"):
            assert index.customer(customer_id) == (customer_id, record_key)
        assert index.find("email:nobody@nowhere.example") is None
        assert index.customer("C0000000000") is None
        assert IdentifierIndex.empty().find("email:a@b.fr") is None


def test_a_merged_id_leads_to_the_survivor_after_a_refresh(demo: Path) -> None:
    with Workspace(demo) as ws:
        a, b = (r[0] for r in ws.store.fetchall(
            "SELECT customer_id FROM customers ORDER BY customer_id LIMIT 2"))
        email_b = ws.store.scalar(
            "SELECT i.type || ':' || i.value FROM identifiers i JOIN customer_links l "
            "USING (record_key) WHERE l.customer_id = ? AND i.type = 'email' LIMIT 1", [b])
        service = ws.decisions
        assert service.resolver.customer(b) is not None
        ws.identity.merge(a, b)
        survivor = ws.store.scalar(
            "SELECT customer_id FROM customers WHERE customer_id IN (?, ?)", [a, b])
        merged = b if survivor == a else a
        service.refresh()
        assert service.resolver.customer(merged)[0] == survivor  # type: ignore[index]
        if email_b is not None:
            kind, value = email_b.split(":", 1)
            assert service.find_customer({kind: value}) == survivor
        answer = service.decide({"customer_id": merged}, "web", {})
        assert answer["customer_id"] == survivor


def test_a_customer_created_by_the_service_is_found_before_and_after_a_refresh(
        demo: Path) -> None:
    with Workspace(demo) as ws:
        service = ws.decisions
        ref = {"email": "Nouvelle.Cliente@Exemple.FR"}
        first = service.decide(ref, "web", {})["customer_id"]
        assert service.resolver.find_cached(ref) is not None  # no database read needed
        assert service.find_customer(ref) == first
        service.refresh()  # the fresh index holds it now
        assert service.resolver.base.find("email:nouvelle.cliente@exemple.fr") is not None
        assert service.decide(ref, "web", {})["customer_id"] == first
        assert ws.store.scalar(
            "SELECT count(*) FROM customers WHERE email = 'nouvelle.cliente@exemple.fr'") == 1
