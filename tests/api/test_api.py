"""The REST contract against the real server: auth, events, customers, consents, decisions."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from _service_server import Server


def _event(event_id: str, email: str, **extra: object) -> dict[str, object]:
    event: dict[str, object] = {
        "event_id": event_id, "occurred_at": "2026-11-24T10:00:00+01:00",
        "customer": {"email": email}, "channel": "web", "type": "page_view",
        "properties": {"page": "/soldes"}}
    event.update(extra)
    return event


def _customer(server: Server, email: str) -> str:
    with server.client("events") as c:
        assert c.post("/v1/events", json=_event(f"seed-{email}", email)).status_code == 200
    with server.client("reader") as c:
        return str(c.get("/v1/customers", params={"identifier": f"email:{email}"})
                   .json()["customer_id"])


def _consent(server: Server, customer_id: str, channel: str, granted: bool) -> None:
    with server.client("consents") as c:
        r = c.put(f"/v1/customers/{customer_id}/consents",
                  json={"channel": channel, "purpose": "marketing", "granted": granted})
        assert r.status_code == 200, r.text


def _decide(server: Server, customer_id: str, channel: str,
            context: dict[str, object] | None = None) -> dict[str, object]:
    with server.client("decider") as c:
        r = c.post("/v1/decisions", json={"customer": {"customer_id": customer_id},
                                          "channel": channel, "context": context or {}})
        assert r.status_code == 200, r.text
        return dict(r.json())


# -- authentication ---------------------------------------------------------------------
def test_401_without_key_or_with_an_invalid_one(server: Server) -> None:
    with server.client(None) as c:
        r = c.post("/v1/decisions", json={"customer": {"email": "a@b.fr"}, "channel": "web"})
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        r = c.get("/v1/customers/C1", headers={"Authorization": "Bearer oto_wrong"})
        assert r.status_code == 401


@pytest.mark.parametrize(("key", "method", "path", "body"), [
    ("reader", "POST", "/v1/events", {"events": []}),
    ("events", "POST", "/v1/decisions", {"customer": {"email": "a@b.fr"}, "channel": "web"}),
    ("decider", "GET", "/v1/customers/C1", None),
    ("decider", "POST", "/v1/apikeys", {"name": "x", "scopes": ["admin"]}),
])
def test_403_when_the_key_lacks_the_scope(server: Server, key: str, method: str, path: str,
                                          body: object) -> None:
    with server.client(key) as c:
        r = c.request(method, path, json=body)
    assert r.status_code == 403
    assert "scope" in r.json()["message"]


# -- events -----------------------------------------------------------------------------
def test_duplicate_event_ids_count_once(server: Server) -> None:
    email = "dup@exemple.fr"
    with server.client("events") as c:
        first = c.post("/v1/events", json=_event("dup-1", email)).json()
        again = c.post("/v1/events", json=_event("dup-1", email)).json()
        batch = c.post("/v1/events", json={"events": [
            _event("dup-1", email), _event("dup-2", email), _event("dup-2", email)]}).json()
    assert first == {"received": 1, "accepted": 1, "duplicates": 0, "conversions": 0}
    assert again == {"received": 1, "accepted": 0, "duplicates": 1, "conversions": 0}
    assert batch == {"received": 3, "accepted": 1, "duplicates": 2, "conversions": 0}
    with server.client("reader") as c:
        view = c.get("/v1/customers", params={"identifier": f"email:{email}"}).json()
    ids = sorted(i["event_id"] for i in view["interactions"])
    assert ids == ["dup-1", "dup-2"]


def test_identifiers_are_normalized_like_ingestion_and_both_lookups_agree(
        server: Server) -> None:
    with server.client("events") as c:
        r = c.post("/v1/events", json=_event("norm-1", " Marie.Curie@Exemple.FR "))
        assert r.status_code == 200
        r = c.post("/v1/events", json={
            "event_id": "buy-1", "occurred_at": "2026-11-24T11:00:00+01:00",
            "customer": {"email": "marie.curie@exemple.fr"}, "channel": "store",
            "type": "purchase", "properties": {"amount": 89.9, "store_id": "PAR-01"}})
        assert r.status_code == 200
    with server.client("reader") as c:
        by_identifier = c.get("/v1/customers",
                              params={"identifier": "email:MARIE.CURIE@exemple.fr"}).json()
        customer_id = by_identifier["customer_id"]
        by_id = c.get(f"/v1/customers/{customer_id}").json()
    assert by_id == by_identifier
    assert by_id["profile"]["email"] == "marie.curie@exemple.fr"
    assert by_id["profile"]["sources"] == ["api"]
    kinds = {(i["type"], i["amount"]) for i in by_id["interactions"]}
    assert kinds == {("page_view", None), ("purchase", 89.9)}
    assert by_id["interactions"][0]["occurred_at"] == "2026-11-24T10:00:00"  # UTC, latest first


def test_unknown_customers_are_404(server: Server) -> None:
    with server.client("reader") as c:
        assert c.get("/v1/customers/CNOPE").status_code == 404
        r = c.get("/v1/customers", params={"identifier": "email:nobody@exemple.fr"})
        assert r.status_code == 404
        assert "No customer" in r.json()["message"]


@pytest.mark.parametrize(("body", "words"), [
    ({"event_id": "x", "customer": {"email": "a@b.fr"}, "channel": "web", "type": "view"},
     "occurred_at"),
    ({**_event("x", "a@b.fr"), "occurred_at": "hier"}, "occurred_at"),
    ({**_event("x", "a@b.fr"), "type": "purchase"}, "amount"),
    ({**_event("x", "not-an-email")}, "customer.email"),
    ({**_event("x", "a@b.fr"), "channel": "Web Site"}, "channel"),
    ({"events": []}, "events"),
])
def test_invalid_input_is_422_with_a_clear_message(server: Server, body: dict[str, object],
                                                   words: str) -> None:
    with server.client("events") as c:
        r = c.post("/v1/events", json=body)
    assert r.status_code == 422, r.text
    assert words in r.json()["message"]


def test_too_large_requests_are_413(server: Server) -> None:
    with server.client("events") as c:
        big = {"events": [_event(f"big-{i}", "big@exemple.fr",
                                 properties={"pad": "x" * 1000}) for i in range(400)]}
        assert c.post("/v1/events", json=big).status_code == 413
        many = {"events": [_event(f"many-{i}", "many@exemple.fr") for i in range(501)]}
        assert c.post("/v1/events", json=many).status_code == 413
        # the same body streamed without a length (chunked): 413 too, not a parsing error
        body = json.dumps(big).encode()

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(body), 65_536):
                yield body[start:start + 65_536]

        streamed = c.post("/v1/events", content=chunks(),
                          headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413, streamed.text
        assert streamed.json()["error"] == "PayloadTooLargeError"
        # a small body streamed the same way is read as usual
        small = json.dumps({"events": [_event("chunked-1", "chunked@exemple.fr")]}).encode()
        ok = c.post("/v1/events", content=iter([small[:10], small[10:]]),
                    headers={"Content-Type": "application/json"})
        assert ok.status_code == 200 and ok.json()["accepted"] == 1, ok.text


# -- decisions --------------------------------------------------------------------------
def test_consent_withdrawal_stops_email_decisions(server: Server) -> None:
    customer_id = _customer(server, "consent@exemple.fr")
    assert _decide(server, customer_id, "email")["actions"] == []  # no consent yet
    _consent(server, customer_id, "email", True)
    granted = _decide(server, customer_id, "email")
    assert [a["action"] for a in granted["actions"]] == ["retention_offer"]
    assert granted["actions"][0]["treatment"]["subject"] == "Bonjour, -20 % pour vous"
    _consent(server, customer_id, "email", False)
    assert _decide(server, customer_id, "email")["actions"] == []
    # the customer is present on the web site: no marketing consent is needed there
    assert _decide(server, customer_id, "web")["actions"] != []
    # a service gesture is owed whatever the marketing consent
    apology = _decide(server, customer_id, "email", {"late_delivery": True})
    assert [a["action"] for a in apology["actions"]] == ["delivery_apology"]
    with server.client("reader") as c:
        consents = c.get(f"/v1/customers/{customer_id}").json()["consents"]
    assert [(x["channel"], x["granted"]) for x in consents] == [("email", False)]


def test_caps_hold_under_concurrent_requests(server: Server) -> None:
    customer_id = _customer(server, "caps@exemple.fr")
    for channel in ("email", "sms"):
        _consent(server, customer_id, channel, True)
    answers: list[dict[str, object]] = []

    def ask(channel: str) -> None:
        answers.append(_decide(server, customer_id, channel))

    threads = [threading.Thread(target=ask, args=("email" if i % 2 else "sms",))
               for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    contacts = [a for a in answers if a["actions"]]
    # email 2 per 7 days, sms 1 per 7 days, 4 per 30 days overall: 3 at most here
    assert len(answers) == 16
    assert len(contacts) == 3
    _decide(server, customer_id, "email")
    assert _decide(server, customer_id, "email")["actions"] == []


def test_same_ranking_whatever_channel_asks(server: Server) -> None:
    customer_id = _customer(server, "channels@exemple.fr")
    web = _decide(server, customer_id, "web")
    store = _decide(server, customer_id, "store")
    assert [a["action"] for a in web["actions"]] == ["retention_offer"]
    assert [a["action"] for a in store["actions"]] == ["newsletter"]  # all the store carries


def test_responses_teach_the_model_and_ignores_suppress(server: Server) -> None:
    customer_id = _customer(server, "learn@exemple.fr")
    first = _decide(server, customer_id, "web")
    with server.client("decider") as c:
        r = c.post(f"/v1/decisions/{first['decision_id']}/responses",
                   json={"response": "click"})
        assert r.status_code == 200, r.text
        clicked = r.json()
        assert clicked["learned"] and clicked["action"] == "retention_offer"
        for _ in range(3):
            d = _decide(server, customer_id, "web")
            assert d["actions"][0]["action"] == "retention_offer"
            r = c.post(f"/v1/decisions/{d['decision_id']}/responses",
                       json={"response": "ignore"})
            assert r.json()["propensity"] < clicked["propensity"]
        # three ignores in a row: the offer is suppressed for this customer
        after = _decide(server, customer_id, "web")
        assert [a["action"] for a in after["actions"]] == ["newsletter"]
        assert c.post("/v1/decisions/d-unknown/responses",
                      json={"response": "click"}).status_code == 404
        assert c.post(f"/v1/decisions/{first['decision_id']}/responses",
                      json={"response": "maybe"}).status_code == 422


def test_decisions_for_an_unknown_identifier_create_a_reference_customer(
        server: Server) -> None:
    with server.client("decider") as c:
        r = c.post("/v1/decisions", json={"customer": {"loyalty_card": "2990 0000 1234"},
                                          "channel": "web"})
    assert r.status_code == 200
    customer_id = r.json()["customer_id"]
    with server.client("reader") as c:
        view = c.get("/v1/customers", params={"identifier": "loyalty_card:299000001234"})
    assert view.json()["customer_id"] == customer_id
    assert view.json()["decisions"][0]["decision_id"] == r.json()["decision_id"]


def test_decisions_answered_from_memory_are_logged_before_the_360_reads_them(
        server: Server) -> None:
    """A known customer is decided without a database read; its log rows wait for a later
    commit, which a customer 360 read brings forward."""
    with server.client("decider") as c:
        first = c.post("/v1/decisions", json={"customer": {"email": "memo@exemple.fr"},
                                              "channel": "web"}).json()
        again = [c.post("/v1/decisions", json={"customer": {"email": "MEMO@exemple.fr"},
                                               "channel": "web"}).json() for _ in range(3)]
    assert {d["customer_id"] for d in again} == {first["customer_id"]}
    with server.client("reader") as c:
        view = c.get(f"/v1/customers/{first['customer_id']}").json()
    logged = {d["decision_id"] for d in view["decisions"]}
    assert any(d["actions"] for d in [first, *again])  # else the check below proves nothing
    assert {d["decision_id"] for d in [first, *again] if d["actions"]} <= logged


def test_the_server_log_holds_no_personal_data_even_on_errors(server: Server) -> None:
    """Requests that fail in every way the API knows, each carrying a person's e-mail and
    name: the server's log names routes and statuses, never them."""
    email, name = "Lea.Secret-Marker@exemple.fr", "Secretmarkername"
    with server.client("admin") as c:
        customer_id = _customer(server, email.lower())
        requests = [
            c.post("/v1/events", json=_event("pii-1", email, properties={"name": name})),
            c.post("/v1/events", json=_event("pii-2", f"{name} <not an e-mail>")),
            c.post("/v1/events", content=f'{{"customer": {{"email": "{email}"', headers={
                "Content-Type": "application/json"}),
            c.get("/v1/customers", params={"identifier": f"email:nobody-{email}"}),
            c.get(f"/v1/customers/{name}"),
            c.put(f"/v1/customers/{customer_id}/consents",
                  json={"channel": name, "granted": "maybe", "note": email}),
            c.post("/v1/decisions", json={"customer": {"email": email}, "channel": "email",
                                          "context": {"note": name, "x": "y" * 10}}),
            c.post("/v1/decisions", json={"customer": {"email": email}, "channel": name}),
            c.post(f"/v1/decisions/{name}/responses", json={"response": "click"}),
            c.post("/v1/sql", json={"query": f"select * from customers where email = '{email}"}),
            c.post("/v1/sql", json={"query": f"delete from customers where email = '{email}'"}),
            c.post("/v1/jobs", json={"step": name, "args": {"email": email}}),
        ]
    assert {r.status_code for r in requests} >= {200, 404, 422}
    log = server.log.read_text(encoding="utf-8", errors="replace").lower()
    assert "/v1/customers/{customer_id}/consents 422" in log  # the log does log requests
    for secret in (email.lower(), name.lower(), "secret-marker"):
        assert secret not in log, secret


def test_consent_changes_cannot_be_dated_ahead_nor_name_what_does_not_exist(
        server: Server) -> None:
    customer_id = _customer(server, "vocabulary@exemple.fr")
    url = f"/v1/customers/{customer_id}/consents"
    with server.client("consents") as c:
        ahead = c.put(url, json={"channel": "email", "granted": True,
                                 "occurred_at": "2199-12-31T00:00:00Z"})
        assert ahead.status_code == 422 and "in the future" in ahead.json()["message"]
        typo = c.put(url, json={"channel": "emial", "granted": False})
        assert typo.status_code == 422 and "email" in typo.json()["message"]
        assert "Unknown channel 'emial'" in typo.json()["message"]
        purpose = c.put(url, json={"channel": "email", "purpose": "spam", "granted": True})
        assert purpose.status_code == 422 and "marketing" in purpose.json()["message"]
        everything = c.put(url, json={"channel": "all", "granted": True})
        assert everything.status_code == 422 and "only withdraws" in everything.json()["message"]
    for channel in ("email", "sms"):
        _consent(server, customer_id, channel, True)
    assert _decide(server, customer_id, "email")["actions"] != []
    with server.client("events") as c:  # a key of the web site: it may withdraw, not grant
        refused = c.put(url, json={"channel": "sms", "granted": True})
        assert refused.status_code == 403 and "consents:write" in refused.json()["message"]
        withdrawn = c.put(url, json={"channel": "all", "purpose": "all", "granted": False})
    assert withdrawn.status_code == 200, withdrawn.text
    states = {(x["channel"], x["purpose"]): x["granted"] for x in withdrawn.json()["consents"]}
    assert states[("email", "marketing")] is False and states[("sms", "marketing")] is False
    assert not any(states.values()) and ("web", "service") in states
    # in force for the very next decision
    assert _decide(server, customer_id, "email")["actions"] == []
    assert _decide(server, customer_id, "sms")["actions"] == []
