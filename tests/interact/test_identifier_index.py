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


def test_an_event_resolved_before_an_identify_job_ended_follows_its_record(
        demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolved with the old links, written after the job changed them: the row takes the
    customer its record is linked to when it is written."""
    from onetoone.interact.events import Event

    with Workspace(demo) as ws:
        service = ws.decisions
        email = "suivie@exemple.fr"
        before = service.decide({"email": email}, "web", {})["customer_id"]
        service.writer.write(lambda _txn: None)  # its reference customer's rows are in
        record_key = ws.store.scalar(
            "SELECT record_key FROM customer_links WHERE customer_id = ?", [before])
        other = ws.store.scalar(
            "SELECT customer_id FROM customers WHERE customer_id <> ? LIMIT 1", [before])
        write = service.writer.write

        def after_a_job(work, timeout=60):  # type: ignore[no-untyped-def]
            # what an identify job does between the look-up and the write: relink, reload
            ws.store.execute("UPDATE customer_links SET customer_id = ? WHERE record_key = ?",
                             [other, record_key])
            service.resolver.generation += 1
            return write(work, timeout)

        monkeypatch.setattr(service.writer, "write", after_a_job)
        event = Event.model_validate({
            "event_id": "late-1", "occurred_at": "2026-11-24T10:00:00Z",
            "customer": {"email": email}, "channel": "web", "type": "page_view"})
        assert service.ingest_events([event])["accepted"] == 1
        monkeypatch.undo()
        assert ws.store.scalar(
            "SELECT customer_id FROM interactions WHERE event_id = 'late-1'") == other
