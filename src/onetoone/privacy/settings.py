"""``[privacy]`` and ``[consent]`` in ``onetoone.toml`` (docs/configuration.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from onetoone.settings import Section

#: Purposes every workspace knows; ``[consent] purposes`` replaces them.
DEFAULT_PURPOSES = ("marketing", "service", "advertising")


class PrivacySettings(Section):
    """Data-subject rights and retention."""

    #: Customers without any activity (purchase, contact, answer, consent change, decision,
    #: profile update) for longer are erased or anonymised by ``onetoone privacy retention``.
    retention_days: int | None = Field(default=None, ge=30)
    #: What retention does: ``anonymise`` keeps their events for statistics under a random id;
    #: ``erase`` removes them.
    retention_mode: Literal["erase", "anonymise"] = "anonymise"


class ConsentSettings(Section):
    """The consent model: purposes a consent can be given for (channels: the outbound ones of
    ``[contact_policy]`` and the present ones, web, app, store, call_centre)."""

    purposes: list[str] = Field(default_factory=lambda: list(DEFAULT_PURPOSES), min_length=1)
