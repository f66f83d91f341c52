"""Configuration section of the decision service: ``[api]``
(documented in docs/service.md)."""

from __future__ import annotations

import re
from typing import Literal, get_args

from pydantic import Field, field_validator

from onetoone.settings import Section

Scope = Literal["events:write", "consents:write", "customers:read", "decisions", "jobs",
                "privacy", "campaigns", "admin"]
#: what an API key may be allowed (``admin``: everything)
SCOPES: tuple[str, ...] = get_args(Scope)


class ApiKeyConfig(Section):
    """[api.keys.NAME]: a key given by its SHA-256 (never the key itself)."""

    sha256: str
    scopes: list[Scope]

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
    job_worker: bool = True
    keys: dict[str, ApiKeyConfig] = Field(default_factory=dict)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: the address at which customers' browsers reach this server (https://...), for the
    #: links of messages (open pixel, clicks, unsubscribe, QR codes); empty: no tracking
    public_url: str | None = None
    #: requests a second per key, refilling a bucket of ``rate_burst`` (0: no limit)
    rate_limit: float = Field(0.0, ge=0)
    #: requests a key may send at once (default: twice ``rate_limit``, at least 1)
    rate_burst: int | None = Field(None, ge=1)
    #: new customers a key (by name) may create a minute, at most that many at once (0: no
    #: bound); keys with the scope ``admin`` are not bounded
    new_identities_per_minute: int = Field(600, ge=0)

    @property
    def burst(self) -> int:
        """``rate_burst``, or twice ``rate_limit`` (at least 1)."""
        return self.rate_burst or max(1, round(2 * self.rate_limit))
