"""``[channels.NAME]`` in ``onetoone.toml`` (docs/channels.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from onetoone.settings import Section

CHANNEL_TYPES = ("outbox", "smtp", "http_gateway", "webhook", "print")


class ChannelConfig(Section):
    """One delivery channel. ``carries`` names the decision channel it delivers (``email``,
    ``sms``...; default: the section's name)."""

    type: Literal["outbox", "smtp", "http_gateway", "webhook", "print"]
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
    #: the envelope sender (MAIL FROM) bounces return to; default: the ``from`` address.
    #: ``{delivery_id}`` in its local part makes one address per message (VERP), e.g.
    #: "bounces+{delivery_id}@mail.example.com"
    return_path: str | None = None
    #: the Maildir or mbox file where the mail server delivers the return path's mail
    #: (relative to the workspace folder, or absolute)
    bounce_mailbox: str | None = None
    # http_gateway and webhook
    url: str | None = None
    method: Literal["GET", "POST"] = "GET"
    dlr_url: str | None = None
    #: the environment variable holding the webhook's signing secret
    secret_env: str | None = None
    # print
    #: the image format of the QR codes
    qr_format: Literal["png", "svg"] = "png"
    #: pixels (PNG) or units (SVG) a module of the QR codes; default: 8 (PNG), 4 (SVG)
    qr_scale: int | None = Field(default=None, ge=1, le=100)
    # every type
    #: messages a second at most
    rate_per_second: float = Field(default=50.0, gt=0)
    #: tries of a message before it is failed (a webhook's then goes to the dead letters)
    max_attempts: int = Field(default=5, ge=1, le=50)
    #: seconds before the first retry; doubled at each one
    backoff_seconds: float = Field(default=1.0, ge=0)
    timeout_seconds: float = Field(default=30.0, gt=0)

    @field_validator("return_path")
    @classmethod
    def _return_path(cls, value: str | None) -> str | None:
        """One address, with ``{delivery_id}`` at most once and only in its local part
        (VERP), a local part within 64 characters with a delivery id's 24 (RFC 5321)."""
        if value is None:
            return None
        value = value.strip()
        local, _, domain = value.rpartition("@")
        if value.count("@") != 1 or not local or not domain or any(
                c.isspace() or c in '<>"(),;:[]\\' for c in value):
            raise ValueError('return_path must be one address, e.g. '
                             '"bounces+{delivery_id}@mail.example.com"')
        placeholder = "{delivery_id}"
        if placeholder in domain or local.count(placeholder) > 1:
            raise ValueError("return_path takes {delivery_id} once at most, before the @")
        if "{" in local.replace(placeholder, "") or "}" in local.replace(placeholder, ""):
            raise ValueError("return_path knows one placeholder: {delivery_id}")
        if len(local.replace(placeholder, "x" * 24)) > 64:
            raise ValueError("the local part of return_path (before the @, with the 24 "
                             "characters of a delivery id) exceeds 64 characters")
        return value

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
        if self.type != "smtp" and (self.return_path, self.bounce_mailbox) != (None, None):
            raise ValueError("return_path and bounce_mailbox are keys of a channel of type "
                             "'smtp'")
        if self.bounce_mailbox is not None and (not self.bounce_mailbox.strip()
                                                or "\x00" in self.bounce_mailbox):
            raise ValueError("bounce_mailbox must be the path of a Maildir folder or an mbox "
                             "file")
        return self


class CampaignConfig(Section):
    """``[campaigns.NAME]``: who, on which channel, with what, when (docs/campaigns.md)."""

    #: the decision channel (an outbound channel of [contact_policy]: email, sms...)
    channel: str
    #: a rule in the catalog's rule language over the customer's profile, e.g.
    #: ``value_tier == "top" and defection_risk > 0.3``; empty: everyone
    audience: str | None = None
    #: value tiers kept (empty: all)
    tiers: list[str] = Field(default_factory=list)
    #: needs segments kept (empty: all)
    segments: list[str] = Field(default_factory=list)
    #: the actions it may send (empty: the next best action among all)
    actions: list[str] = Field(default_factory=list)
    #: share of the audience held out as the campaign's control group (the same customers
    #: at every run), to measure its lift
    control_share: float = Field(default=0.1, ge=0, le=0.5)
    #: "once", or a cron expression (a new occurrence each time it runs)
    schedule: str = "once"
    #: hours of the day (workspace time) when it may send, e.g. "08:00-20:00"
    send_window: str | None = None
    #: the ``[channels.NAME]`` that delivers it; default: the one carrying ``channel``, else
    #: the outbox
    deliver_with: str | None = None

    @model_validator(mode="after")
    def _window(self) -> CampaignConfig:
        if self.send_window is not None:
            send_window(self.send_window)
        return self


def send_window(text: str) -> tuple[int, int]:
    """Minutes of the day of "HH:MM-HH:MM" (start, end); refused with one sentence."""
    import re

    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
    if match is None:
        raise ValueError(f"send_window '{text}' is not HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59:
        raise ValueError(f"send_window '{text}' holds an impossible time")
    return h1 * 60 + m1, h2 * 60 + m2


class AudienceConfig(Section):
    """``[audiences.NAME]``: customers exported for ads and addressable TV
    (docs/channels.md#audiences-for-ads-and-addressable-tv)."""

    #: a rule in the catalog's rule language over the customer's profile; empty: everyone
    audience: str | None = None
    #: value tiers kept (empty: all)
    tiers: list[str] = Field(default_factory=list)
    #: needs segments kept (empty: all)
    segments: list[str] = Field(default_factory=list)
    #: share of the selected customers kept out of every export (the same ones each time),
    #: to measure the lift of the ads
    holdout_share: float = Field(default=0.1, ge=0, le=0.5)
    #: the consent purpose required on the channel ``ads``
    purpose: str = "advertising"


class TriggerConfig(Section):
    """``[triggers.NAME]``: an event that makes a campaign with ``schedule = "trigger:NAME"``
    decide and deliver for the customer who did it (docs/campaigns.md)."""

    #: the event's type: an interaction type (complaint, basket_abandoned, review...), or
    #: "purchase" (a transaction), or "first_purchase" (a customer's first one)
    event: str
    #: only events on this channel (empty: any)
    channel: str | None = None
    #: minutes to wait after the event (a basket abandoned an hour ago, not a second ago)
    delay_minutes: int = Field(default=0, ge=0, le=60 * 24 * 30)
    #: events older than this (after their delay) are let go: a server that was stopped
    #: does not send yesterday's reactions when it starts
    within_hours: int = Field(default=24, ge=1, le=24 * 30)
