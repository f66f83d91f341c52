"""The demo's catalog and campaigns, and ``onetoone demo`` running the win-back campaign with
simulated answers into the outbox, the lift and the report."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from onetoone import Workspace
from onetoone.channels.campaigns import audience_names, known_fields
from onetoone.cli import app
from onetoone.config import parse_config
from onetoone.customize.catalog import Catalog
from onetoone.demo import DemoCompany
from onetoone.demo.answers import campaign_time
from onetoone.privacy.settings import DEFAULT_PURPOSES

ACTIONS = {"welcome", "winback_top", "cross_sell", "service_gesture", "nps_survey",
           "loyalty_reward", "ideas_invitation"}


def _config_text() -> str:
    return DemoCompany(directory=Path("."), customers=1, seed=1, sources_toml="", files={},
                       counts={}).config_text()


def test_the_demo_config_loads_with_its_catalog_and_campaigns() -> None:
    config = parse_config(_config_text())
    assert set(config.actions) == ACTIONS
    assert {"winback", "welcome"} <= set(config.campaigns)
    winback = config.campaigns["winback"]
    assert (winback.channel, winback.tiers, winback.actions, winback.control_share) == (
        "email", ["top"], ["winback_top"], 0.2)
    assert config.actions["service_gesture"].kind == "service"
    assert config.actions["service_gesture"].purpose == "service"
    fields = known_fields()
    for name, action in config.actions.items():
        assert action.purpose in DEFAULT_PURPOSES, name
        rules = action.eligibility if isinstance(action.eligibility, list) else [
            action.eligibility]
        for rule in rules:
            unknown = [n for n in audience_names(rule)
                       if n not in fields and not n.startswith("context_")]
            assert not unknown, (name, unknown)
    for campaign in config.campaigns.values():
        assert set(audience_names(campaign.audience or "True")) <= fields


def test_every_treatment_renders_in_french_and_english() -> None:
    catalog = Catalog(parse_config(_config_text()).actions)
    profile = {"first_name": "bruno", "needs_segment": "linge de maison buyers, web shoppers"}
    for action in catalog.actions:
        for channel in action.config.channels:
            for language in ("fr", "en"):
                for env in (profile, {"first_name": None}):
                    fields = action.render(channel, language, env, "fr")
                    assert fields["language"] == language
                    texts = [v for k, v in fields.items() if k != "language"]
                    assert texts and all(t.strip() for t in texts), (action.action_id, channel)
                    assert "None" not in " ".join(texts)
    body = catalog.by_id["cross_sell"].render("email", "fr", profile, "fr")["body"]
    assert body.startswith("Bonjour Bruno,") and "mode" in body


def test_the_campaign_runs_after_the_exports_on_a_working_day() -> None:
    when = campaign_time(date(2025, 12, 31), 14)
    assert when.date() == date(2026, 1, 6) and when.weekday() == 1 and when.hour == 9


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("demo") / "ws"
    result = CliRunner().invoke(
        app, ["demo", "--customers", "800", "--seed", "42", "--workspace", str(root)])
    assert result.exit_code == 0, result.output
    return root, result.output


def _figures(root: Path) -> dict[str, Any]:
    with Workspace(root) as ws:
        return {
            "status": ws.campaigns.status("winback"),
            "responses": ws.store.execute(
                "SELECT r.customer_id, r.response, r.value, r.occurred_at FROM responses r "
                "ORDER BY ALL").df(),
            "purchases": ws.store.execute(
                "SELECT customer_id, amount, occurred_at FROM transactions "
                "WHERE source = 'api' ORDER BY ALL").df(),
        }


@pytest.mark.slow
def test_the_demo_sends_the_winback_campaign_and_simulates_answers(
        demo_run: tuple[Path, str]) -> None:
    root, output = demo_run
    assert "Campaign winback" in output and "Report written to" in output
    emails = list((root / "outbox" / "email" / "winback_once").glob("*.eml"))
    figures = _figures(root)
    status = figures["status"]
    assert status["runs"] == ["winback:once"]
    assert status["sent"] == len(emails) > 0
    assert status["held_out"] > 0 and status["selected"] == status["sent"] + status[
        "held_out"]
    assert status["opened"] >= status["clicked"] > 0
    assert status["converted"] > 0
    assert "Subject:" in emails[0].read_text(encoding="utf-8")
    responses, purchases = figures["responses"], figures["purchases"]
    conversions = responses[responses["response"] == "conversion"]
    assert len(conversions) == status["converted"] and (conversions["value"] > 0).all()
    # every conversion is a purchase too, in the lift's window after the decision
    assert set(conversions["customer_id"]) <= set(purchases["customer_id"])
    assert (purchases["occurred_at"] >= pd.Timestamp("2026-01-06 09:00")).all()
    assert (purchases["occurred_at"] < pd.Timestamp("2026-01-20 09:00")).all()
    with Workspace(root) as ws:
        lift = ws.lift(campaign="winback:once")[0]
    assert lift.n_treated == status["sent"] and lift.n_control >= status["held_out"]
    assert lift.conversion_treated == pytest.approx(status["converted"] / status["sent"])


@pytest.mark.slow
def test_the_demo_report_shows_the_campaign(demo_run: tuple[Path, str]) -> None:
    root, _ = demo_run
    html = (root / "report" / "index.html").read_text(encoding="utf-8")
    assert "<h2>Campaigns</h2>" in html
    section = html[html.index("<h2>Campaigns</h2>"):]
    assert "winback:once" in section and "Lift against the control group" in section
    for count in ("selected", "held out", "sent", "opened", "clicked", "converted",
                  "unsubscribed"):
        assert f"<th>{count}</th>" in section


@pytest.mark.slow
def test_the_same_seed_gives_the_same_answers(demo_run: tuple[Path, str],
                                              tmp_path: Path) -> None:
    root, _ = demo_run
    again = tmp_path / "ws"
    result = CliRunner().invoke(
        app, ["demo", "--customers", "800", "--seed", "42", "--workspace", str(again)])
    assert result.exit_code == 0, result.output
    first, second = _figures(root), _figures(again)
    assert first["status"] == second["status"]
    pd.testing.assert_frame_equal(first["responses"], second["responses"])
    pd.testing.assert_frame_equal(first["purchases"], second["purchases"])


def test_the_report_lays_out_campaign_counts_and_lifts() -> None:
    from onetoone.report._html import campaign_context

    status = {"campaign": "winback", "runs": ["winback:once"], "selected": 10, "held_out": 2,
              "sent": 8, "opened": 4, "clicked": 2, "converted": 1, "unsubscribed": 0,
              "lift": [{"run": "winback:once", "error": "No decision."}]}
    [shown] = campaign_context([status])
    counts = {c["name"]: (c["value"], c["share"]) for c in shown["counts"]}
    assert counts["held out"] == (2, None) and counts["opened"] == (4, 0.5)
    assert shown["lifts"] == [{"run": "winback:once", "error": "No decision.", "n_treated": 0,
                               "n_control": 0}]
