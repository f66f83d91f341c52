"""``[sources.NAME]``: one silo export and how its columns map to the canonical model
(documented in docs/configuration.md)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from onetoone.schema import ENTITIES
from onetoone.settings import Section


class SourceConfig(Section):
    """[sources.NAME]: one silo export and how its columns map to the canonical model."""

    entity: str
    path: str
    format: Literal["csv", "tsv", "parquet", "json", "jsonl"] | None = None
    delimiter: str | None = None
    decimal: Literal[".", ","] = "."
    encoding: str = "auto"
    date_format: str | list[str] | None = None
    datetime_format: str | list[str] | None = None
    quote: str = '"'
    header: bool = True
    skip_rows: int = Field(0, ge=0)
    null_values: list[str] = Field(
        default_factory=lambda: ["", "NULL", "null", "None", "N/A", "n/a", "#N/A"]
    )
    customer_source: str | None = None
    explode: str | None = None
    #: Longest line read, in bytes (characters where a line is read as text); a longer line
    #: is quarantined with its first 1,000 characters (docs/ingestion.md).
    max_line_bytes: int = Field(16 << 20, ge=1024)
    country: str | None = None
    timezone: str | None = None
    columns: dict[str, str] = Field(default_factory=dict)
    identifiers: dict[str, str] = Field(default_factory=dict)

    @field_validator("entity")
    @classmethod
    def _known_entity(cls, value: str) -> str:
        if value not in ENTITIES:
            raise ValueError(f"unknown entity '{value}'; use one of {', '.join(ENTITIES)}")
        return value

    @field_validator("delimiter", "quote")
    @classmethod
    def _one_char(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.field_name == "delimiter" and value == "whitespace":
            return value
        if value is not None and value != "\\t" and len(value) != 1:
            raise ValueError("must be a single character")
        return "\t" if value == "\\t" else value

    @field_validator("identifiers")
    @classmethod
    def _identifier_types(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ValueError(
                    f"identifier type '{name}' must be lower-case letters, digits and _"
                )
        return value

    def date_formats(self) -> list[str]:
        return _as_list(self.date_format)

    def datetime_formats(self) -> list[str]:
        return _as_list(self.datetime_format)


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
