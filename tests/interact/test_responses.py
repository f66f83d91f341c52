"""One learned outcome per decision: the first success or failure moves the propensity; later
responses are recorded, not learned; an exact repeat is acknowledged as a duplicate."""

from __future__ import annotations

from pathlib import Path

from _service_server import CONFIG
from onetoone import Workspace


def test_a_decision_teaches_the_model_once(tmp_path: Path) -> None:
    with Workspace.init(tmp_path / "w", config_text=CONFIG) as ws:
        service = ws.decisions
        answer = service.decide({"email": "once@exemple.fr"}, "web", {})
        assert answer["actions"], answer
        decision = answer["decision_id"]
        first = service.respond(decision, "click")
        assert first["learned"] and not first.get("duplicate")
        mean = first["propensity"]
        again = service.respond(decision, "click")  # a retry of the same call
        assert again == {"decision_id": decision, "action": first["action"],
                         "response": "click", "learned": False, "duplicate": True}
        later = service.respond(decision, "conversion", value=1e12)
        assert later["learned"] is False and not later.get("duplicate")
        assert round(service.propensities.posterior(first["action"], "all").mean, 6) == mean
        rows = ws.store.fetchall(
            "SELECT response FROM responses WHERE decision_id = ? ORDER BY occurred_at",
            [decision])
        assert [r[0] for r in rows] == ["click", "conversion"]
    with Workspace(tmp_path / "w") as ws:  # after a restart the tables say what was learned
        again = ws.decisions.respond(decision, "ignore")
        assert again["learned"] is False
        assert ws.decisions.respond(decision, "click")["duplicate"] is True
