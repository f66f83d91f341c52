"""What every configuration section shares, and ``[workspace]``.

Each domain package owns the model of its own sections (``onetoone.ingest.settings``,
``onetoone.identify.settings`` ...); :mod:`onetoone.config` only assembles them from
``onetoone.toml``, so settings flow one way: from the file, through the configuration, into the
domain code as arguments.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, field_validator


class Section(BaseModel):
    """One ``[section]`` of ``onetoone.toml``: unknown keys are an error, never ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class WorkspaceSettings(Section):
    """[workspace]: what applies to the whole customer base."""

    name: str = "onetoone"
    #: ISO country for phone numbers written without +country.
    default_country: str = "FR"
    #: Time zone of times written without offset.
    timezone: str = "Europe/Paris"
    currency: str = "EUR"
    language: str = "fr"

    @field_validator("default_country")
    @classmethod
    def _upper_country(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z]{2}", value):
            raise ValueError("must be a two-letter ISO country code such as FR")
        return value.upper()
