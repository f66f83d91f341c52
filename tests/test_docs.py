"""The documentation is a contract: it must describe the code as it is."""

from __future__ import annotations

import re
from pathlib import Path

from onetoone.config import Config, SourceConfig, WorkspaceSettings
from onetoone.schema import render_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_data_model_doc_is_generated_from_the_schema():
    assert (DOCS / "data-model.md").read_text(encoding="utf-8") == render_markdown(), (
        "docs/data-model.md is out of date: run 'make docs'"
    )


def test_every_configuration_key_is_documented():
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.M))
    for model in (WorkspaceSettings, SourceConfig):
        keys = set(model.model_fields) - {"columns", "identifiers"}
        missing = keys - documented
        assert not missing, f"undocumented keys of {model.__name__}: {sorted(missing)}"
    every_doc = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.glob("*.md"))
    for section in Config.model_fields:
        assert f"[{section}" in every_doc, f"section [{section}] is documented nowhere in docs/"
