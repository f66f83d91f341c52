"""What every channel adapter takes and gives back (docs/channels.md).

A :class:`Message` is one rendered treatment for one customer; an adapter's ``send`` hands a
batch to its provider (an SMTP relay, an SMS gateway, a web hook, the outbox) and answers one
:class:`Outcome` per message: sent (with the provider's id), failed for now (tried again with
backoff), or failed for good (a permanent error: the address is wrong, the message refused).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class ChannelError(Exception):
    """A try failed; ``permanent`` when trying again cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Message:
    """One message for one customer."""

    delivery_id: str
    decision_id: str
    customer_id: str
    campaign: str
    channel: str
    action_id: str
    to: str
    #: the rendered treatment: ``subject``, ``text``, ``html``, ``language``... (plain texts
    #: already stripped of control characters, HTML already escaped)
    fields: dict[str, Any]
    #: signed links of this message (``open``, ``unsubscribe``, ``click`` template), when the
    #: workspace has a public URL for its server
    links: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return str(self.fields.get("text") or self.fields.get("body") or "")

    @property
    def subject(self) -> str:
        return str(self.fields.get("subject") or "")

    @property
    def html(self) -> str | None:
        value = self.fields.get("html")
        return None if value is None else str(value)


@dataclass(frozen=True)
class Outcome:
    """What became of one message."""

    delivery_id: str
    status: str  # "sent", "retry" or "failed"
    provider_id: str | None = None
    error: str | None = None


class Channel(Protocol):
    """A delivery adapter (``[channels.NAME]``)."""

    name: str

    def send(self, messages: list[Message]) -> list[Outcome]:
        """Hand ``messages`` to the provider; one outcome each, in any order."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
