"""Configuration sections of decisioning: ``[actions.NAME]``, ``[decisioning]``,
``[control_groups]``, ``[contact_policy]`` (documented in docs/service.md).

Kept apart from :mod:`onetoone.config` so that the core configuration stays short; rules and
templates are compiled here, so a wrong one is reported with its key and line when the file is
read, not at the first decision.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Literal

from jinja2 import TemplateSyntaxError
from pydantic import Field, field_validator, model_validator

from onetoone.customize.rules import RuleError, compile_rules
from onetoone.settings import Section

_NAME = re.compile(r"[a-z][a-z0-9_]*")


def _check_rules(rules: str | list[str]) -> None:
    """Compile rule expressions, as pydantic's ValueError (the config error names the key)."""
    try:
        compile_rules(rules)
    except RuleError as exc:
        raise ValueError(str(exc)) from None


#: A channel's treatment: field -> template, or language -> (field -> template).
Treatment = dict[str, str | dict[str, str]]


class ActionConfig(Section):
    """[actions.NAME]: one offer, message or service gesture of the catalog."""

    issue: str = "general"
    group: str = ""
    kind: Literal["offer", "message", "service"] = "offer"
    purpose: str = "marketing"
    channels: list[str] = Field(min_length=1)
    treatments: dict[str, Treatment] = Field(default_factory=dict)
    eligibility: str | list[str] = Field(default_factory=list)
    applicability: str | list[str] = Field(default_factory=list)
    suitability: str | list[str] = Field(default_factory=list)
    value: float | str = 1.0
    cost: float = 0.0
    lever: float = Field(1.0, ge=0)
    context_weights: dict[str, float] = Field(default_factory=dict)
    valid_from: datetime | date | None = None
    valid_to: datetime | date | None = None
    prior_propensity: float = Field(0.05, gt=0, lt=1)
    prior_strength: float = Field(20.0, gt=0)
    prior_score: str | None = None
    holdout_share: float = Field(0.0, ge=0, lt=1)
    rank_by: Literal["propensity", "uplift"] = "propensity"
    min_uplift: float = Field(0.0, ge=-1, le=1)
    #: a transactional message (kind "service", purpose other than marketing) that the
    #: contact policy's caps do not hold back, and that does not count against them
    exempt_from_caps: bool = False

    @model_validator(mode="after")
    def _exempt_only_service(self) -> ActionConfig:
        if self.exempt_from_caps and (self.kind != "service" or self.purpose == "marketing"):
            raise ValueError("only a service message (kind = \"service\", a purpose other "
                             "than marketing) may be exempt from caps")
        return self

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, value: list[str]) -> list[str]:
        for channel in value:
            if not _NAME.fullmatch(channel):
                raise ValueError(f"channel '{channel}' must be lower-case letters, digits and _")
        return value

    @field_validator("eligibility", "applicability", "suitability")
    @classmethod
    def _rules(cls, value: str | list[str]) -> str | list[str]:
        _check_rules(value)
        return value

    @field_validator("value")
    @classmethod
    def _value_rule(cls, value: float | str) -> float | str:
        if isinstance(value, str):
            _check_rules(value)
        return value

    @field_validator("context_weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        for expression, weight in value.items():
            if weight < 0:
                raise ValueError(f"weight of '{expression}' must not be negative")
            _check_rules(expression)
        return value

    @field_validator("treatments")
    @classmethod
    def _templates(cls, value: dict[str, Treatment]) -> dict[str, Treatment]:
        from onetoone.customize.templates import template_environment

        env = template_environment()
        for channel, treatment in value.items():
            for key, item in treatment.items():
                texts = item if isinstance(item, dict) else {key: item}
                for name, text in texts.items():
                    try:
                        env.parse(text)
                    except TemplateSyntaxError as exc:
                        raise ValueError(
                            f"template {channel}.{key}.{name}: {exc.message}"
                        ) from None
        return value

    @model_validator(mode="after")
    def _treatment_channels(self) -> ActionConfig:
        unknown = set(self.treatments) - set(self.channels)
        if unknown:
            raise ValueError(f"treatments for channels not in 'channels': {sorted(unknown)}")
        return self


class ABTestConfig(Section):
    """[ab_tests.NAME]: treatments tried against each other, each an action of the catalog.

    Each customer is given one arm for good (a salted hash of the test and the customer), so the
    arms are comparable groups; results: ``onetoone abtest NAME``.
    """

    actions: list[str] = Field(min_length=2)  # the arms; the first is the reference
    started_at: datetime | date | None = None
    alpha: float = Field(0.05, gt=0, lt=0.5)

    @field_validator("actions")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("an action may stand only once among the arms")
        return value


class DecisioningSettings(Section):
    """[decisioning]: arbitration."""

    min_priority: float = 0.0
    max_actions: int = Field(1, ge=1, le=20)
    segment_by: list[str] = Field(default_factory=lambda: ["value_tier", "needs_segment"])
    issue_levers: dict[str, float] = Field(default_factory=dict)
    exploration: Literal["thompson", "mean"] = "thompson"
    draw_period_minutes: int = Field(60, ge=1)


class ControlGroupSettings(Section):
    """[control_groups]: universal control group and measurement."""

    universal_share: float = Field(0.05, ge=0, lt=1)
    salt: str = "onetoone"
    window_days: int = Field(14, ge=1)


class Cap(Section):
    """[[contact_policy.caps]]: at most ``max`` contacts on ``channel`` over ``days``."""

    channel: str = "all"
    max: int = Field(ge=0)
    days: int = Field(ge=1, le=366)


def _default_caps() -> list[Cap]:
    return [
        Cap(channel="email", max=2, days=7),
        Cap(channel="sms", max=1, days=7),
        Cap(channel="all", max=4, days=30),
    ]


class ContactPolicySettings(Section):
    """[contact_policy]: consent, frequency caps, ignores and quiet hours."""

    outbound_channels: list[str] = Field(
        default_factory=lambda: ["email", "sms", "phone", "push", "post"]
    )
    consent_defaults: dict[str, bool] = Field(
        default_factory=lambda: {"marketing": False, "service": True}
    )
    caps: list[Cap] = Field(default_factory=_default_caps)
    suppress_after_ignores: int = Field(3, ge=1)
    suppress_days: int = Field(90, ge=1)
    quiet_hours_start: str = "21:00"
    quiet_hours_end: str = "08:00"
    quiet_channels: list[str] = Field(default_factory=lambda: ["email", "sms", "phone", "push"])
    country_timezones: dict[str, str] = Field(default_factory=dict)

    @field_validator("quiet_hours_start", "quiet_hours_end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if value and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError("must be a time HH:MM such as 21:00, or empty")
        return value

    @field_validator("country_timezones")
    @classmethod
    def _zones(cls, value: dict[str, str]) -> dict[str, str]:
        from zoneinfo import ZoneInfo

        for country, zone in value.items():
            try:
                ZoneInfo(zone)
            except Exception:
                raise ValueError(f"'{zone}' (for {country}) is not a time zone") from None
        return value
