"""The actions catalog: offers, messages and service gestures read from ``[actions.NAME]``.

Each action carries its rules (compiled safe expressions, :mod:`.rules`), its treatments per
channel as Jinja2 templates in French and English (rendered in a sandbox), its value, cost,
validity and business lever. :func:`save_catalog` mirrors the configuration into the ``actions``
table so that decisions can be read with the catalog they used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from jinja2 import Template

from onetoone.customize.rules import Rule, compile_rules
from onetoone.customize.settings import ActionConfig
from onetoone.customize.templates import is_html, plain_text, template_environment
from onetoone.store import Connection

LANGUAGES = ("fr", "en")


def _utc(value: datetime | date | None, end: bool = False) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.combine(value, time.max if end else time.min)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


@dataclass
class Action:
    """One action of the catalog, ready to evaluate."""

    action_id: str
    config: ActionConfig
    rules: list[Rule] = field(default_factory=list)
    value_rule: Rule | None = None
    weights: list[tuple[Rule, float]] = field(default_factory=list)
    templates: dict[str, dict[str, dict[str, Template]]] = field(default_factory=dict)
    valid_from: datetime | None = None
    valid_to: datetime | None = None

    @classmethod
    def from_config(cls, action_id: str, config: ActionConfig) -> Action:
        rules = [
            *compile_rules(config.eligibility),
            *compile_rules(config.applicability),
            *compile_rules(config.suitability),
        ]
        def template(field: str, text: str) -> Template:
            return template_environment(is_html(field)).from_string(text)

        templates: dict[str, dict[str, dict[str, Template]]] = {}
        for channel, treatment in config.treatments.items():
            by_language: dict[str, dict[str, Template]] = {}
            for key, item in treatment.items():
                if isinstance(item, dict):  # language -> field -> template
                    by_language.setdefault(key, {}).update(
                        {name: template(name, text) for name, text in item.items()}
                    )
                else:  # field -> template for every language
                    by_language.setdefault("*", {})[key] = template(key, item)
            templates[channel] = by_language
        return cls(
            action_id=action_id,
            config=config,
            rules=rules,
            value_rule=Rule(config.value) if isinstance(config.value, str) else None,
            weights=[(Rule(expr), w) for expr, w in config.context_weights.items()],
            templates=templates,
            valid_from=_utc(config.valid_from),
            valid_to=_utc(config.valid_to, end=True),
        )

    @property
    def is_marketing(self) -> bool:
        return self.config.purpose == "marketing" and self.config.kind != "service"

    def valid_at(self, now: datetime) -> bool:
        return (self.valid_from is None or now >= self.valid_from) and (
            self.valid_to is None or now <= self.valid_to
        )

    def applies_to(self, env: Mapping[str, Any]) -> bool:
        """Eligibility, applicability and suitability: every rule must hold."""
        return all(rule.test(env) for rule in self.rules)

    def value_for(self, env: Mapping[str, Any]) -> float:
        """Value of the action for this customer, net of its cost (never below zero)."""
        if self.value_rule is None:
            value = float(self.config.value)
        else:
            raw = self.value_rule(env)
            value = float(raw) if isinstance(raw, int | float) else 0.0
        return max(value - self.config.cost, 0.0)

    def context_weight(self, env: Mapping[str, Any]) -> float:
        weight = 1.0
        for rule, w in self.weights:
            if rule.test(env):
                weight *= w
        return weight

    def render(
        self, channel: str, language: str, env: Mapping[str, Any], default_language: str
    ) -> dict[str, Any]:
        """The treatment for a channel in the customer's language (fr/en variants)."""
        by_language = self.templates.get(channel)
        if not by_language:
            return {}
        chosen = next(
            (lang for lang in (language, default_language, *LANGUAGES) if lang in by_language), None
        )
        fields = dict(by_language.get("*", {}))
        if chosen is None:
            chosen = next((k for k in by_language if k != "*"), default_language)
        fields.update(by_language.get(chosen, {}))
        out: dict[str, Any] = {
            name: t.render(env) if is_html(name) else plain_text(t.render(env))
            for name, t in fields.items()}
        out["language"] = chosen if chosen != "*" else language
        return out


class Catalog:
    """Every action of the configuration, in configuration order."""

    def __init__(self, actions: Mapping[str, ActionConfig]) -> None:
        self.actions = [Action.from_config(name, cfg) for name, cfg in actions.items()]
        self.by_id = {a.action_id: a for a in self.actions}

    def __len__(self) -> int:
        return len(self.actions)


def save_catalog(con: Connection, catalog: Catalog) -> None:
    """Mirror the catalog into the ``actions`` table (replaces its rows)."""
    con.execute("DELETE FROM actions")
    rows = []
    for action in catalog.actions:
        cfg = action.config
        definition = cfg.model_dump(
            mode="json", exclude={"issue", "group", "channels", "valid_from", "valid_to"}
        )
        rows.append(
            [
                action.action_id,
                cfg.issue,
                cfg.group,
                cfg.channels,
                json.dumps(definition, ensure_ascii=False),
                action.valid_from,
                action.valid_to,
            ]
        )
    if rows:
        con.executemany("INSERT INTO actions VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
