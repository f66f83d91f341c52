"""``[channels.NAME]`` in ``onetoone.toml`` (docs/channels.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from onetoone.settings import Section

CHANNEL_TYPES = ("outbox", "smtp", "http_gateway", "webhook")


class ChannelConfig(Section):
    """One delivery channel. ``carries`` names the decision channel it delivers (``email``,
    ``sms``...; default: the section's name)."""

    type: Literal["outbox", "smtp", "http_gateway", "webhook"]
    carries: str | None = None
    # smtp
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    #: the environment variable holding the password (never the password itself)
    password_env: str | None = None
    #: the sender, e.g. "Maison Dupont <bonjour@maison-dupont.fr>"
    sender: str | None = Field(default=None, alias="from")
    # http_gateway and webhook
    url: str | None = None
    method: Literal["GET", "POST"] = "GET"
    dlr_url: str | None = None
    #: the environment variable holding the webhook's signing secret
    secret_env: str | None = None
    # every type
    #: messages a second at most
    rate_per_second: float = Field(default=50.0, gt=0)
    #: tries of a message before it is failed (a webhook's then goes to the dead letters)
    max_attempts: int = Field(default=5, ge=1, le=50)
    #: seconds before the first retry; doubled at each one
    backoff_seconds: float = Field(default=1.0, ge=0)
    timeout_seconds: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _needs(self) -> ChannelConfig:
        needed = {"smtp": ("host", "sender"), "http_gateway": ("url",),
                  "webhook": ("url", "secret_env")}.get(self.type, ())
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            shown = ["from" if m == "sender" else m for m in missing]
            raise ValueError(f"a channel of type '{self.type}' needs {', '.join(shown)}")
        if self.type == "http_gateway" and self.url and "{to}" not in self.url \
                and self.method == "GET":
            raise ValueError("the gateway url needs the placeholders {to} and {text}")
        return self
