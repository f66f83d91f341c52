"""Typed configuration of a workspace (``onetoone.toml``).

Unknown keys are rejected with the file line that holds them, so a typo never passes silently.
Later capabilities add their own sections here; every key is documented in
``docs/configuration.md`` (a test checks that none is missing).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from onetoone.channels.settings import (
    AudienceConfig,
    CampaignConfig,
    ChannelConfig,
    TriggerConfig,
)
from onetoone.customize.settings import (
    ABTestConfig,
    ActionConfig,
    ContactPolicySettings,
    ControlGroupSettings,
    DecisioningSettings,
)
from onetoone.differentiate.settings import DefectionSettings, NeedsSettings, ValueSettings
from onetoone.errors import ConfigError
from onetoone.identify.settings import IdentifySettings
from onetoone.ingest.settings import SourceConfig
from onetoone.interact.settings import ApiSettings
from onetoone.privacy.settings import ConsentSettings, PrivacySettings
from onetoone.schedule import ScheduleSettings, zone
from onetoone.schema import ENTITIES
from onetoone.settings import Section, WorkspaceSettings

CONFIG_FILE = "onetoone.toml"

__all__ = [
    "CONFIG_FILE",
    "ABTestConfig",
    "ActionConfig",
    "ApiSettings",
    "Config",
    "ContactPolicySettings",
    "ControlGroupSettings",
    "DecisioningSettings",
    "DefectionSettings",
    "IdentifySettings",
    "NeedsSettings",
    "ScheduleSettings",
    "SourceConfig",
    "ValueSettings",
    "WorkspaceSettings",
    "default_config_text",
    "load_config",
    "parse_config",
]


class Config(Section):
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
    schedule: ScheduleSettings = Field(default_factory=lambda: ScheduleSettings())
    privacy: PrivacySettings = Field(default_factory=lambda: PrivacySettings())
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    campaigns: dict[str, CampaignConfig] = Field(default_factory=dict)
    triggers: dict[str, TriggerConfig] = Field(default_factory=dict)
    consent: ConsentSettings = Field(default_factory=lambda: ConsentSettings())
    audiences: dict[str, AudienceConfig] = Field(default_factory=dict)

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
        purposes = self.consent.purposes
        for name, declared in self.actions.items():
            if declared.purpose not in purposes:
                raise ConfigError(
                    f"[actions.{name}] purpose = '{declared.purpose}' is not a consent "
                    "purpose.",
                    hint=f"Purposes: {', '.join(purposes)} ([consent] purposes lists them).")
        for purpose in self.contact_policy.consent_defaults:
            if purpose not in purposes:
                raise ConfigError(
                    f"[contact_policy.consent_defaults] names '{purpose}', which is not a "
                    "consent purpose.",
                    hint=f"Purposes: {', '.join(purposes)} ([consent] purposes lists them).")
        for name, campaign in self.campaigns.items():
            self.check_campaign(name, campaign)
        for name, audience in self.audiences.items():
            self._check_audience(name, audience)
        if self.schedule.entries():
            zone(self.workspace.timezone)  # the schedule's times are read in it
        return self


    def campaign(self, name: str, settings: dict[str, Any],
                 where: str = "request body") -> CampaignConfig:
        """``[campaigns.NAME]`` given as data (``where`` says whence): read and checked as
        when the file is read, with the same sentences."""
        try:
            campaign = Config.model_validate({"campaigns": {name: settings}}).campaigns[name]
        except ValidationError as exc:
            raise _config_error(exc, "", where) from None
        self.check_campaign(name, campaign)
        return campaign

    def check_campaign(self, name: str, campaign: CampaignConfig) -> None:
        """A campaign names known channels, actions, value tiers and profile fields."""
        from onetoone.schedule import Cron

        where = f"[campaigns.{name}]"
        outbound = self.contact_policy.outbound_channels
        if campaign.channel not in outbound:
            raise ConfigError(f"{where} channel = '{campaign.channel}' is not an outbound "
                              "channel.", hint=f"Channels: {', '.join(outbound)}.")
        unknown = [a for a in campaign.actions if a not in self.actions]
        if unknown:
            raise ConfigError(f"{where} names the action '{unknown[0]}', which the catalog "
                              "does not hold.",
                              hint=f"Actions: {', '.join(self.actions) or 'none'}.")
        carried = [a for a in campaign.actions
                   if campaign.channel not in self.actions[a].channels]
        if carried:
            raise ConfigError(f"{where}: the action '{carried[0]}' is not sent on "
                              f"{campaign.channel}.",
                              hint=f"Its channels: {', '.join(self.actions[carried[0]].channels)}.")
        _check_tiers(where, campaign.tiers)
        if campaign.deliver_with is not None and campaign.deliver_with not in self.channels:
            raise ConfigError(f"{where} deliver_with = '{campaign.deliver_with}' is not a "
                              "[channels.NAME] of this file.",
                              hint=f"Channels: {', '.join(self.channels) or 'none declared'}.")
        if campaign.audience:
            _check_audience_rule(where, campaign.audience, context=True)
        if campaign.schedule.startswith("trigger:"):
            trigger = campaign.schedule.removeprefix("trigger:")
            if trigger not in self.triggers:
                raise ConfigError(f"{where} schedule names the trigger '{trigger}', which is "
                                  "not a [triggers.NAME] of this file.",
                                  hint=f"Triggers: {', '.join(self.triggers) or 'none'}.")
        elif campaign.schedule != "once":
            try:
                Cron(campaign.schedule, self.workspace.timezone)
            except ValueError as exc:
                raise ConfigError(f"{where} schedule: {exc}.",
                                  hint='Use "once" or a cron expression.') from None

    def _check_audience(self, name: str, audience: AudienceConfig) -> None:
        """An audience has a file-safe name, a known purpose, known profile fields and value
        tiers, and the channel ``ads`` among the outbound channels (its consent is opt-in)."""

        where = f"[audiences.{name}]"
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
            raise ConfigError(f"Audience name '{name}' may only hold letters, digits, '_' and "
                              "'-' (it names the exported files).")
        outbound = self.contact_policy.outbound_channels
        if "ads" not in outbound:
            listed = ", ".join(f'"{c}"' for c in [*outbound, "ads"])
            raise ConfigError(
                f"{where}: the channel 'ads' is not an outbound channel of [contact_policy], so "
                "no consent could be given or withdrawn for it.",
                hint=f"Add it: [contact_policy] outbound_channels = [{listed}].")
        purposes = self.consent.purposes
        if audience.purpose not in purposes:
            raise ConfigError(f"{where} purpose = '{audience.purpose}' is not a consent purpose.",
                              hint=f"Purposes: {', '.join(purposes)} ([consent] purposes lists "
                              "them).")
        _check_tiers(where, audience.tiers)
        if any(not s.strip() for s in audience.segments):
            raise ConfigError(f"{where} segments holds an empty name.")
        if audience.audience:
            _check_audience_rule(where, audience.audience, context=False)


def _check_tiers(where: str, tiers: list[str]) -> None:
    """Value tiers that exist."""
    from onetoone.differentiate.tiers import TIERS

    unknown = [t for t in tiers if t not in TIERS]
    if unknown:
        raise ConfigError(f"{where} tiers names the unknown value tier '{unknown[0]}'.",
                          hint=f"Tiers: {', '.join(TIERS)}.")


def _check_audience_rule(where: str, rule: str, *, context: bool) -> None:
    """An audience rule that parses and reads known profile fields (``context_*`` too when
    the rule is evaluated with a request's context)."""
    from onetoone.channels.campaigns import audience_names, known_fields
    from onetoone.customize.rules import Rule, RuleError

    try:
        Rule(rule)
    except RuleError as exc:
        raise ConfigError(f"{where} audience: {exc}") from None
    fields = known_fields()
    strange = [n for n in audience_names(rule)
               if n not in fields and not (context and n.startswith("context_"))]
    if strange:
        raise ConfigError(f"{where} audience names the unknown field '{strange[0]}'.",
                          hint=f"Fields: {', '.join(sorted(fields))}.")


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

# Steps that 'onetoone serve' runs by itself, in the workspace time zone. Example:
#
# [schedule]
# ingest = "30 1 * * *"           # cron: minute hour day-of-month month day-of-week
# identify = "after ingest"       # when an ingest job succeeds
# score = "after identify"
'''
