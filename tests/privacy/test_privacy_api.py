"""A person's rights and the audit log over real HTTP: export and erasure under the scope
``privacy``, every read of one person audited with the key's name, the audit log never
writable through the API, and the erased values out of the database file once the server
stops."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from _service_server import CONFIG, Server, crm_sources, make_workspace
from onetoone import Workspace
from onetoone.cli import app

CRM = """id;prenom;nom;mail;tel
1;Marie;Zorglub;marie.zorglub@exemple.fr;0612345678
2;John;Smith;john.smith@example.co.uk;0698765432
3;Paul;Durand;paul.durand@exemple.fr;0655555555
"""
SOURCES = crm_sources({"source_id": "id", "first_name": "prenom", "last_name": "nom",
                       "email": "mail", "phone": "tel"})


def _audit(server: Server, where: str = "") -> list[dict[str, Any]]:
    """The audit log as an admin reads it (entries of reads are committed within ms)."""
    query = ('SELECT actor, action, customer_id, details FROM audit_log '
             f'{where} ORDER BY "at"')
    with server.client("admin") as client:
        answer = client.post("/v1/sql", json={"query": query})
    assert answer.status_code == 200, answer.text
    data = answer.json()
    return [dict(zip(data["columns"], row, strict=True)) for row in data["rows"]]


def _until(check: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_export_erase_and_the_audit_log_over_http(tmp_path: Path) -> None:
    (tmp_path / "crm.csv").write_text(CRM, encoding="utf-8")
    keys = make_workspace(tmp_path, CONFIG + SOURCES)
    with Workspace(tmp_path) as ws:
        ws.ingest()
        ws.identify()
    server = Server(tmp_path, keys).start()
    try:
        with server.client("reader") as reader:
            found = reader.get("/v1/customers",
                               params={"identifier": "email:Marie.Zorglub@exemple.fr"})
            assert found.status_code == 200
            marie = found.json()["customer_id"]
            assert reader.get(f"/v1/customers/{marie}").status_code == 200
            # a reader may not export nor erase
            assert reader.get(f"/v1/customers/{marie}/export").status_code == 403
            assert reader.delete(f"/v1/customers/{marie}").status_code == 403
        reads = _until(lambda: (lambda found: found if len(found) >= 2 else [])(
            _audit(server, "WHERE action = 'customer.read'")))
        assert [(e["actor"], e["customer_id"]) for e in reads] == [("key:reader", marie)] * 2
        with server.client("consents") as client:
            assert client.put(f"/v1/customers/{marie}/consents", json={
                "channel": "email", "purpose": "marketing", "granted": True}).status_code == 200
        changes = _audit(server, "WHERE action = 'consent.change'")
        assert changes and changes[0]["actor"] == "key:consents"
        assert '"granted": true' in changes[0]["details"]

        with server.client("privacy") as client:
            export = client.get(f"/v1/customers/{marie}/export")
            assert export.status_code == 200
            document = export.json()
            assert document["customer_id"] == marie
            assert document["source_records"][0]["email"] == "marie.zorglub@exemple.fr"
            assert document["tables"]["consents"][0]["granted"] is True
            erased = client.delete(f"/v1/customers/{marie}")
            assert erased.status_code == 200, erased.text
            assert erased.json()["rows"]["customer_records"] == 1
            assert client.delete(f"/v1/customers/{marie}").json()["already"] is True
            assert client.delete("/v1/customers/NOPE").status_code == 404
        with server.client("reader") as reader:
            assert reader.get(f"/v1/customers/{marie}").status_code == 404
            assert reader.get("/v1/customers", params={
                "identifier": "email:marie.zorglub@exemple.fr"}).status_code == 404
        actions = [(e["actor"], e["action"]) for e in _audit(server, f"WHERE customer_id = "
                                                             f"'{marie}'")]
        assert ("key:privacy", "privacy.export") in actions
        assert ("key:privacy", "privacy.erase") in actions
        # the command line goes through the server: an erase job, by the local admin key
        exported = CliRunner().invoke(app, ["privacy", "export", "--phone", "06 98 76 54 32",
                                            "--workspace", str(tmp_path)])
        assert exported.exit_code == 0, exported.output
        assert '"email": "john.smith@example.co.uk"' in exported.output
        erased_cli = CliRunner().invoke(app, ["privacy", "erase", "--email",
                                              "john.smith@example.co.uk", "--anonymise",
                                              "--workspace", str(tmp_path)])
        assert erased_cli.exit_code == 0, erased_cli.output
        assert "Anonymised" in erased_cli.output and "when the server stops" in erased_cli.output
        jobs = _audit(server, "WHERE action = 'privacy.anonymise'")
        assert [e["actor"] for e in jobs] == ["key:local-cli"]
        with server.client("admin") as admin:  # the audit log is written by onetoone only
            refused = admin.post("/v1/sql", json={
                "query": "INSERT INTO audit_log VALUES (now(), 'x', 'y', NULL, NULL)"})
            assert refused.status_code == 422
            refused = admin.post("/v1/sql", json={"query": "DELETE FROM audit_log"})
            assert refused.status_code == 422
    finally:
        server.stop()
    # the server compacted the file as it stopped: the erased values are gone from it
    data = (tmp_path / "onetoone.duckdb").read_bytes()
    assert b"marie.zorglub@exemple.fr" not in data and b"+33612345678" not in data
    assert b"john.smith@example.co.uk" not in data
    assert b"paul.durand@exemple.fr" in data  # the check can fail
    assert "compacted" in server.log.read_text()
