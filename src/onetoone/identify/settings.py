"""``[identify]``: how records are stitched into customers (documented in docs/identity.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from onetoone.settings import Section

Survivorship = Literal["most_recent", "most_frequent", "source_priority", "longest", "non_empty"]


class IdentifySettings(Section):
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
