"""Typed configuration of a workspace (``onetoone.toml``).

Unknown keys are rejected with the file line that holds them, so a typo never passes silently.
Later capabilities add their own sections here; every key is documented in
``docs/configuration.md`` (a test checks that none is missing).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from onetoone.customize.settings import (
    ABTestConfig,
    ActionConfig,
    ControlGroupSettings,
    DecisioningSettings,
)
from onetoone.errors import ConfigError
from onetoone.interact.settings import ApiSettings, ContactPolicySettings
from onetoone.schema import ENTITIES

CONFIG_FILE = "onetoone.toml"


ValueModelName = Literal["bgnbd", "paretonbd", "mbgnbd"]
_VALUE_MODELS: tuple[ValueModelName, ...] = get_args(ValueModelName)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class WorkspaceSettings(_Section):
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


class SourceConfig(_Section):
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


Survivorship = Literal["most_recent", "most_frequent", "source_priority", "longest", "non_empty"]


class IdentifySettings(_Section):
    """[identify]: how records are stitched into customers (see docs/identity.md)."""

    identifier_priority: list[str] = Field(
        default_factory=lambda: ["customer_number", "loyalty_card", "email", "phone",
                                 "social_handle", "device_id"],
        description="Identifier types from strongest to weakest; unlisted types come last",
    )
    ignore_types: list[str] = Field(default_factory=list)
    unique_per_person: list[str] = Field(default_factory=list)
    garbage_values: list[str] = Field(
        default_factory=lambda: ["test@test.com", "n/a", "na", "none", "null", "unknown",
                                 "inconnu", "nobody@nowhere.com", "noemail@noemail.com",
                                 "0123456789", "123456789", "1234567890"]
    )
    garbage_email_domains: list[str] = Field(
        default_factory=lambda: ["example.com", "example.org", "example.net", "example.fr",
                                 "test.com", "test.fr", "localhost", "invalid", "mailinator.com"]
    )
    generic_email_local_parts: list[str] = Field(
        default_factory=lambda: ["contact", "info", "noreply", "no-reply", "admin", "test",
                                 "sales", "support", "service", "hello", "bonjour", "accueil",
                                 "commande", "webmaster", "postmaster"]
    )
    min_length: int = Field(default=2, ge=1)
    shared_min_records: int = Field(default=2, ge=2)
    max_records_per_value: int = Field(default=50, ge=2)
    max_emails_per_customer: int = Field(default=5, ge=1)
    max_birth_dates_per_customer: int = Field(default=2, ge=1)
    household_types: list[str] = Field(
        default_factory=lambda: ["email", "phone", "device_id"],
        description="Identifier types a household may share; their values only join "
        "compatible records")
    nicknames: dict[str, str] = Field(
        default_factory=dict, description="Nickname -> first name, added to the built-in list")
    compare: list[str] = Field(
        default_factory=list,
        description="Identifier types or attribute keys the probabilistic model also compares")
    probabilistic: bool = True
    probabilistic_vetoes: bool = Field(
        default=True, description="No probabilistic link between clearly different first "
        "names or birth dates")
    match_threshold: float = Field(default=0.95, gt=0, lt=1)
    review_threshold: float = Field(default=0.80, gt=0, lt=1)
    max_pairs_for_u: float = Field(default=1e6, gt=0)
    address_change_share: float = Field(
        default=0.05, ge=0, lt=1,
        description="Least share of one person's record pairs whose postcode, city or address "
        "disagree (people move): the model's m of those disagreements never falls below it")
    max_block_size: int = Field(
        default=50, ge=2, description="Probabilistic candidates: a blocking key held by more "
        "records is skipped (candidate pairs stay linear in the base)")
    survivorship: dict[str, Survivorship] = Field(default_factory=dict)
    source_priority: list[str] = Field(default_factory=list)


class ValueSettings(_Section):
    """[value]: lifetime value, model choice and value tiers (see docs/value-models.md)."""

    time_unit: Literal["day", "week", "month"] = "week"
    holdout_weeks: int = Field(default=26, ge=1)
    models: list[ValueModelName] = Field(
        default_factory=lambda: list(_VALUE_MODELS), min_length=1
    )
    min_customers: int = Field(default=30, ge=2)
    min_repeat_customers: int = Field(default=10, ge=2)
    horizon_months: int = Field(default=12, ge=1)
    monthly_discount_rate: float = Field(default=0.01, ge=0, lt=1)
    default_margin: float = Field(default=0.3, ge=-1, le=1)
    cost_to_serve_per_year: float = Field(default=0.0, ge=0)
    exclude_statuses: list[str] = Field(default_factory=lambda: ["cancelled", "canceled"])
    top_share: float = Field(default=0.2, gt=0, lt=1)
    growable_min_purchases_quantile: float = Field(default=0.5, ge=0, le=1)
    growable_max_spend_quantile: float = Field(default=0.5, ge=0, le=1)


class DefectionSettings(_Section):
    """[defection]: defection risk, reasons and the mass-defection monitor
    (see docs/defection-and-needs.md)."""

    enabled: bool = True
    kind: Literal["auto", "purchase", "contract"] = "auto"
    horizon_days: int | None = Field(default=None, ge=7)
    horizon_percentile: float = Field(default=0.9, ge=0.5, lt=1)
    min_horizon_days: int = Field(default=30, ge=7)
    max_horizon_days: int = Field(default=365, ge=7)
    cutoffs: int = Field(default=4, ge=1)
    cutoff_step_days: int | None = Field(default=None, ge=7)
    min_training_rows: int = Field(default=50_000, ge=0)
    max_cutoffs: int = Field(default=12, ge=1)
    min_history_days: int = Field(default=90, ge=0)
    exclude_statuses: list[str] = Field(default_factory=lambda: ["cancelled", "canceled"])
    n_estimators: int = Field(default=400, ge=10)
    learning_rate: float = Field(default=0.05, gt=0, le=1)
    num_leaves: int = Field(default=31, ge=2)
    max_training_rows: int = Field(default=400_000, ge=100)
    reasons: int = Field(default=3, ge=1)
    reasons_min_risk: float = Field(default=0.3, ge=0, le=1)
    reasons_exact_max_rows: int = Field(default=20_000, ge=0)
    sentiment_words: dict[str, float] = Field(default_factory=dict)
    alert_threshold: float = Field(default=0.5, gt=0, lt=1)
    monitor_margin: float = Field(default=0.05, ge=0, lt=1)
    seed: int = 0


class NeedsSettings(_Section):
    """[needs]: needs-based segments (see docs/defection-and-needs.md)."""

    enabled: bool = True
    lookback_days: int = Field(default=365, ge=7)
    min_segments: int = Field(default=3, ge=2)
    max_segments: int = Field(default=8, ge=2)
    max_categories: int = Field(default=12, ge=1)
    min_customers: int = Field(default=50, ge=10)
    sample_size: int = Field(default=20_000, ge=100)
    match_distance: float = Field(default=1.0, gt=0)
    exclude_statuses: list[str] = Field(default_factory=lambda: ["cancelled", "canceled"])
    seed: int = 0


class Config(_Section):
    """The whole ``onetoone.toml``."""

    workspace: WorkspaceSettings = Field(default_factory=lambda: WorkspaceSettings())
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    identify: IdentifySettings = Field(default_factory=lambda: IdentifySettings())
    actions: dict[str, ActionConfig] = Field(default_factory=dict)
    ab_tests: dict[str, ABTestConfig] = Field(default_factory=dict)
    decisioning: DecisioningSettings = Field(default_factory=lambda: DecisioningSettings())
    contact_policy: ContactPolicySettings = Field(
        default_factory=lambda: ContactPolicySettings())
    control_groups: ControlGroupSettings = Field(
        default_factory=lambda: ControlGroupSettings())
    api: ApiSettings = Field(default_factory=lambda: ApiSettings())
    value: ValueSettings = Field(default_factory=lambda: ValueSettings())
    defection: DefectionSettings = Field(default_factory=lambda: DefectionSettings())
    needs: NeedsSettings = Field(default_factory=lambda: NeedsSettings())

    def check(self) -> Config:
        """Cross-field checks that pydantic cannot express per section."""
        for name, source in self.sources.items():
            if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
                raise ConfigError(
                    f"Source name '{name}' may only hold letters, digits, '_' and '-'."
                )
            entity = ENTITIES[source.entity]
            for canonical in source.columns:
                if entity.field(canonical) is None:
                    known = ", ".join(f.name for f in entity.fields)
                    raise ConfigError(
                        f"[sources.{name}.columns] maps unknown field '{canonical}' for entity "
                        f"'{source.entity}'.",
                        hint=f"Known fields: {known}.",
                    )
            if source.customer_source is not None:
                target = self.sources.get(source.customer_source)
                if target is None or target.entity != "customers":
                    raise ConfigError(
                        f"[sources.{name}] customer_source = '{source.customer_source}' is not "
                        "a source of entity 'customers' in this file."
                    )
            if "customer_source_id" in source.columns and source.customer_source is None:
                raise ConfigError(
                    f"[sources.{name}] maps customer_source_id but does not say which customers "
                    "source those ids belong to.",
                    hint='Add customer_source = "<name of the customers source>".',
                )
        seen: dict[str, str] = {}
        for name, test in self.ab_tests.items():
            for action in test.actions:
                if action not in self.actions:
                    raise ConfigError(
                        f"[ab_tests.{name}] names the action '{action}', which the catalog does "
                        "not hold.", hint=f"Actions: {', '.join(self.actions) or 'none'}.")
                if action in seen:
                    raise ConfigError(f"The action '{action}' is an arm of two tests, "
                                      f"'{seen[action]}' and '{name}'.",
                                      hint="Give each test actions of its own.")
                seen[action] = name
        return self


def load_config(path: Path) -> Config:
    """Read and validate a configuration file; errors name the key and its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"No configuration file at {path}.",
            hint="Run 'onetoone init' to create a workspace, or pass --workspace.",
        ) from None
    return parse_config(text, path)


def parse_config(text: str, path: Path | str = CONFIG_FILE) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}.") from None
    try:
        return Config.model_validate(data).check()
    except ValidationError as exc:
        raise _config_error(exc, text, path) from None


def _config_error(exc: ValidationError, text: str, path: Path | str) -> ConfigError:
    first = exc.errors()[0]
    loc = [str(part) for part in first["loc"]]
    line = _line_of(text, loc)
    where = f"{path}, line {line}" if line else str(path)
    dotted = ".".join(loc)
    if first["type"] == "extra_forbidden":
        section = ".".join(loc[:-1]) or "top level"
        return ConfigError(
            f"Unknown key '{loc[-1]}' in [{section}] ({where}).",
            hint="Check its spelling against docs/configuration.md.",
        )
    if first["type"] == "missing":
        return ConfigError(f"Missing key '{dotted}' ({where}).")
    message = str(first["msg"]).removeprefix("Value error, ")
    return ConfigError(f"Invalid value for '{dotted}' ({where}): {message}.")


def _line_of(text: str, loc: list[str]) -> int | None:
    """Best-effort line number of a dotted key in TOML text."""
    lines = text.splitlines()
    section: list[str] = []
    key = loc[-1]
    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        header = re.fullmatch(r"\[\[?\s*([^\]]+?)\s*\]\]?", stripped)
        if header:
            section = [part.strip().strip('"') for part in header.group(1).split(".")]
            if section == loc:
                return number
            continue
        match = re.match(r'["\']?([A-Za-z0-9_\-]+)["\']?\s*=', stripped)
        if match and match.group(1) == key and section == loc[:-1]:
            return number
    return None


def default_config_text(name: str = "onetoone") -> str:
    """The commented ``onetoone.toml`` that ``onetoone init`` writes."""
    return f'''# onetoone workspace configuration. Reference: docs/configuration.md

[workspace]
name = "{name}"
default_country = "FR"        # phone numbers without +country are read in this country
timezone = "Europe/Paris"     # times without offset are in this time zone
currency = "EUR"
language = "fr"

# Declare one [sources.NAME] section per export. Example:
#
# [sources.crm]
# entity = "customers"            # customers, transactions, transaction_items, products,
#                                 # interactions, consents, contracts, social_posts, feedback
# path = "exports/crm_*.csv"      # file, folder or glob, relative to this file
# delimiter = ";"
# decimal = ","
# encoding = "auto"               # auto, utf-8, utf-8-sig, cp1252, latin-1
# date_format = "%d/%m/%Y"
#
# [sources.crm.columns]           # canonical field = source column
# source_id = "client_id"
# first_name = "prenom"
# last_name = "nom"
# email = "mail"
#
# [sources.crm.identifiers]       # identifier type = source column
# loyalty_card = "carte"
'''
