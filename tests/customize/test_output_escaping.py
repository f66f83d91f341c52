"""Output that cannot inject: HTML treatments escape what they are given, plain texts lose
control characters, CSV cells never run as spreadsheet formulas."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

from onetoone.config import parse_config
from onetoone.customize.catalog import Catalog
from onetoone.customize.engine import DecisionEngine
from onetoone.customize.policy import ContactPolicy
from onetoone.customize.profile import Profile
from onetoone.customize.propensity import AdaptivePropensities
from onetoone.customize.templates import plain_text, spreadsheet_cell
from onetoone.interact.service import DecisionService

CONFIG = """
[workspace]
name = "escaping"
[actions.offer]
channels = ["email"]
value = 10
prior_propensity = 0.5
[actions.offer.treatments.email.fr]
subject = "{{ first_name }}, pour vous : {{ context_note }}"
body_html = "<p>Bonjour {{ first_name }} {{ last_name }},</p><p>{{ context_note }}</p>"
footer_html = "{{ '<b>signature</b>' | safe }}"
[contact_policy]
quiet_hours_start = ""
quiet_hours_end = ""
[control_groups]
universal_share = 0.0
"""

PHISHING = "<a href='https://evil.example/login'>Confirm your account</a>"


def _treatment() -> dict[str, str]:
    config = parse_config(CONFIG)
    catalog = Catalog(config.actions)
    engine = DecisionEngine(
        catalog, AdaptivePropensities({"offer": (0.5, 10.0)}),
        ContactPolicy(config.contact_policy, "Europe/Paris"), config.decisioning,
        config.control_groups)
    profile = Profile("C1", {"country": "FR", "language": "fr",
                             "first_name": "Ana\x1b[31m\u202e",
                             "last_name": "<script>alert(1)</script>"})
    profile.consents[("email", "marketing")] = (True, datetime(2026, 1, 1))
    decision = engine.decide(profile, "email", {"note": PHISHING}, datetime(2026, 11, 24, 12))
    assert decision.given, decision.reason
    return decision.given[0].treatment


def test_html_fields_escape_the_profile_and_the_context() -> None:
    body = _treatment()["body_html"]
    assert "<script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<a href" not in body and "&lt;a href=&#39;https://evil.example/login&#39;&gt;" in body
    assert body.startswith("<p>Bonjour ")  # the template's own markup stays markup
    assert _treatment()["footer_html"] == "<b>signature</b>"  # marked safe by the template


def test_plain_fields_stay_text_without_control_characters() -> None:
    subject = _treatment()["subject"]
    assert subject == f"Ana[31m, pour vous : {PHISHING}"  # text, not markup: not escaped
    assert plain_text("a\tb\nc\x00d\x07e\u2066f\u202eg\x85h") == "a\tb\ncdefgh"


def test_csv_cells_never_run_as_formulas(tmp_path: Path) -> None:
    for value in ("=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"):
        assert spreadsheet_cell(value) == "'" + value
    assert spreadsheet_cell("Ana") == "Ana" and spreadsheet_cell(None) == ""
    assert spreadsheet_cell(-3.5) == -3.5  # a number is a number
    path = tmp_path / "run.csv"
    DecisionService._write_csv(path, [{
        "run_id": "r1", "decision_id": "d1", "customer_id": "C1", "channel": "email",
        "action_id": "offer", "priority": 1.0, "address": "=HYPERLINK(\"https://evil\")",
        "language": "fr", "_profile": {"first_name": "=cmd|' /C calc'!A0", "last_name": "@x"},
        "_fields": {"subject": "-10 % pour vous", "language": "fr"}}])
    (row,) = list(csv.DictReader(path.open(encoding="utf-8")))
    assert row["first_name"] == "'=cmd|' /C calc'!A0" and row["last_name"] == "'@x"
    assert row["address"].startswith("'=") and row["subject"] == "'-10 % pour vous"
