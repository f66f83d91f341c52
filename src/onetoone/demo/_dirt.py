"""Realistic dirt for the demo exports, with every defect logged for the truth files.

Two kinds of dirt:

* **variants** a loader must accept and a matcher must see through (typos, nicknames, dropped
  accents, swapped first/last names, case, phone formats, missing fields, duplicates within a
  silo); their rates per silo are in :data:`DIRT_RATES`;
* **malformed rows** a loader must reject into quarantine (unparseable date or number, missing or
  extra column, unclosed quote, broken JSON); a handful per file, counts in :data:`MALFORMED`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from onetoone.demo import _names as names
from onetoone.demo._format import cat, int_str, lookup, where
from onetoone.demo._population import FIRST_NAMES, LAST_NAMES, People

# Documented probability of each variant per silo (per record, among records where it applies).
DIRT_RATES: dict[str, dict[str, float]] = {
    "crm": {
        "duplicate": 0.03, "name_typo": 0.02, "nickname": 0.03, "accents_dropped": 0.08,
        "swapped_names": 0.015, "last_name_upper": 0.30, "email_missing": 0.12,
        "email_typo": 0.02, "email_case": 0.03, "phone_missing": 0.20,
        "birth_date_missing": 0.15, "address_abbreviated": 0.10, "postcode_leading_zero": 0.02,
    },
    "web_accounts": {
        "duplicate": 0.02, "name_typo": 0.01, "nickname": 0.08, "accents_dropped": 0.10,
        "swapped_names": 0.02, "name_lower": 0.15, "email_typo": 0.015, "email_case": 0.03,
        "phone_missing": 0.45,
        # delivery address, among the accounts that ordered (those that did not have none)
        "address_work": 0.025, "address_relative": 0.015, "address_abbreviated": 0.10,
        "address_typo": 0.02, "address_accents_dropped": 0.10, "address_lower": 0.20,
        "city_case": 0.30, "postcode_leading_zero": 0.02,
    },
    "loyalty": {
        "duplicate": 0.015, "name_typo": 0.02, "birth_date_missing": 0.10,
        "phone_missing": 0.10, "customer_number_missing": 0.20,
    },
    "service": {"email_typo": 0.03, "email_other": 0.05, "no_identifier": 0.03},
    "store_tickets": {"card_forgotten": 0.10},
}

# Malformed rows per file: kind -> count (capped at a tenth of the rows of small files).
MALFORMED: dict[str, dict[str, int]] = {
    "crm": {"bad_date": 3, "missing_column": 1, "extra_column": 1, "unclosed_quote": 1},
    "web_accounts": {"broken_json": 2, "bad_date": 1},
    "web_orders": {"broken_json": 1, "bad_number": 2, "bad_date": 1},
    "store_tickets": {"bad_number": 2, "bad_date": 1, "missing_column": 1},
    "loyalty": {"bad_date": 2, "missing_column": 1},
    "service": {"bad_date": 2, "missing_column": 1},
    "email_events": {"bad_date": 2, "missing_column": 1},
    "sms_events": {"bad_date": 1, "missing_column": 1},
    "consents": {"bad_boolean": 1, "bad_date": 1},
    "social": {"broken_json": 1, "bad_date": 1},
    "nps": {"bad_number": 2, "missing_column": 1},
    "products": {"bad_number": 2, "missing_column": 1},
}


@dataclass
class DirtLog:
    """Defects of one file, by record ordinal (0-based)."""

    rows: list[np.ndarray] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    malformed: list[bool] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def add(self, mask_or_rows: np.ndarray, kind: str, *, malformed: bool = False,
            detail: str = "") -> None:
        a = np.asarray(mask_or_rows)
        rows = np.flatnonzero(a) if a.dtype == bool else a.astype(np.int64)
        if len(rows):
            self.rows.append(rows)
            self.kinds.append(kind)
            self.malformed.append(malformed)
            self.details.append(detail)

    def merge(self, other: DirtLog, keep: np.ndarray) -> None:
        """Add the defects of ``other`` on the rows where ``keep`` is true."""
        for rows, kind, bad, detail in zip(other.rows, other.kinds, other.malformed,
                                           other.details, strict=True):
            self.add(rows[keep[rows]], kind, malformed=bad, detail=detail)

    def malformed_rows(self) -> np.ndarray:
        parts = [r for r, m in zip(self.rows, self.malformed, strict=True) if m]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def typo(s: str, variant: int) -> str:
    """A plausible keyboard slip: a dropped, swapped or doubled letter."""
    if len(s) < 4:
        return s + s[-1]
    i = 1 + (variant * 7 + len(s)) % (len(s) - 2)
    if variant == 0:
        return s[:i] + s[i + 1:]
    if variant == 1:
        return s[:i] + s[i + 1] + s[i] + s[i + 2:]
    return s[:i] + s[i] + s[i:]


def _table(values: Sequence[str], fn: Callable[[str], str]) -> list[str]:
    return [fn(v) for v in values]


# First-name tables: plain, nickname (or plain), typo variants; last-name: plain, typos.
_FIRST = list(FIRST_NAMES)
_NICK = _table(FIRST_NAMES, lambda s: names.NICKNAMES.get(s, s))
_HAS_NICK = np.array([s in names.NICKNAMES for s in FIRST_NAMES])
_FIRST_TYPO = [_table(FIRST_NAMES, lambda s, v=v: typo(s, v)) for v in range(3)]  # type: ignore[misc]
_LAST = list(LAST_NAMES)
_LAST_TYPO = [_table(LAST_NAMES, lambda s, v=v: typo(s, v)) for v in range(3)]  # type: ignore[misc]
_FIRST_ALL = pa.array(_FIRST + _NICK + _FIRST_TYPO[0] + _FIRST_TYPO[1] + _FIRST_TYPO[2])
_LAST_ALL = pa.array(_LAST + _LAST_TYPO[0] + _LAST_TYPO[1] + _LAST_TYPO[2])


def no_accents(values: pa.Array) -> pa.Array:
    nfd = pc.utf8_normalize(values, form="NFD")
    return pc.utf8_normalize(pc.replace_substring_regex(nfd, r"\p{Mn}", ""), form="NFC")


def render_names(rng: np.random.Generator, people: People, person: np.ndarray,
                 rates: dict[str, float], log: DirtLog, *, force_typo: np.ndarray | None = None,
                 system_upper: bool = False) -> tuple[pa.Array, pa.Array]:
    """First and last names of ``person`` rows as a silo writes them, with logged variants."""
    k = len(person)
    fi, li = people.first[person], people.last[person]
    nf, nl = len(_FIRST), len(_LAST)
    typo_mask = rng.random(k) < rates.get("name_typo", 0.0)
    if force_typo is not None:
        typo_mask |= force_typo
    on_first = rng.random(k) < 0.4
    tv = rng.integers(0, 3, k)
    nick = (rng.random(k) < rates.get("nickname", 0.0)) & _HAS_NICK[fi]
    f_code = np.where(nick, 1, 0)
    f_code = np.where(typo_mask & on_first, 2 + tv, f_code)
    l_code = np.where(typo_mask & ~on_first, 1 + tv, 0)
    first = lookup(_FIRST_ALL, f_code * nf + fi)
    last = lookup(_LAST_ALL, l_code * nl + li)
    log.add(nick & ~(typo_mask & on_first), "nickname")
    log.add(typo_mask, "name_typo")
    acc = rng.random(k) < rates.get("accents_dropped", 0.0)
    if system_upper:
        first, last = pc.utf8_upper(no_accents(first)), pc.utf8_upper(no_accents(last))
    else:
        if acc.any():
            m = pa.array(acc)
            first = pc.if_else(m, no_accents(first), first)
            last = pc.if_else(m, no_accents(last), last)
            log.add(acc, "accents_dropped")
        upper = rng.random(k) < rates.get("last_name_upper", 0.0)
        if upper.any():
            last = pc.if_else(pa.array(upper), pc.utf8_upper(last), last)
            log.add(upper, "last_name_upper")
        lower = rng.random(k) < rates.get("name_lower", 0.0)
        if lower.any():
            m = pa.array(lower)
            first = pc.if_else(m, pc.utf8_lower(first), first)
            last = pc.if_else(m, pc.utf8_lower(last), last)
            log.add(lower, "name_lower")
    swap = rng.random(k) < rates.get("swapped_names", 0.0)
    if swap.any():
        m = pa.array(swap)
        first, last = pc.if_else(m, last, first), pc.if_else(m, first, last)
        log.add(swap, "swapped_names")
    return first, last


def email_typo(people: People, person: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """A mistyped e-mail: a misspelt domain, or a dropped dot / doubled letter."""
    local = people.email_local.take(pa.array(person))
    domain = people.email_domain.take(pa.array(person))
    didx = people.email_domain_idx[person]
    typo_dom = lookup(list(names.MAIL_DOMAIN_TYPOS), didx)
    use_dom = (didx >= 0) & (rng.random(len(person)) < 0.6)
    has_dot = pc.match_substring(local, ".").to_numpy(zero_copy_only=False)
    local_typo = pc.if_else(pa.array(has_dot), pc.replace_substring(local, ".", "",
                                                                     max_replacements=1),
                            pc.replace_substring_regex(local, "(.)$", r"\1\1"))
    return pc.if_else(pa.array(use_dom), cat(local, "@", typo_dom),
                      cat(local_typo, "@", domain))


def render_emails(rng: np.random.Generator, people: People, person: np.ndarray,
                  rates: dict[str, float], log: DirtLog) -> tuple[pa.Array, np.ndarray]:
    """E-mails as written in a silo; returns (values, deliverable)."""
    k = len(person)
    email = people.email.take(pa.array(person))
    typo_m = rng.random(k) < rates.get("email_typo", 0.0)
    if typo_m.any():
        email = pc.if_else(pa.array(typo_m), email_typo(people, person, rng), email)
        log.add(typo_m, "email_typo")
    case = rng.random(k) < rates.get("email_case", 0.0)
    if case.any():
        capital = cat(pc.utf8_upper(pc.utf8_slice_codeunits(email, 0, 1)),
                      pc.utf8_slice_codeunits(email, 1))
        email = pc.if_else(pa.array(case), capital, email)
        log.add(case, "email_case")
    missing = rng.random(k) < rates.get("email_missing", 0.0)
    if missing.any():
        email = pc.if_else(pa.array(missing), pa.nulls(k, pa.string()), email)
        log.add(missing, "email_missing")
    return email, ~typo_m & ~missing


PHONE_STYLES = ("spaced", "compact", "intl_spaced", "dotted", "intl", "msisdn", "intl00")


def phone_str(number: np.ndarray, style: np.ndarray) -> pa.Array:
    """French phone numbers (9-digit national numbers) in the style codes of PHONE_STYLES."""
    d = int_str(number, 9)
    head = pc.utf8_slice_codeunits(d, 0, 1)
    pairs = [pc.utf8_slice_codeunits(d, i, i + 2) for i in (1, 3, 5, 7)]
    out = cat("0", head, " ", pairs[0], " ", pairs[1], " ", pairs[2], " ", pairs[3])
    variants = [
        cat("0", d),
        cat("+33 ", head, " ", pairs[0], " ", pairs[1], " ", pairs[2], " ", pairs[3]),
        cat("0", head, ".", pairs[0], ".", pairs[1], ".", pairs[2], ".", pairs[3]),
        cat("+33", d), cat("33", d), cat("0033", d),
    ]
    for code, v in enumerate(variants, start=1):
        if (style == code).any():
            out = pc.if_else(pa.array(style == code), v, out)
    return out


def render_phones(rng: np.random.Generator, number: np.ndarray, style_p: Sequence[float],
                  missing_rate: float, log: DirtLog) -> pa.Array:
    k = len(number)
    style = rng.choice(len(style_p), size=k, p=np.asarray(style_p) / np.sum(style_p))
    out = phone_str(number, style)
    missing = (rng.random(k) < missing_rate) | (number <= 0)
    log.add(missing, "phone_missing")
    return where(missing, pa.nulls(k, pa.string()), out)


# --- malformed rows -------------------------------------------------------------------------

BAD_DATES = {
    "dmy": ["31/02/1980", "30/02/1975", "00/00/0000", "32/13/1990"],
    "dmy_hm": ["31/04/2024 10:00", "30/02/2024 12:30", "00/00/0000 00:00"],
    "dmy_hms": ["00/00/0000 00:00:00", "31/06/2023 09:15:00"],
    "ymd": ["1985-02-30", "1979-13-01", "0000-00-00"],
    "iso": ["2024-02-30T10:00:00+01:00", "2023-13-01T09:00:00+01:00", "not a date"],
    "isoz": ["0000-00-00T00:00:00Z", "2024-02-30T10:00:00Z"],
    "ymd_hm": ["2024-13-01 10:00", "2023-02-29 14:00"],
    "ymd_hms": ["0000-00-00 00:00:00", "2024-04-31 18:00:00"],
}
BAD_NUMBERS = ["#VALEUR!", "12,5O", "NC", "—", "env. 30"]


def pick_rows(rng: np.random.Generator, n_rows: int, count: int, exclude: set[int]) -> list[int]:
    taken = np.fromiter(exclude, dtype=np.int64, count=len(exclude))
    free = np.ones(n_rows, dtype=bool)  # the rows setdiff1d would give, without its sort
    free[taken[(taken >= 0) & (taken < n_rows)]] = False
    avail = np.flatnonzero(free)
    count = min(count, len(avail))
    return sorted(int(x) for x in rng.choice(avail, size=count, replace=False)) if count else []


def malformed_count(source: str, kind: str, n_rows: int) -> int:
    return min(MALFORMED[source].get(kind, 0), max(0, n_rows // 10))


def break_json(line: str) -> str:
    """Truncate a JSON line in the middle (an interrupted export)."""
    body = line.rstrip("\n")
    return body[: max(3, len(body) // 2)] + "\n"

