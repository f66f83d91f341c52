"""The profile: what the decision engine knows of one customer at the moment it decides.

Loaded and kept fresh by :mod:`onetoone.interact.profiles`; read by the contact policy and the
engine.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from onetoone.customize.propensity import SUCCESS


@dataclass
class Profile:
    """What the decision engine knows of one customer."""

    customer_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    #: (channel, purpose) -> (granted, when)
    consents: dict[tuple[str, str], tuple[bool, datetime]] = field(default_factory=dict)
    #: outbound contacts in the longest cap window: (when, channel)
    contacts: list[tuple[datetime, str]] = field(default_factory=list)
    #: action -> (consecutive ignores, last ignore)
    ignores: dict[str, tuple[int, datetime | None]] = field(default_factory=dict)
    #: addresses (e-mails, phones, lower-cased) that bounced for good: not written to again
    bounced: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def set_consent(self, channel: str, purpose: str, granted: bool, when: datetime) -> None:
        current = self.consents.get((channel, purpose))
        if current is None or when >= current[1]:
            self.consents[(channel, purpose)] = (granted, when)

    def record_response(self, action_id: str, response: str, when: datetime) -> None:
        count, _last = self.ignores.get(action_id, (0, None))
        if response == "ignore":
            self.ignores[action_id] = (count + 1, when)
        elif response in SUCCESS:
            self.ignores.pop(action_id, None)
