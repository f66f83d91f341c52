"""Configuration sections of interaction: ``[contact_policy]`` and ``[api]``
(documented in docs/service.md)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from onetoone.settings import Section

SCOPES = ("events:write", "customers:read", "decisions", "admin")


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


class ApiKeyConfig(Section):
    """[api.keys.NAME]: a key given by its SHA-256 (never the key itself)."""

    sha256: str
    scopes: list[Literal["events:write", "customers:read", "decisions", "admin"]]

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{64}", value.lower()):
            raise ValueError("must be the 64 hexadecimal digits of the key's SHA-256")
        return value.lower()


class ApiSettings(Section):
    """[api]: the REST service."""

    max_body_bytes: int = Field(2_000_000, ge=1024)
    max_events_per_request: int = Field(5000, ge=1)
    group_commit_ms: float = Field(2.0, ge=0, le=1000)
    durable_decisions: bool = False
    decision_log_ms: float = Field(100.0, ge=0, le=10_000)
    preload_profiles: bool = True
    keys: dict[str, ApiKeyConfig] = Field(default_factory=dict)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
