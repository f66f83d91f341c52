"""What the server acknowledged survives ``kill -9``: events, consents, decisions and caps."""

from __future__ import annotations

import concurrent.futures as cf

import pytest

from _service_server import Server

# Starts the server three times and kills it twice.
pytestmark = pytest.mark.slow


def _events(prefix: str, n: int, email: str) -> dict[str, object]:
    return {"events": [{"event_id": f"{prefix}-{i}", "occurred_at": "2026-11-24T10:00:00Z",
                        "customer": {"email": email}, "channel": "app", "type": "tap",
                        "properties": {"i": i}} for i in range(n)]}


def test_acknowledged_events_survive_sigkill(fresh_server: Server) -> None:
    server = fresh_server.start()
    with server.client("admin") as c:
        # concurrent batches, so that several requests share group commits
        with cf.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(
                lambda k: c.post("/v1/events", json=_events(f"k{k}", 50, "durable@exemple.fr")),
                range(8)))
        assert all(a.status_code == 200 and a.json()["accepted"] == 50 for a in answers)
        customer_id = c.get("/v1/customers", params={"identifier": "email:durable@exemple.fr"}
                            ).json()["customer_id"]
        assert c.put(f"/v1/customers/{customer_id}/consents",
                     json={"channel": "email", "granted": True}).status_code == 200
        given = [c.post("/v1/decisions", json={"customer": {"customer_id": customer_id},
                                               "channel": "email"}).json() for _ in range(2)]
        assert all(d["actions"] for d in given)
        # decisions are logged by the next group commit; any write acknowledged after them
        # (the writer commits in order) proves they are durable
        assert c.post("/v1/events", json=_events("after", 1, "durable@exemple.fr")
                      ).json()["accepted"] == 1
    server.kill9()  # no shutdown, no checkpoint
    server.start()
    with server.client("admin") as c:
        # every acknowledged event is there, once: sending them again adds nothing
        again = c.post("/v1/events", json=_events("k3", 50, "durable@exemple.fr")).json()
        assert again == {"received": 50, "accepted": 0, "duplicates": 50, "conversions": 0}
        view = c.get(f"/v1/customers/{customer_id}").json()
        assert view["consents"][0]["granted"] is True
        assert {d["decision_id"] for d in view["decisions"]} == {d["decision_id"]
                                                                for d in given}
        # the two e-mails sent before the crash still count against the cap (2 per 7 days)
        third = c.post("/v1/decisions", json={"customer": {"customer_id": customer_id},
                                              "channel": "email"}).json()
        assert third["actions"] == []
        # the model's responses survive too
        r = c.post(f"/v1/decisions/{given[0]['decision_id']}/responses",
                   json={"response": "conversion", "value": 40})
        assert r.status_code == 200 and r.json()["learned"]
    server.kill9()
    server.start()
    with server.client("admin") as c:
        r = c.post(f"/v1/decisions/{given[1]['decision_id']}/responses",
                   json={"response": "click"})
        assert r.json()["propensity"] > 0.3  # prior 0.3, two successes kept


def test_contacts_answered_before_a_sigkill_still_count_against_the_caps(
        fresh_server: Server) -> None:
    """A contact is durable before it is answered: nothing else written, then kill -9."""
    server = fresh_server.start()
    emails = [f"cap{i}@exemple.fr" for i in range(6)]
    with server.client("admin") as c:
        for email in emails:
            assert c.post("/v1/events", json=_events(email, 1, email)).status_code == 200
        ids = [c.get("/v1/customers", params={"identifier": f"email:{email}"}
                     ).json()["customer_id"] for email in emails]
        for customer_id in ids:
            c.put(f"/v1/customers/{customer_id}/consents",
                  json={"channel": "email", "granted": True})
        # each customer asked for many times at once: the cap (2 per 7 days) holds
        asks = [cid for cid in ids for _ in range(4)]
        with cf.ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda cid: c.post(
                "/v1/decisions", json={"customer": {"customer_id": cid}, "channel": "email"}
            ).json(), asks))
    server.kill9()  # right after the answers: no write after them, no clean stop
    given = [a for a in answers if a["actions"]]
    assert len(given) == 2 * len(ids)
    server.start()
    with server.client("admin") as c:
        for customer_id in ids:
            view = c.get(f"/v1/customers/{customer_id}").json()
            assert len({d["decision_id"] for d in view["decisions"] if d["action"]}) == 2
            again = c.post("/v1/decisions", json={"customer": {"customer_id": customer_id},
                                                  "channel": "email"}).json()
            assert again["actions"] == []
