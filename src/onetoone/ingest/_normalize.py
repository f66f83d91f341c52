"""SQL expressions that parse and normalize one source column into one canonical field.

Each field kind gives a value expression (the typed, normalized value or NULL) and a check
expression (true when a non-empty input produced no value). Everything is set-based SQL run by
the store on whole batches: no Python loop per row, so millions of rows load in seconds.
Identifier values (e-mail, phone, loyalty card...) use the same normalization everywhere, which
is what makes stitching across silos possible.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from phonenumbers import PhoneMetadata

from onetoone.ingest.settings import SourceConfig
from onetoone.settings import WorkspaceSettings

_TRUE = ("true", "t", "yes", "y", "1", "oui", "o", "vrai", "x", "on", "opt-in", "optin")
_FALSE = ("false", "f", "no", "n", "0", "non", "faux", "off", "opt-out", "optout")

#: Country names and codes (English and French) → ISO 3166-1 alpha-2; other two-letter codes
#: known to libphonenumber are accepted as they are.
COUNTRY_NAMES = {
    "france": "FR", "fra": "FR", "belgique": "BE", "belgium": "BE", "bel": "BE",
    "suisse": "CH", "switzerland": "CH", "che": "CH", "luxembourg": "LU", "lux": "LU",
    "allemagne": "DE", "germany": "DE", "deu": "DE", "espagne": "ES", "spain": "ES",
    "esp": "ES", "italie": "IT", "italy": "IT", "ita": "IT", "royaume-uni": "GB",
    "united kingdom": "GB", "uk": "GB", "gbr": "GB", "great britain": "GB",
    "angleterre": "GB", "england": "GB", "pays-bas": "NL", "netherlands": "NL", "nld": "NL",
    "portugal": "PT", "prt": "PT", "irlande": "IE", "ireland": "IE", "autriche": "AT",
    "austria": "AT", "etats-unis": "US", "états-unis": "US", "united states": "US",
    "usa": "US", "canada": "CA", "can": "CA", "maroc": "MA", "morocco": "MA",
    "algerie": "DZ", "algérie": "DZ", "algeria": "DZ", "tunisie": "TN", "tunisia": "TN",
    "monaco": "MC", "pologne": "PL", "poland": "PL", "suede": "SE", "suède": "SE",
    "sweden": "SE", "danemark": "DK", "denmark": "DK", "norvege": "NO", "norvège": "NO",
    "norway": "NO", "grece": "GR", "grèce": "GR", "greece": "GR", "japon": "JP",
    "japan": "JP", "chine": "CN", "china": "CN", "bresil": "BR", "brésil": "BR",
    "brazil": "BR", "reunion": "RE", "la réunion": "RE", "martinique": "MQ",
    "guadeloupe": "GP",
}

LANGUAGE_NAMES = {
    "french": "fr", "français": "fr", "francais": "fr", "fra": "fr", "fre": "fr",
    "english": "en", "anglais": "en", "eng": "en", "german": "de", "allemand": "de",
    "spanish": "es", "espagnol": "es", "italian": "it", "italien": "it", "dutch": "nl",
    "néerlandais": "nl", "portuguese": "pt", "portugais": "pt",
}


_BLANKS = " \t\r\n"
_NO_BLANKS = str.maketrans("", "", _BLANKS)
#: the e-mail check of :meth:`Normalizer._valid_email` (RE2's ``\s`` is ASCII ``[\t\n\f\r ]``)
_EMAIL = re.compile("[^@\t\n\f\r ]+@[^@\t\n\f\r ]+\\.[^@\t\n\f\r ]{2,}")


def _strip(raw: str, chars: str) -> str:
    """``raw`` without ``chars``; the translation only runs on values that hold one."""
    test = " OR ".join(f"contains({raw}, {q(c)})" for c in chars)
    return f"CASE WHEN {test} THEN translate({raw}, {q(chars)}, '') ELSE {raw} END"


def q(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Expr:
    value: str
    #: Whether a non-empty input can fail to parse (then the row is refused or the value set
    #: aside, with ``expected`` in the reason).
    checked: bool
    #: Words for the reason, given the raw value in SQL (``raw``).
    expected: str


class Normalizer:
    """Builds the SQL for one source's fields, with its reader options."""

    def __init__(self, source: SourceConfig, settings: WorkspaceSettings) -> None:
        self.source = source
        self.country = (source.country or settings.default_country).upper()
        self.timezone = source.timezone or settings.timezone
        meta = PhoneMetadata.metadata_for_region(self.country)
        self.lengths: tuple[int, ...]
        if meta is None:
            self.calling_code, self.trunk, self.lengths = 0, "", (9,)
        else:
            self.calling_code = int(meta.country_code or 0)
            self.trunk = meta.national_prefix or ""
            desc = meta.general_desc
            self.lengths = tuple(desc.possible_length) if desc and desc.possible_length else (9,)

    # -- text kinds ---------------------------------------------------------------------
    def text(self, raw: str) -> str:
        return f"nullif(trim({raw}), '')"

    def name(self, raw: str) -> str:
        return f"nullif(regexp_replace(trim({raw}), '\\s+', ' ', 'g'), '')"

    def code(self, raw: str, field: str) -> str:
        if field in ("currency", "postcode"):
            return f"nullif(upper(translate({raw}, ' \t', '')), '')"
        return f"nullif(lower(trim({raw})), '')"

    def email(self, raw: str) -> str:
        return f"lower({_strip(raw, _BLANKS)})"

    def handle(self, raw: str) -> str:
        return f"nullif(lower(ltrim(translate({raw}, ' \t', ''), '@')), '')"

    def phone(self, raw: str) -> str:
        """E.164 from the usual national and international spellings.

        Rules, in order: '+' followed by 8 to 15 digits; '00' international prefix; the national
        trunk prefix ('0' in France) followed by a national number of a valid length; the
        country calling code without '+' (SMS gateways' MSISDN); a national number that lost
        its leading zero (a spreadsheet turned it into a number).
        """
        digits = f"regexp_replace({raw}, '[^0-9+]', '', 'g')"
        cc = str(self.calling_code)
        lengths = ", ".join(str(n) for n in self.lengths)
        trunk = self.trunk
        rules = [
            "WHEN regexp_full_match(d, '\\+[1-9][0-9]{7,14}') THEN d",
            "WHEN regexp_full_match(d, '00[1-9][0-9]{7,14}') THEN '+' || substr(d, 3)",
        ]
        if trunk:
            rules.append(
                f"WHEN starts_with(d, {q(trunk)}) AND length(d) - {len(trunk)} IN ({lengths}) "
                f"THEN '+{cc}' || substr(d, {len(trunk) + 1})"
            )
        if self.calling_code:
            rules.append(
                f"WHEN starts_with(d, {q(cc)}) AND length(d) - {len(cc)} IN ({lengths}) "
                f"AND NOT starts_with(d, '0') THEN '+' || d"
            )
            rules.append(
                f"WHEN length(d) IN ({lengths}) AND regexp_full_match(d, '[1-9][0-9]+') "
                f"THEN '+{cc}' || d"
            )
        return f"(SELECT CASE {' '.join(rules)} END FROM (SELECT {digits} AS d))"

    def identifier(self, raw: str, kind: str) -> str:
        """Normalized value of an identifier of type ``kind``."""
        if kind == "email":
            email = self.email(raw)
            return f"CASE WHEN {self._valid_email(email)} THEN {email} END"
        if kind == "phone":
            return self.phone(raw)
        if kind in ("social_handle", "handle"):
            return self.handle(raw)
        if kind in ("device_id", "cookie_id"):
            return f"nullif(lower(trim({raw})), '')"
        return f"nullif(upper({_strip(raw, _BLANKS + '-.')}), '')"

    @staticmethod
    def email_value(raw: str) -> str | bool | None:
        """:meth:`identifier` of one e-mail in Python, for an ASCII value (the service's
        look-ups): the same result as the SQL (a test holds them together); ``False`` for a
        value that only the SQL may judge (non-ASCII: its lower case and blanks)."""
        if not raw.isascii():
            return False
        email = raw.translate(_NO_BLANKS).lower()
        return email if _EMAIL.fullmatch(email) else None

    @staticmethod
    def _valid_email(email: str) -> str:
        return f"regexp_full_match({email}, '[^@\\s]+@[^@\\s]+\\.[^@\\s]{{2,}}')"

    # -- typed kinds --------------------------------------------------------------------
    def _number_text(self, raw: str) -> str:
        # translate() deletes the characters it has no replacement for: cheaper than regexps.
        cleaned = f"translate({raw}, ' \t\u00a0\u202f€$£%', '')"
        if self.source.decimal == ",":
            return f"replace(translate({raw}, ' \t\u00a0\u202f€$£%.', ''), ',', '.')"
        # With '.' as decimal separator a comma is only a thousands separator (1,234.50);
        # '12,5' is refused rather than read as 125.
        return (
            f"CASE WHEN NOT contains({raw}, ',') THEN {cleaned} "
            f"WHEN regexp_full_match({cleaned}, '[-+]?[0-9]{{1,3}}(,[0-9]{{3}})+(\\.[0-9]*)?') "
            f"THEN replace({cleaned}, ',', '') END"
        )

    def _numeric(self, raw: str, sql_type: str) -> str:
        # Fast path for plain numbers; the cleaning only for the values that need it. With a
        # decimal comma, a value holding '.' never takes the fast path (1.234 is 1234).
        fast = f"try_cast({raw} AS {sql_type})"
        if self.source.decimal == ",":
            fast = f"CASE WHEN NOT contains({raw}, '.') THEN {fast} END"
        return f"coalesce({fast}, try_cast({self._number_text(raw)} AS {sql_type}))"

    def money(self, raw: str) -> str:
        return self._numeric(raw, "DECIMAL(18,2)")

    def number(self, raw: str) -> str:
        return self._numeric(raw, "DOUBLE")

    def boolean(self, raw: str) -> str:
        low = f"lower(trim({raw}))"
        trues = ", ".join(q(v) for v in _TRUE)
        falses = ", ".join(q(v) for v in _FALSE)
        return f"CASE WHEN {low} IN ({trues}) THEN true WHEN {low} IN ({falses}) THEN false END"

    def date(self, raw: str) -> str:
        parts = [f"try_strptime(trim({raw}), {q(fmt)})::DATE" for fmt in self.source.date_formats()]
        parts.append(f"try_cast(trim({raw}) AS DATE)")
        return f"coalesce({', '.join(parts)})"

    def timestamp(self, raw: str) -> str:
        """UTC timestamp; times without offset are in the source's time zone."""
        tz = q(self.timezone)
        parts = []
        for fmt in [*self.source.datetime_formats(), *self.source.date_formats()]:
            parsed = f"try_strptime(trim({raw}), {q(fmt)})"
            if "%z" in fmt or "%Z" in fmt:
                parts.append(f"timezone('UTC', {parsed})")
            else:
                parts.append(f"timezone('UTC', timezone({tz}, {parsed}::TIMESTAMP))")
        # ISO 8601 with or without offset; the session time zone is the source's.
        parts.append(f"timezone('UTC', try_cast(trim({raw}) AS TIMESTAMPTZ))")
        return f"coalesce({', '.join(parts)})"

    def country_code(self, raw: str) -> str:
        return f"_onetoone_country(lower(trim({raw})))"

    def language_code(self, raw: str) -> str:
        return f"_onetoone_language(lower(trim({raw})))"

    # -- dispatch -----------------------------------------------------------------------
    def field(self, raw: str, kind: str, field: str) -> Expr:
        simple = {
            "id": self.text(raw), "text": self.text(raw), "name": self.name(raw),
            "code": self.code(raw, field), "handle": self.handle(raw),
        }
        if kind in simple:
            return Expr(simple[kind], False, "")
        typed = {
            "email": (self.identifier(raw, "email"), "an e-mail address"),
            "phone": (self.phone(raw), f"a phone number (country {self.country})"),
            "country": (self.country_code(raw), "a country"),
            "language": (self.language_code(raw), "a language"),
            "date": (self.date(raw), "a date" + self._formats_hint(dates=True)),
            "timestamp": (self.timestamp(raw), "a date and time" + self._formats_hint()),
            "money": (self.money(raw), "an amount" + self._decimal_hint()),
            "number": (self.number(raw), "a number" + self._decimal_hint()),
            "boolean": (self.boolean(raw), "yes/no (true/false, 1/0, oui/non)"),
        }
        value, expected = typed[kind]
        return Expr(value, True, expected)

    def _formats_hint(self, dates: bool = False) -> str:
        formats = self.source.date_formats() if dates else [
            *self.source.datetime_formats(), *self.source.date_formats()]
        shown = ", ".join([*formats, "ISO 8601"])
        return f" (expected {shown})"

    def _decimal_hint(self) -> str:
        return f" (decimal separator '{self.source.decimal}')"


def register_lookups(con: object) -> None:
    """Create the small lookup macros that normalization uses (per connection)."""
    import phonenumbers

    countries = dict(COUNTRY_NAMES)
    countries.update({code.lower(): code for code in phonenumbers.SUPPORTED_REGIONS})
    country_map = ", ".join(f"{q(k)}: {q(v)}" for k, v in sorted(countries.items()))
    language_map = ", ".join(f"{q(k)}: {q(v)}" for k, v in sorted(LANGUAGE_NAMES.items()))
    execute = con.execute  # type: ignore[attr-defined]
    execute(
        f"CREATE OR REPLACE TEMP MACRO _onetoone_country(v) AS "
        f"MAP {{{country_map}}}[v]"
    )
    execute(
        f"CREATE OR REPLACE TEMP MACRO _onetoone_language(v) AS "
        f"coalesce(MAP {{{language_map}}}[v], "
        f"CASE WHEN regexp_full_match(v, '[a-z]{{2}}') THEN v "
        f"WHEN regexp_full_match(v, '[a-z]{{2}}[-_][a-z]{{2}}') THEN left(v, 2) END)"
    )
