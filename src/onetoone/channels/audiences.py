"""Audiences for ads and addressable TV (``[audiences.NAME]``, docs/channels.md): the customers
an audience rule, value tiers and needs segments select, whose consent covers the purpose on
the channel ``ads``, written as a file an ad platform or a TV operator matches against its
users.

- ``google``: a Google Ads Customer Match file; e-mail, phone and names SHA-256 hashed after
  Google's normalisation, country and postcode in clear (Google hashes neither).
- ``meta``: a Meta custom audience file; every column SHA-256 hashed after Meta's
  normalisation.
- ``csv``: the plain values, for operators that match on their side (addressable TV).

Consent is that of :meth:`ContactPolicy.consent` on the channel ``ads`` (an outbound channel of
``[contact_policy]``): the latest row for (``ads``, purpose) wins, else the purpose's
``consent_defaults`` (none for ``advertising``: opt-in only). The universal control group is
never exported; a deterministic ``holdout_share`` of the rest (a salted hash of the customer id
and the audience's name) is kept out of every export and listed in ``<name>-holdout.csv``, to
measure the lift of the ads against it.

Every file is written readable by its owner only, with a sidecar ``<file>.ids`` holding the
customer id of each row in order: hashed files name no customer, and erasure finds the person's
rows by it (``onetoone.privacy.rights``).

Normalisation, as the platforms document it:

- Google Customer Match file format and headers:
  https://support.google.com/google-ads/answer/7659867 ; Country and Zip are not hashed:
  https://support.google.com/google-ads/answer/7474263 ; e-mail trimmed and lower-cased, and
  the dots of gmail.com / googlemail.com addresses need not be removed ("they'll still be
  accepted"):
  https://developers.google.com/google-ads/api/docs/remarketing/audience-types/customer-match ;
  e-mail without any whitespace, phone with "+" and the country code (E.164):
  https://developers.google.com/data-manager/api/get-started/formatting ; first name lower-cased
  without extra spaces, last name lower-cased without punctuation, ISO-3166-1 alpha-2 country:
  https://developers.google.com/google-ads/api/reference/rpc/latest/OfflineUserAddressInfo
- Meta (section "Hashing and Normalizing Data"):
  https://developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences :
  EMAIL trimmed and lower-cased; PHONE without symbols, letters and leading zeros, with the
  country code; FN and LN lower-case letters only, no punctuation, other letters in UTF-8; CT
  a-z only, no white space; ZIP lower-case without white space (US: the first 5 digits; UK:
  area, district and sector); COUNTRY lower-case ISO 3166-1 alpha-2; every one hashed.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from onetoone.clock import utcnow
from onetoone.customize.engine import DecisionEngine
from onetoone.customize.templates import spreadsheet_cell
from onetoone.errors import InvalidInputError, NotFoundError
from onetoone.measure.control import in_holdout, in_universal_control
from onetoone.privacy.registry import AUDIENCE_IDS, AUDIENCES

if TYPE_CHECKING:
    from onetoone.channels.settings import AudienceConfig
    from onetoone.customize.policy import ContactPolicy
    from onetoone.customize.profile import Profile
    from onetoone.customize.settings import ControlGroupSettings
    from onetoone.interact.service import DecisionService

PLATFORMS = ("google", "meta", "csv")
#: the consent channel of an export (an outbound channel of [contact_policy])
AD_CHANNEL = "ads"
HEADERS: dict[str, tuple[str, ...]] = {
    "google": ("Email", "Phone", "First Name", "Last Name", "Country", "Zip"),
    "meta": ("EMAIL", "PHONE", "FN", "LN", "ZIP", "CT", "COUNTRY"),
    "csv": ("customer_id", "email", "phone", "first_name", "last_name", "postcode", "country"),
}

_SPACES = re.compile(r"\s+")
_COUNTRY = re.compile(r"[A-Za-z]{2}")


def _platform(platform: str) -> str:
    if platform not in PLATFORMS:
        raise InvalidInputError(f"Unknown platform '{platform}'.",
                                hint=f"Platforms: {', '.join(PLATFORMS)}.")
    return platform


def _text(raw: Any) -> str:
    return unicodedata.normalize("NFC", str(raw)).strip() if raw is not None else ""


def sha256_hex(text: str | None) -> str:
    """SHA-256 of the UTF-8 text in lower-case hex; empty for no value (never the hash of "")."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest() if text else ""


def normalise_email(platform: str, raw: Any) -> str | None:
    """The e-mail as the platform hashes it: lower-cased, trimmed (Google: no whitespace at
    all). Gmail dots are kept: Google accepts them. None without an ``@``."""
    text = _text(raw)
    text = _SPACES.sub("", text) if _platform(platform) == "google" else text
    text = text.lower()
    return text if "@" in text.strip("@") else None


def normalise_phone(platform: str, e164: Any) -> str | None:
    """An E.164 number as the platform hashes it: Google ``+33612345678``, Meta digits with the
    country code and no leading zeros ``33612345678``; plain E.164 for ``csv``."""
    digits = re.sub(r"\D", "", _text(e164)).lstrip("0")
    if not 7 <= len(digits) <= 15:
        return None
    return digits if _platform(platform) == "meta" else "+" + digits


def normalise_name(platform: str, raw: Any, *, last: bool = False) -> str | None:
    """A first (or ``last``) name as the platform hashes it: Google lower-cased with single
    spaces (a last name also without punctuation); Meta lower-case letters only (accented ones
    kept, in UTF-8); trimmed for ``csv``."""
    text = _text(raw)
    platform = _platform(platform)
    if platform == "meta":
        text = "".join(c for c in text.lower() if c.isalpha())
    elif platform == "google":
        if last:
            text = "".join(c for c in text if not unicodedata.category(c).startswith("P"))
        text = _SPACES.sub(" ", text.lower()).strip()
    return text or None


def normalise_country(platform: str, raw: Any) -> str | None:
    """The ISO 3166-1 alpha-2 code: upper-case for Google and ``csv``, lower-case for Meta."""
    text = _text(raw)
    if not _COUNTRY.fullmatch(text):
        return None
    return text.lower() if _platform(platform) == "meta" else text.upper()


def normalise_postcode(platform: str, raw: Any, country: Any = None) -> str | None:
    """The postcode: Meta lower-case without white space, the first 5 digits in the US, the
    area, district and sector in the UK (``SW1A 1AA`` -> ``sw1a1``); Google (in clear) and
    ``csv`` letters, digits, spaces and hyphens."""
    text = _text(raw)
    code = _text(country).upper()
    if _platform(platform) == "meta":
        text = _SPACES.sub("", text).lower()
        if code == "US":
            text = re.sub(r"\D", "", text)[:5]
        elif code == "GB" and len(text) >= 5:
            text = text[:-2]
        return text or None
    text = _SPACES.sub(" ", re.sub(r"[^\w\s-]", "", text)).strip(" -_")
    return text or None


def normalise_city(raw: Any) -> str | None:
    """A city for Meta's CT: a-z only (accents dropped), no punctuation, no white space."""
    plain = unicodedata.normalize("NFKD", _text(raw).lower())
    text = "".join(c for c in plain if "a" <= c <= "z")
    return text or None


def audience_row(platform: str, customer_id: str, attrs: dict[str, Any]) -> list[str] | None:
    """The file's row for one customer, or None when it holds nothing to match on (an e-mail,
    a phone, or first and last names with a postcode and a country)."""
    email = normalise_email(platform, attrs.get("email"))
    phone = normalise_phone(platform, attrs.get("phone"))
    first = normalise_name(platform, attrs.get("first_name"))
    last = normalise_name(platform, attrs.get("last_name"), last=True)
    country = normalise_country(platform, attrs.get("country"))
    postcode = normalise_postcode(platform, attrs.get("postcode"), attrs.get("country"))
    address = bool(first and last and country and postcode)
    if not (email or phone or address):
        return None
    if platform == "google":  # the address only whole: Google matches on all four
        if not address:
            first = last = country = postcode = None
        return [sha256_hex(email), sha256_hex(phone), sha256_hex(first), sha256_hex(last),
                country or "", postcode or ""]
    if platform == "meta":
        return [sha256_hex(v) for v in (email, phone, first, last, postcode,
                                        normalise_city(attrs.get("city")), country)]
    return [spreadsheet_cell(v) for v in (customer_id, email, phone, _text(
        attrs.get("first_name")) or None, _text(attrs.get("last_name")) or None, postcode,
        country)]


@dataclass
class AudienceExport:
    """What an export did: counts of the selection, then of what left it."""

    audience: str
    platform: str
    purpose: str
    customers: int = 0
    selected: int = 0
    without_consent: int = 0
    without_identifiers: int = 0
    universal_control: int = 0
    held_out: int = 0
    exported: int = 0
    files: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"audience": self.audience, "platform": self.platform, "purpose": self.purpose,
                "customers": self.customers, "selected": self.selected,
                "without_consent": self.without_consent,
                "without_identifiers": self.without_identifiers,
                "universal_control": self.universal_control, "held_out": self.held_out,
                "exported": self.exported, "file": self.files.get("export"),
                "holdout_file": self.files.get("holdout")}


class _PrivateCsv:
    """A CSV file and its sidecar of customer ids, written owner-only (0600) beside their
    final names and swapped in together when complete."""

    def __init__(self, path: Path, header: Iterable[str]) -> None:
        self.path = path
        self.ids_path = path.with_name(path.name + AUDIENCE_IDS)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._files: list[tuple[IO[str], Path]] = []
        self.rows = self._open(path)
        self.ids = self._open(self.ids_path)
        self.rows.writerow(list(header))
        self.ids.writerow(["customer_id"])

    def _open(self, path: Path) -> Any:
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        out = os.fdopen(fd, "w", newline="", encoding="utf-8")
        self._files.append((out, tmp))
        return csv.writer(out)

    def write(self, customer_id: str, row: list[Any]) -> None:
        self.rows.writerow(row)
        self.ids.writerow([customer_id])

    def commit(self) -> None:
        for out, _tmp in self._files:
            out.close()
        # the sidecar first: a file is never left without the ids of its rows
        os.replace(self._files[1][1], self.ids_path)
        os.replace(self._files[0][1], self.path)

    def abort(self) -> None:
        for out, tmp in self._files:
            out.close()
            tmp.unlink(missing_ok=True)


def export_audience(name: str, config: AudienceConfig, platform: str,
                    profiles: Iterable[tuple[Profile, Profile]], policy: ContactPolicy,
                    control: ControlGroupSettings, output: Path,
                    holdout_output: Path) -> AudienceExport:
    """Write the audience's file for ``platform`` to ``output`` and its holdout's customer ids
    to ``holdout_output``. ``profiles`` are (fresh profile, the one whose consents are
    current) of every customer, as a campaign reads them."""
    from onetoone.customize.rules import Rule

    platform = _platform(platform)
    if AD_CHANNEL not in policy.outbound:  # else every customer would count as consenting
        raise InvalidInputError(f"'{AD_CHANNEL}' is not an outbound channel.",
                                hint="Add it to [contact_policy] outbound_channels.")
    result = AudienceExport(name, platform, config.purpose)
    rule = Rule(config.audience) if config.audience else None
    exported = _PrivateCsv(output, HEADERS[platform])
    holdout = _PrivateCsv(holdout_output, ["customer_id"])
    try:
        for fresh, current in profiles:
            result.customers += 1
            attrs = fresh.attributes
            if config.tiers and attrs.get("value_tier") not in config.tiers:
                continue
            if config.segments and attrs.get("needs_segment") not in config.segments:
                continue
            if rule is not None and not rule.test(DecisionEngine.environment(fresh, {})):
                continue
            result.selected += 1
            cid = fresh.customer_id
            if not policy.consent(current, AD_CHANNEL, config.purpose):
                result.without_consent += 1
                continue
            row = audience_row(platform, cid, attrs)
            if row is None:
                result.without_identifiers += 1
            elif in_universal_control(cid, control.universal_share, control.salt):
                result.universal_control += 1
            elif in_holdout(cid, f"audience:{name}", config.holdout_share, control.salt):
                result.held_out += 1
                holdout.write(cid, [spreadsheet_cell(cid)])
            else:
                result.exported += 1
                exported.write(cid, row)
    except BaseException:
        exported.abort()
        holdout.abort()
        raise
    exported.commit()
    holdout.commit()
    return result


def _shown(root: Path, path: Path) -> str:
    """A path relative to the workspace when inside it, else absolute."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path.resolve())


def _profiles(service: DecisionService, now: datetime) -> Iterator[tuple[Profile, Profile]]:
    from onetoone.interact.profiles import ProfileStore

    service.writer.sync()  # consents received through the API are in the tables read below
    loaded = ProfileStore.load(service.cursor(), now, service.policy.max_days,
                               service.policy.outbound)
    for fresh in loaded.profiles():
        yield fresh, (service._profiles.made(fresh.customer_id) or fresh)


def audience_export(service: DecisionService, audiences: dict[str, AudienceConfig], root: Path,
                    name: str, platform: str, output: Path | None = None,
                    now: datetime | None = None) -> dict[str, Any]:
    """Export ``[audiences.NAME]`` for ``platform``: by default to
    ``audiences/<name>-<platform>.csv`` in the workspace; the holdout always to
    ``audiences/<name>-holdout.csv``. Returns the counts and the files written."""
    config = audiences.get(name)
    if config is None:
        raise NotFoundError(f"No audience '{name}'.",
                            hint=f"Audiences: {', '.join(audiences) or 'none'} "
                            "([audiences.NAME] in onetoone.toml).")
    platform = _platform(platform)
    target = Path(output) if output is not None else root / AUDIENCES / f"{name}-{platform}.csv"
    holdout = root / AUDIENCES / f"{name}-holdout.csv"
    if target.resolve() == holdout.resolve():
        raise InvalidInputError("The export cannot be written over the holdout list.",
                                hint="Give another --output.")
    try:
        result = export_audience(name, config, platform, _profiles(service, now or utcnow()),
                                 service.policy, service.config.control_groups, target, holdout)
    except OSError as exc:  # a path that cannot be written: the caller's to change
        raise InvalidInputError(f"Cannot write the audience to {str(target)[:200]}: "
                                f"{exc.strerror or exc}.", hint="Give another --output.") from None
    result.files = {"export": _shown(root, target), "holdout": _shown(root, holdout)}
    return result.summary()


def record_export(audit: Callable[..., None], actor: str, summary: dict[str, Any],
                  root: Path) -> None:
    """One ``audience.export`` entry of the audit log: the counts, and the files written inside
    the workspace (erasure reads them there)."""
    details = {k: summary[k] for k in ("audience", "platform", "purpose", "selected",
                                       "without_consent", "without_identifiers",
                                       "universal_control", "held_out", "exported")}
    files = [f for f in (summary["file"], summary["holdout_file"])
             if f and not Path(f).is_absolute() and (root / f).resolve().is_relative_to(root)]
    try:
        audit(actor, "audience.export", None, **details, files=files)
    except ValueError:  # a file name the audit log takes for personal data: counts only
        audit(actor, "audience.export", None, **details, files=[])
