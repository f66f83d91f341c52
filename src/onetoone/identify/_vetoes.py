"""The vetoes and their guards: what keeps a probable pair of relatives or namesakes from
linking. With ``probabilistic_vetoes`` a pair never links two records whose birth dates are
both known and differ by more than one typo, or whose first names are both known and clearly
different (not a typo, nickname or swap): the households and namesakes that share an address,
a surname and a city are the over-merges a model alone makes. A veto is lifted when a personal
``compare`` key (a social security or customer number, not a street number) agrees up to one
typo; birth dates up to a year apart are one person's when the pair's e-mail or phone agrees,
and less than fifteen years apart when the pair shares a home and a full name (a parent and
the child named after her or him are further apart). At one home, a veto is also lifted when
the person fields (the surname alone counting for nothing) and the base's measured odds that
two records at one home are one person (:func:`home_odds`) reach ``match_threshold``
together. This module holds the evidence the vetoes read (person-only weight and probability,
personal, contact and home agreement) and their SQL.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from onetoone.identify._comparisons import extra_column
from onetoone.identify._components import BIRTH_DAYS
from onetoone.identify._edges import (
    births_compatible,
    feminine,
    names_compatible,
    names_differ,
)
from onetoone.identify._splink_compat import prior
from onetoone.identify.settings import IdentifySettings
from onetoone.store import Store

#: Comparisons whose agreement a household shares: they do not tell two relatives apart.
HOUSEHOLD = ("postcode", "city", "address", "email", "phone")


def relatives_levels(labels: dict[str, dict[int, str]]) -> dict[str, set[int]]:
    """Name levels that relatives agree at as often as one person's records: the surname
    alone (first names that differ)."""
    levels = {"first_name_surname": {v for v, text in labels.get("first_name_surname", {})
                                     .items() if text == "Exact match on surname"}}
    if "surname" in labels:
        levels["surname"] = set(labels["surname"])
    return levels


def gamma_level(pairs: pd.DataFrame, comparison: str) -> np.ndarray:
    """Each pair's level of ``comparison`` (Splink's ``gamma_<comparison>``); -1, the null
    level, where it is unknown or the comparison is absent."""
    if f"gamma_{comparison}" not in pairs.columns:
        return np.full(len(pairs), -1.0)
    return pd.to_numeric(pairs[f"gamma_{comparison}"], errors="coerce").fillna(-1) \
        .to_numpy(float)


def person_weight(pairs: pd.DataFrame,
                  shared: dict[str, set[int]] | None = None) -> np.ndarray:
    """Bits of evidence from the comparisons a household does not share (names, birth date,
    extra identifiers), without the prior; a level in ``shared`` (comparison → levels) counts
    at most zero."""
    weight = np.zeros(len(pairs))
    by_name: dict[str, np.ndarray] = {}
    for column in pairs.columns:  # mw_<comparison> and mw_tf_adj_<comparison>, in bits
        if not column.startswith("mw_"):
            continue
        name = column.removeprefix("mw_tf_adj_").removeprefix("mw_")
        if name in HOUSEHOLD:
            continue
        value = pd.to_numeric(pairs[column], errors="coerce").fillna(0.0).to_numpy(float)
        by_name[name] = by_name.get(name, np.zeros(len(pairs))) + value
    for name, value in by_name.items():
        levels = (shared or {}).get(name)
        if levels and f"gamma_{name}" in pairs.columns:
            value = np.where(np.isin(gamma_level(pairs, name), list(levels)),
                             np.minimum(value, 0.0), value)
        weight += value
    return weight


def person_probability(linker: Any, pairs: pd.DataFrame) -> np.ndarray:
    """Match probability from the comparisons a household does not share (names, birth
    date, extra identifiers), i.e. without the address and contact fields."""
    lam = float(prior(linker))
    weight = np.log2(lam / (1 - lam)) + person_weight(pairs)
    return 1 / (1 + np.power(2.0, -weight))


def personal_keys(store: Store, settings: IdentifySettings) -> list[str]:
    """The ``compare`` keys that belong to one person: identifier types outside
    ``household_types`` (a social security number, a customer number) and types in
    ``unique_per_person``. Attribute keys (a street number) and household types are shared."""
    if not settings.compare:
        return []
    types = {str(r[0]) for r in store.fetchall(
        "SELECT DISTINCT type FROM identifiers WHERE type IN (SELECT unnest(?::VARCHAR[]))",
        [settings.compare])}
    return [k for k in settings.compare if k in settings.unique_per_person or
            (k in types and k not in settings.household_types)]


#: Shortest personal value whose one typo still names one person (``12`` / ``13`` does not).
PERSONAL_MIN_LENGTH = 5


def personal_agreement(pairs: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """Pairs whose values of a personal ``compare`` key are equal or one typo apart (its
    comparison's exact or Damerau-Levenshtein <= 1 level), both at least
    :data:`PERSONAL_MIN_LENGTH` long. Two relatives' numbers are that close by chance about
    once in a hundred thousand pairs (a seven-digit number has 69 neighbours one edit away)."""
    close = np.zeros(len(pairs), dtype=bool)
    for key in keys:
        column = extra_column(key)
        long_enough = np.ones(len(pairs), dtype=bool)
        for side in ("_l", "_r"):
            if column + side in pairs.columns:
                long_enough &= pairs[column + side].astype("string").str.len().fillna(0) \
                    .to_numpy() >= PERSONAL_MIN_LENGTH
        close |= (gamma_level(pairs, column) >= 1) & long_enough
    return close


def contact_agreement(pairs: pd.DataFrame) -> np.ndarray:
    """Pairs whose e-mail or phone agrees, exactly or at a typo level (any level but "else")."""
    return (gamma_level(pairs, "email") > 0) | (gamma_level(pairs, "phone") > 0)


def home_agreement(pairs: pd.DataFrame) -> np.ndarray:
    """Pairs at one home: the address equal or Jaro-Winkler >= 0.9 apart (its two top
    levels) and the postcode or the city agreeing (exactly or up to a typo)."""
    return (gamma_level(pairs, "address") >= 2) & ((gamma_level(pairs, "postcode") > 0) |
                                                   (gamma_level(pairs, "city") > 0))


#: Fewest years between a parent and a child: births to mothers under 15 were about 0.05 %
#: of US births in 2019 (1,782 of 3,747,540; Martin et al., National Vital Statistics
#: Reports 70(2), 2021).
PARENT_YEARS = 15


def home_odds(store: Store, records: str = "_rec") -> float:
    """Odds that two records at one home are one person rather than two, from the scored
    pairs (``_scored``, with ``home``; ``records`` holds their first names and birth dates).

    The vetoes stand for a third kind of pair besides matches and strangers: relatives, who
    agree on the home like one person's records and on the person fields like strangers.
    How many there are is measured: among pairs at one home whose first names and birth dates
    are all known, relatives differ on both (a clearly different first name and birth dates
    more than a year apart; twins and namesakes aside), one person's records rarely do (two
    fields mistyped at once). Odds = (known pairs - pairs differing on both) / (pairs
    differing on both + 1), a Laplace-smoothed count (FEBRL1 and FEBRL4: 35 and 183, few
    relatives; the demo company's households: 0.16). Relatives whose birth dates are unknown
    are not seen.
    """
    known, both = store.execute(f"""
        SELECT count(*), count(*) FILTER (WHERE jaro_winkler_similarity(a.fn, b.fn) < 0.8
                                          AND NOT {births_compatible('a.bd', 'b.bd',
                                                                     BIRTH_DAYS)})
        FROM _scored s
        JOIN {records} a ON a.record_key = s.unique_id_l
        JOIN {records} b ON b.record_key = s.unique_id_r
        WHERE s.home AND a.fn IS NOT NULL AND b.fn IS NOT NULL
          AND a.bd IS NOT NULL AND b.bd IS NOT NULL""").fetchall()[0]
    return (int(known) - int(both)) / (int(both) + 1)


def home_lift_sql(settings: IdentifySettings, odds: float, left: str = "a",
                  right: str = "b", scored: str = "s") -> str:
    """SQL true when a pair at one home is one person on its person fields and the base's
    :func:`home_odds` (prior odds for two records at one home; the surname alone counts for
    nothing there, relatives share it): posterior at ``match_threshold`` or more. First
    names that are one another's feminine form (Jean / Jeanne) are a couple, not a typo."""
    if not settings.probabilistic_vetoes or odds <= 0:
        return "false"
    need = float(np.log2(settings.match_threshold / (1 - settings.match_threshold)))
    return (f"({scored}.home AND {scored}.home_weight + {float(np.log2(odds))!r} >= "
            f"{need!r} AND NOT coalesce({feminine(f'{left}.fn', f'{right}.fn')}, false))")


def veto_sql(settings: IdentifySettings, left: str = "a", right: str = "b",
             contact: str = "false", home: str = "false") -> str:
    """SQL true when a probabilistic pair must not link (see the module docstring).

    Where ``contact`` (SQL) holds, the pair shares an e-mail or phone up to a typo, and birth
    dates up to a year apart may be one person's (:data:`._components.BIRTH_DAYS`); else only
    a typo or a day/month swap: namesakes of one city born months apart are two people.
    Where ``home`` holds (one address, :func:`home_agreement`) and the first names and
    surnames agree up to a typo, birth dates less than :data:`PARENT_YEARS` apart are one
    person's: relatives who share a first name are a parent and the child named after her or
    him, never that close in age; siblings are not given one first name.
    First names are not held to differ when one record's first name is the other's surname,
    the surnames differing (James Coleman / Howie James: a name in the wrong field), and both
    birth dates are known and agree up to a typo: the one other reading, a relative whose
    record has first name and surname swapped, would be a twin.
    """
    if not settings.probabilistic_vetoes:
        return "false"
    fa, fb, la, lb = (f"{left}.fn", f"{right}.fn", f"{left}.ln", f"{right}.ln")
    ba, bb = f"{left}.bd", f"{right}.bd"
    namesakes = (f"coalesce({names_compatible(fa, fb, la, lb)} AND "
                 f"damerau_levenshtein({la}, {lb}) <= 1, false)")
    births = (f"CASE WHEN {contact} THEN {births_compatible(ba, bb, BIRTH_DAYS)} "
              f"WHEN {home} AND {namesakes} THEN "
              f"{births_compatible(ba, bb, round(PARENT_YEARS * 365.25) - 1)} "
              f"ELSE {births_compatible(ba, bb)} END")
    moved = (f"coalesce((({fa} = {lb} AND length({fa}) >= 3) OR ({fb} = {la} AND "
             f"length({fb}) >= 3)) AND {la} <> {lb} AND {ba} IS NOT NULL AND {bb} IS NOT NULL "
             f"AND {births_compatible(ba, bb)}, false)")
    return f"(NOT ({births}) OR ({names_differ(fa, fb, la, lb)} AND NOT {moved}))"
