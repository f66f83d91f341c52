"""Probabilistic matching of profile records with Splink (Fellegi & Sunter 1969).

Each compared field (names, birth date, postcode, city, address, e-mail, phone, and the
identifier types or attribute keys listed in ``[identify] compare``) agrees at some level; the
model weighs each level by its m probability (how often true matches agree at that level)
against its u probability (how often random pairs do). u is estimated by random sampling, m by
expectation-maximisation without labels, and rare values weigh more than common ones
(term-frequency adjustments). Splink is used rather than written here: it is the well-kept
implementation, on DuckDB as on Spark.

Training is made robust: a training step that fails (expectation-maximisation that
degenerates on small or odd data, a level never observed) is skipped with a note and the
model keeps Splink's starting values for what it could not estimate; m and u probabilities are
kept inside (1e-6, 1 - 1e-6) so that one empty level cannot veto or force every pair, and a
postcode, city or address that disagrees keeps an m of at least ``address_change_share``
(people move; on data where nobody does, EM would make any difference a veto).

Pairs already joined by a strong identifier are not reported; pairs at or above
``match_threshold`` link, those between ``review_threshold`` and it wait for a person. With
``probabilistic_vetoes`` a pair never links two records whose birth dates are both known and
differ by more than one typo, or whose first names are both known and clearly different (not a
typo, nickname or swap): the households and namesakes that share an address, a surname and a
city are the over-merges a model alone makes. A veto is lifted when a personal ``compare`` key
(a social security or customer number, not a street number) agrees up to one typo; birth
dates up to a year apart are one person's when the pair's e-mail or phone agrees, and less
than fifteen years apart when the pair shares a home and a full name (a parent and the child
named after her or him are further apart). At one home, a veto is also lifted when the person
fields (the surname alone counting for nothing) and the base's measured odds that two records
at one home are one person (:func:`home_odds`) reach ``match_threshold`` together.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from onetoone.identify._components import BIRTH_DAYS, components
from onetoone.identify._edges import (
    births_compatible,
    feminine,
    names_compatible,
    names_differ,
    norm_name,
)
from onetoone.identify.settings import IdentifySettings
from onetoone.ingest._normalize import ident, q
from onetoone.store import ENGINE_VERSION, Store, scratch

#: Canonical field → name in the Splink input (the data model's, except ``surname``).
FIELDS = {"first_name": "first_name", "last_name": "surname", "birth_date": "birth_date",
          "postcode": "postcode", "city": "city", "address": "address", "email": "email",
          "phone": "phone"}
MIN_RECORDS = 20
_MODEL_KEY = "identify_model"
#: The profile records as matched, with their blocking keys before the block-size cut
#: (:func:`raw_block_keys`), kept between runs: an incremental run reads, normalizes and keys
#: only its new records, and takes the candidates and term frequencies from here. Its
#: columns follow the compared fields, so it is made by the run, not declared in the schema.
INPUT_TABLE = "identity_match_input"
_FLOOR = 1e-6


@dataclass
class Outcome:
    """What the probabilistic step did."""

    links: int = 0
    notes: list[str] = field(default_factory=list)


def extra_column(key: str) -> str:
    """Splink column of an extra compared identifier type or attribute key."""
    return "x_" + re.sub(r"[^a-z0-9_]", "_", key.lower())


def splink_settings(columns: list[str], rules: list[Any]) -> Any:
    """The Splink model over the fields present: comparisons and the blocking ``rules``."""
    import splink.comparison_library as cl
    from splink import SettingsCreator

    comparisons: list[Any] = []
    if "first_name" in columns and "surname" in columns:
        comparisons.append(cl.ForenameSurnameComparison(
            "first_name", "surname", jaro_winkler_thresholds=[0.92, 0.8],
            forename_surname_concat_col_name="name_concat"))
    else:
        for name in ("first_name", "surname"):
            if name in columns:
                comparisons.append(cl.NameComparison(name).configure(
                    term_frequency_adjustments=True))
    if "birth_date" in columns:
        comparisons.append(birth_date_comparison())
    if "postcode" in columns:
        comparisons.append(cl.LevenshteinAtThresholds("postcode", [1]).configure(
            term_frequency_adjustments=True))
    if "city" in columns:
        comparisons.append(cl.JaroWinklerAtThresholds("city", [0.9]).configure(
            term_frequency_adjustments=True))
    if "address" in columns:
        comparisons.append(cl.JaroWinklerAtThresholds("address", [0.9, 0.7]))
    if "email" in columns:
        comparisons.append(email_comparison())
    if "phone" in columns:
        comparisons.append(one_typo_comparison("phone"))
    for column in columns:
        if column.startswith("x_"):
            comparisons.append(cl.DamerauLevenshteinAtThresholds(column, [1]).configure(
                term_frequency_adjustments=True))
    return SettingsCreator(
        link_type="dedupe_only", comparisons=comparisons,
        blocking_rules_to_generate_predictions=rules,
        retain_intermediate_calculation_columns=True,
    )


def gated(condition: str, test: str) -> str:
    """SQL of ``condition AND test`` that evaluates ``test`` only where ``condition`` holds:
    DuckDB evaluates a CASE branch on its own rows, but both sides of an AND on every row,
    and most candidate pairs disagree (an edit distance on each is most of a run's cost)."""
    return f"(CASE WHEN {condition} THEN {test} ELSE false END)"


def within_one_edit(left: str, right: str) -> str:
    """SQL: ``damerau_levenshtein(left, right) <= 1``, computed only for the pairs that can
    be: lengths at most one apart, and the first or the last ``h`` characters equal, ``h``
    being half the shorter length less one (one edit, or one transposition of neighbours,
    leaves at least one of the two halves intact)."""
    h = f"greatest((least(length({left}), length({right})) - 2) // 2, 0)"
    maybe = (f"abs(length({left}) - length({right})) <= 1 AND (left({left}, {h}) = "
             f"left({right}, {h}) OR right({left}, {h}) = right({right}, {h}))")
    return gated(maybe, f"damerau_levenshtein({left}, {right}) <= 1")


def one_typo_comparison(column: str) -> Any:
    """Equal, one typo apart (Damerau-Levenshtein <= 1), else: Splink's
    ``DamerauLevenshteinAtThresholds(column, [1])`` with the distance computed only where it
    can be 1 (:func:`within_one_edit`)."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    return cl.CustomComparison(output_column_name=column, comparison_levels=[
        cll.NullLevel(column),
        cll.ExactMatchLevel(column),
        cll.CustomLevel(within_one_edit(f"{column}_l", f"{column}_r"),
                        f"Damerau-Levenshtein distance of {column} <= 1"),
        cll.ElseLevel(),
    ])


def birth_date_comparison() -> Any:
    """Splink's ``DateOfBirthComparison`` levels (exact, one character apart, within a
    month, a year, ten years) on ``birth_day``, the day number of ``birth_date``, instead of
    parsing both strings once per level and pair: Splink's month is 30.4375 days, its year
    365.25, so whole days apart <= 30, 365 and 3652."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    apart = "abs(birth_day_l - birth_day_r)"
    return cl.CustomComparison(output_column_name="birth_date", comparison_levels=[
        cll.CustomLevel("birth_day_l IS NULL OR birth_day_r IS NULL",
                        "transformed birth_date is NULL").configure(is_null_level=True),
        cll.ExactMatchLevel("birth_date").configure(label_for_charts="Exact match on date "
                                                                     "of birth"),
        cll.CustomLevel("levenshtein(birth_date_l, birth_date_r) <= 1",
                        "Levenshtein distance <= 1"),
        cll.CustomLevel(f"{apart} <= 30", "Abs date difference <= 1 month"),
        cll.CustomLevel(f"{apart} <= 365", "Abs date difference <= 1 year"),
        cll.CustomLevel(f"{apart} <= 3652", "Abs date difference <= 10 year"),
        cll.ElseLevel(),
    ])


def email_comparison() -> Any:
    """E-mails: equal, a personal user name (with digits) at another domain, a typo, else.

    A user name made of the person's names (``marie.martin@``) is left out on purpose: it
    agrees whenever the names do, so weighing it again would count the names twice. The
    levels read each record's user name, user name without dots and domain
    (:func:`derived_columns_sql`), not the e-mail split again for every pair and level; the
    domains' edit distance is computed only where the user names agree (:func:`gated`).
    """
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    domain_typo = "damerau_levenshtein(email_domain_l, email_domain_r) <= 2"
    return cl.CustomComparison(output_column_name="email", comparison_levels=[
        cll.NullLevel("email"),
        cll.ExactMatchLevel("email"),
        cll.CustomLevel(gated("email_user_l = email_user_r", domain_typo),
                        "Same user name, domain one typo apart"),
        cll.CustomLevel(gated("email_bare_l = email_bare_r", domain_typo),
                        "Same user name but for dots"),
        cll.CustomLevel(gated("email_user_l = email_user_r",
                              "regexp_matches(email_user_l, '[0-9]')"),
                        "Same personal user name (with digits), other domain"),
        cll.ElseLevel(),
    ])


def _birth_day_sql(column: str) -> str:
    """SQL of the day number (since 1970-01-01) of an ISO birth date string; NULL if none."""
    return (f"date_diff('day', DATE '1970-01-01', "
            f"try_strptime({column}::VARCHAR, '%Y-%m-%d')::DATE)::BIGINT")


def derived_columns_sql(columns: list[str], present: list[str]) -> list[str]:
    """SQL (``expr AS name``) of the columns the comparisons of ``columns`` read besides
    them, computed once per record instead of once per pair and level: both names
    (``name_concat``, read as it is when ``present``), the birth date's day number
    (``birth_day``), an e-mail's user name, user name without dots and domain."""
    derived = []
    if "first_name" in columns and "surname" in columns:
        derived.append("name_concat" if "name_concat" in present else
                       "CASE WHEN first_name IS NOT NULL AND surname IS NOT NULL "
                       "THEN first_name || ' ' || surname END AS name_concat")
    if "birth_date" in columns:
        derived.append(f"{_birth_day_sql('birth_date')} AS birth_day")
    if "email" in columns:
        derived += ["split_part(email, '@', 1) AS email_user",
                    "replace(split_part(email, '@', 1), '.', '') AS email_bare",
                    "split_part(email, '@', 2) AS email_domain"]
    return derived


#: Candidate pairs agree on one of these keys: two fields (any two strong ones), a contact
#: value, or three fields where the two-field block is too large (common names at scale).
#: No first name + postcode: at 1 M demo people it made 4 % of the pairs and alone found 16
#: of 134,289 true pairs (first name + address, the names + postcode, birth dates find them).
BLOCKS: tuple[tuple[str, ...], ...] = (
    ("first_name", "surname"), ("surname", "birth_date"), ("first_name", "birth_date"),
    ("birth_date", "postcode"), ("surname", "postcode"), ("surname", "city"),
    ("birth_date", "city"), ("address", "postcode"), ("first_name", "address"), ("email",),
    ("phone",), ("first_name", "surname", "postcode"), ("first_name", "surname", "city"),
    ("first_name", "birth_date", "postcode"))
#: Records of the largest sample the model is trained on (training cost stays flat).
TRAIN_MAX_RECORDS = 15_000


def _key_specs(columns: list[str]) -> list[tuple[str, ...]]:
    """The fields of each blocking key of the compared ``columns``, in key order; the last,
    ``("first_name", "surname", "swapped")``, is both names sorted (a swap agrees on it)."""
    specs: list[tuple[str, ...]] = [b for b in BLOCKS if all(c in columns for c in b)]
    specs += [(c,) for c in columns if c.startswith("x_")]
    if "first_name" in columns and "surname" in columns:
        specs.append(("first_name", "surname", "swapped"))
    return specs


def block_key_sql(columns: list[str]) -> tuple[list[str], str, list[str]]:
    """The blocking key columns of the compared ``columns``: their names, the SQL that
    computes them (see :func:`raw_block_keys`) and the fields it reads."""
    specs = _key_specs(columns)
    exprs = ["least(first_name, surname) || '|' || greatest(first_name, surname)"
             if spec[-1] == "swapped" else " || '|' || ".join(f"{c}::VARCHAR" for c in spec)
             for spec in specs]
    names = [f"b_{i}" for i in range(len(exprs))]
    hashed = ", ".join(f"CASE WHEN ({e}) IS NOT NULL THEN (hash({e}) >> 1)::BIGINT END AS {n}"
                       for e, n in zip(exprs, names, strict=True))
    fields = [c for spec in specs for c in spec if c != "swapped"]
    return names, hashed, list(dict.fromkeys(fields))


def coarser_keys(columns: list[str]) -> dict[str, list[str]]:
    """Blocking key → the keys it refines: records that agree on it agree on each of those
    (first name + surname + postcode on first name + surname, on surname + postcode and on
    the sorted names). Where one of those blocks is kept, it already pairs the records."""
    specs = _key_specs(columns)
    coarser: dict[str, list[str]] = {}
    for i, spec in enumerate(specs):
        if spec[-1] == "swapped":
            continue
        below = [f"b_{j}" for j, other in enumerate(specs) if j != i and (
            {"first_name", "surname"} <= set(spec) if other[-1] == "swapped"
            else set(other) < set(spec))]
        if below:
            coarser[f"b_{i}"] = below
    return coarser


def raw_block_keys(frame: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Add one blocking key column (``b_<n>``) per rule; returns the frame and their names.

    A key is a 64-bit hash of the rule's fields (an integer join is cheaper than a string
    one; two blocks that collide only add candidate pairs, each scored on its own), NULL where
    a field is missing. Names swapped between first name and surname are one more key (both
    names, sorted). The keys are those of the whole block: :func:`cut_blocks` drops the large
    ones.
    """
    names, hashed, fields = block_key_sql(columns)
    if not names:
        return frame, names
    con = scratch()
    con.execute("SET enable_progress_bar = false")
    con.register("_frame", frame[fields].assign(_row=np.arange(len(frame), dtype=np.int64)))
    keys = con.execute(f"SELECT {hashed} FROM _frame ORDER BY _row").df()
    con.close()
    keys.index = frame.index
    return frame.drop(columns=[n for n in names if n in frame.columns]).assign(
        **{n: keys[n] for n in names}), names


def kept_keys_sql(names: list[str], table: str, max_block_size: int) -> str:
    """SQL of the key columns ``names`` of ``table``, each NULL where its block in
    ``table`` holds more than ``max_block_size`` records. Each key is looked up among the
    few large blocks, not among every small one (half the time at 2 M records)."""
    return ", ".join(f"CASE WHEN {n} NOT IN (SELECT {n} FROM {table} WHERE {n} IS NOT NULL "
                     f"GROUP BY {n} HAVING count(*) > {max_block_size}) THEN {n} END AS {n}"
                     for n in names)


def cut_blocks(frame: pd.DataFrame, names: list[str], max_block_size: int) -> pd.DataFrame:
    """The keys ``names`` set to NULL where their block holds more than ``max_block_size``
    records: such a block agrees only on common values (``marie`` + ``martin`` in one city)
    and would make the candidate pairs grow with the square of the base."""
    if not names:
        return frame
    con = scratch()
    con.execute("SET enable_progress_bar = false")
    con.register("_keys", frame[names].assign(_row=np.arange(len(frame), dtype=np.int64)))
    keys = con.execute(f"SELECT {kept_keys_sql(names, '_keys', max_block_size)} "
                       "FROM _keys ORDER BY _row").df()
    con.close()
    keys.index = frame.index
    return frame.assign(**{n: keys[n] for n in names})


def block_keys(frame: pd.DataFrame, columns: list[str],
               max_block_size: int) -> tuple[pd.DataFrame, list[str]]:
    """:func:`raw_block_keys`, then :func:`cut_blocks`."""
    frame, names = raw_block_keys(frame, columns)
    return cut_blocks(frame, names, max_block_size), names


def blocking_sql(keys: list[str], groups: bool = False, new: bool = False) -> list[str]:
    """One rule per key column; with ``groups``, never two records of one ``grp`` (already
    joined deterministically, so their pair would be dropped anyway); with ``new``, only
    pairs that hold a record flagged ``is_new`` (an incremental run)."""
    return [f"l.{k} = r.{k}{_pair_filter(groups, new)}" for k in keys]


def _pair_filter(groups: bool, new: bool) -> str:
    """SQL added to a candidate pair's join: two groups (``grp``), a new record in it."""
    return (" AND l.grp <> r.grp" if groups else "") + \
        (" AND (l.is_new OR r.is_new)" if new else "")


def _first_line(error: Exception) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0][:120]


def _guarded(step: Any, notes: list[str], what: str) -> None:
    try:
        step()
    except Exception as error:
        notes.append(f"Probabilistic model: {what} skipped ({_first_line(error)}).")


def floor_em_probabilities() -> None:
    """Make Splink's expectation-maximisation floor m and u at 1e-6 instead of failing.

    Splink 5 refuses an m of exactly 0, which a level that no pair of a training block
    reaches (or whose pairs all have a negligible match probability) produces; the session
    then fails as a whole. The floor is applied to the proportions Splink computes, before
    they are validated. Nothing is changed when Splink's internals move (the failure is then
    caught per session).
    """
    try:
        from splink.internals import expectation_maximisation as em
    except ImportError:  # pragma: no cover - another Splink layout
        return
    if getattr(em, "_onetoone_floor", False) or not hasattr(em, "populate_m_u_from_lookup"):
        return
    original = em.populate_m_u_from_lookup

    def floored(fixed: Any, level: Any, name: str, lookup: dict[str, Any]) -> None:
        for record in lookup.get(name, {}).values():
            for key in ("m_probability", "u_probability"):
                value = record.get(key)
                if isinstance(value, float | int) and value < _FLOOR:
                    record[key] = _FLOOR
        original(fixed, level, name, lookup)

    em.populate_m_u_from_lookup = floored  # type: ignore[assignment]
    setattr(em, "_onetoone_floor", True)  # noqa: B010


#: Comparisons whose values change when a person moves.
MOVING = ("postcode", "city", "address")


def keep_movers(comparison: Any, moved: float) -> None:
    """Give the "else" level of an address field an m of at least ``moved`` (the others
    scaled to keep the sum at one): one person's records disagree on the address when she
    moved between them, so disagreeing must not weigh like a veto (an m at the 1e-6 floor
    does, about -20 bits, when expectation-maximisation meets no movers)."""
    levels = [lv for lv in comparison.comparison_levels if not lv.is_null_level
              and lv.m_probability is not None and np.isfinite(lv.m_probability)]
    other = [lv for lv in levels if not lv._is_else_level]
    rest = sum(float(lv.m_probability) for lv in other)
    for level in levels:
        if level._is_else_level and level.m_probability < moved and rest > 0:
            scale = (1 - moved) / rest
            level.m_probability = moved
            for lv in other:
                lv.m_probability = float(lv.m_probability) * scale


def clamp_probabilities(linker: Any, u_unseen: float = _FLOOR, moved: float = 0.0) -> None:
    """Keep every m and u inside (1e-6, 1 - 1e-6); a level no random pair reached gets u =
    ``u_unseen`` (one in the number of pairs sampled), not "no evidence"; the "else" level
    of postcode, city and address keeps an m of at least ``moved`` (:func:`keep_movers`)."""
    for comparison in linker._settings_obj.comparisons:
        if moved > 0 and comparison.output_column_name in MOVING:
            keep_movers(comparison, moved)
        for level in comparison.comparison_levels:
            if level.is_null_level:
                continue
            # ``_u_probability``: the ``u_probability`` property falls back on Splink's generic
            # default u (1 in 100 or 1 in 16), which would make a level that random pairs never
            # reach (a user name equal but for dots) count *against* a match.
            raw = getattr(level, "_u_probability", level.u_probability)
            unseen = not isinstance(raw, float | int) or not np.isfinite(raw)
            if unseen and (level.m_probability is not None or not level._is_else_level):
                level.u_probability = u_unseen
            for attr in ("m_probability", "u_probability"):
                value = getattr(level, attr)
                if value is None or not np.isfinite(value):
                    continue
                clipped = min(max(float(value), _FLOOR), 1 - _FLOOR)
                if clipped != value:
                    setattr(level, attr, clipped)


def train(linker: Any, data: Any, columns: list[str], max_pairs: float, n_records: int,
          notes: list[str] | None = None, moved: float = 0.0) -> Any:
    """Estimate the model without labels: λ from a strict rule, u by sampling, m by EM.

    Returns the trained linker. A step that fails is skipped with a note (``notes``) and the
    model is restored to what it was before that step (a failed expectation-maximisation
    session would otherwise leave its comparisons out of the model).
    """
    from splink import Linker, block_on

    notes = notes if notes is not None else []
    floor_em_probabilities()
    strict = [c for c in ("first_name", "surname", "birth_date") if c in columns]
    if strict:
        _guarded(lambda: linker.training.estimate_probability_two_random_records_match(
            [block_on(*strict)], recall=0.7), notes, "prior estimate")
    settings = linker._settings_obj
    if not 0 < settings._probability_two_random_records_match < 1:
        # No pair agrees on the strict rule (small or very noisy data): assume about one
        # duplicate per record, the least informative prior that keeps the model defined.
        settings._probability_two_random_records_match = 1 / max(n_records, 2)
    _guarded(lambda: linker.training.estimate_u_using_random_sampling(
        max_pairs=max_pairs, seed=1), notes, "u estimate")
    u_unseen = 1 / max(max_pairs, 1 / _FLOOR)
    clamp_probabilities(linker, u_unseen, moved)
    sessions = [("first_name", "surname"), ("birth_date",), ("postcode",), ("email",)]
    for rule in sessions:
        if not all(c in columns for c in rule):
            continue
        before = linker.misc.save_model_to_json()
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                block_on(*rule), estimate_without_term_frequencies=False)
        except Exception as error:
            notes.append(f"Probabilistic model: expectation-maximisation on "
                         f"{' + '.join(rule)} skipped ({_first_line(error)}).")
            linker = Linker(data, before, log_level=logging.ERROR)
        clamp_probabilities(linker, u_unseen, moved)
    return linker


def level_labels(linker: Any) -> dict[str, dict[int, str]]:
    """Comparison → agreement level → its words (for ``--why``)."""
    labels: dict[str, dict[int, str]] = {}
    for comparison in linker._settings_obj.comparisons:
        labels[comparison.output_column_name] = {
            int(level.comparison_vector_value): str(level.label_for_charts)
            for level in comparison.comparison_levels}
    return labels


def _input_sql(settings: IdentifySettings | None = None, only: str | None = None,
               ordered: bool = True) -> str:
    """SQL of the profile records as Splink sees them: normalized fields, one row per
    record, in record key order (unless not ``ordered``); with ``only``, those of the
    records listed in that table (``record_key``)."""
    text = "nullif(lower(strip_accents(trim({}::VARCHAR))), '')"
    select = {
        "first_name": norm_name("r.first_name"),
        "surname": norm_name("r.last_name"),
        "birth_date": "strftime(r.birth_date, '%Y-%m-%d')",
        "postcode": text.format("r.postcode"),
        "city": text.format("r.city"),
        "address": text.format("r.address"),
        "email": text.format("r.email"),
        "phone": text.format("r.phone"),
    }
    joins = []
    for i, key in enumerate(settings.compare if settings else []):
        joins.append(f"LEFT JOIN (SELECT record_key, min(value) AS v FROM identifiers "
                     f"WHERE type = {q(key)} GROUP BY ALL) x{i} USING (record_key)")
        select[extra_column(key)] = (f"coalesce(x{i}.v, "
                                     f"nullif(trim(r.attributes->>{q(key)}), ''))")
    columns = ", ".join(f"{expr} AS {name}" for name, expr in select.items())
    restrict = f"AND r.record_key IN (SELECT record_key FROM {only})" if only else ""
    return f"""
        SELECT *, CASE WHEN first_name IS NOT NULL AND surname IS NOT NULL
                       THEN first_name || ' ' || surname END AS name_concat
        FROM (SELECT r.record_key AS unique_id, {columns}
              FROM customer_records r {' '.join(joins)}
              WHERE r.origin = 'profile'
                AND coalesce(r.first_name, r.last_name, r.full_name, r.birth_date::VARCHAR,
                             r.email) IS NOT NULL
                {restrict})
        {'ORDER BY unique_id' if ordered else ''}"""


def _input(store: Store, settings: IdentifySettings | None = None,
           only: str | None = None) -> pd.DataFrame:
    """Profile records as Splink sees them (:func:`_input_sql`)."""
    return store.execute(_input_sql(settings, only)).df()


def model_columns(frame: pd.DataFrame | pa.Table) -> list[str]:
    """The compared columns that hold at least one value."""
    present = list(frame.column_names if isinstance(frame, pa.Table) else frame.columns)
    names = [*FIELDS.values(), *[c for c in present if c.startswith("x_")]]
    if isinstance(frame, pa.Table):
        return [c for c in names if c in present and frame.column(c).null_count < len(frame)]
    return [c for c in names if c in present and frame[c].notna().any()]


def _deterministic_groups(store: Store) -> None:
    """``_groups(unique_id, group)``: profile record (the only ones compared) →
    deterministic component, so pairs already joined are not reported."""
    edges = store.execute("SELECT idx, nid FROM _id_edges").fetchnumpy()
    n = int(store.scalar("SELECT count(*) FROM _rec"))
    labels = components(n, np.asarray(edges["idx"], dtype=np.int64),
                        np.asarray(edges["nid"], dtype=np.int64))
    store.con.register("_groups_view", pd.DataFrame({"idx": np.arange(n, dtype=np.int64),
                                                     "group": labels[:n]}))
    store.execute("""CREATE OR REPLACE TEMP TABLE _groups AS
                     SELECT r.record_key AS unique_id, g."group" FROM _groups_view g
                     JOIN _rec r USING (idx) WHERE r.origin = 'profile'""")
    store.con.unregister("_groups_view")


#: DuckDB memory of Splink's connection (spilling to disk beyond): with the store's own cap
#: during a run, a 1 M-customer full run peaks at 6.3 GB, under 8 (at 2 GB its prediction
#: spilled 0.7 GB and took a second longer).
SPLINK_MEMORY_LIMIT = "3GB"


def _splink_api() -> Any:
    """A DuckDB connection for Splink: no progress bars, bounded memory (spills beyond)."""
    from splink import DuckDBAPI

    connection = scratch()
    connection.execute("SET enable_progress_bar = false")  # no bars in the CLI's output
    connection.execute(f"SET memory_limit = '{SPLINK_MEMORY_LIMIT}'")
    spill = Path(tempfile.gettempdir()) / f"onetoone-splink-{os.getpid()}"
    connection.execute(f"SET temp_directory = {q(str(spill))}")  # not the working directory
    connection.execute("SET preserve_insertion_order = false")
    return DuckDBAPI(connection)


def term_frequencies(store: Store, column: str, name: str) -> pd.DataFrame:
    """Splink's term-frequency table of ``column`` over the whole stored input
    (:data:`INPUT_TABLE`): each value's share of the non-null values."""
    col = ident(column)
    return store.execute(f"""
        SELECT {col}, count(*) / sum(count(*)) OVER () AS {ident(name)}
        FROM {INPUT_TABLE} WHERE {col} IS NOT NULL GROUP BY {col}""").df()


def make_linker(frame: pd.DataFrame, settings: IdentifySettings,
                model: dict[str, Any] | None, notes: list[str],
                columns: list[str] | None = None, store: Store | None = None) -> Any:
    """A Splink linker on ``frame`` with Splink's own blocking: the saved ``model`` if it
    fits the columns, else trained (:func:`fitted_linker`). Its candidate pairs come from one
    rule per blocking key (made here unless the frame has its ``b_<n>`` columns); a ``grp``
    column (deterministic component) keeps pairs already joined out, an ``is_new`` column
    keeps only the pairs a new record is in. :func:`predict_pairs` makes its pairs itself."""
    columns = columns if columns is not None else model_columns(frame)
    derived = derived_columns_sql(columns, [])
    extra = [d.rsplit(" AS ", 1)[-1] for d in derived]
    con = scratch()
    con.register("_frame", frame.drop(columns=[c for c in extra if c in frame.columns]))
    frame = con.execute(f"SELECT *, {', '.join(derived)} FROM _frame").df() if derived \
        else frame
    con.close()
    keys = [c for c in frame.columns if c.startswith("b_")]
    if not keys:
        frame, keys = block_keys(frame, columns, settings.max_block_size)
    groups = ["grp"] if "grp" in frame.columns else []
    new = ["is_new"] if "is_new" in frame.columns else []
    frame = frame[["unique_id", *columns, *extra, *keys, *groups, *new]]
    api = _splink_api()
    return fitted_linker(api, api.register(frame), len(frame),
                         lambda: frame.sample(n=TRAIN_MAX_RECORDS, random_state=1),
                         settings, model, notes, columns,
                         blocking_sql(keys, bool(groups), bool(new)),
                         store if new else None)


def fitted_linker(api: Any, data: Any, n_records: int,
                  sample: Callable[[], pd.DataFrame], settings: IdentifySettings,
                  model: dict[str, Any] | None, notes: list[str], columns: list[str],
                  rules: list[str], store: Store | None = None) -> Any:
    """A Splink linker on ``data`` (registered in ``api``): the saved ``model`` if it fits
    the columns, else trained, with the blocking ``rules`` (SQL).

    Above :data:`TRAIN_MAX_RECORDS` records the model is trained on the random ``sample``
    of that size (m and u are proportions, and so is the prior: the share of matching pairs
    is the same in a uniform sample of records), then applied to every record. With
    ``store``, the term frequencies are those of its whole stored input
    (:func:`term_frequencies`), not of ``data``'s records alone.
    """
    from splink import Linker
    from splink.blocking_rule_library import CustomRule

    if model is not None and model.get("columns") == columns:
        saved = {**model["model"], "blocking_rules_to_generate_predictions": [
            {"blocking_rule": sql, "sql_dialect": "duckdb"} for sql in rules]}
        linker = Linker(data, saved, log_level=logging.ERROR)
        if store is not None:
            for column in linker._settings_obj._term_frequency_columns:
                linker.table_management.register_term_frequency_lookup(
                    api.register(term_frequencies(store, column.unquote().name,
                                                  column.unquote().tf_name)),
                    column.unquote().name)
        return linker
    creator = splink_settings(columns, [CustomRule(sql) for sql in rules])
    if n_records <= TRAIN_MAX_RECORDS:
        linker = Linker(data, creator, log_level=logging.ERROR)
        return train(linker, data, columns, settings.max_pairs_for_u, n_records, notes,
                     settings.address_change_share)
    trained = _splink_api().register(sample())
    trainer = train(Linker(trained, creator, log_level=logging.ERROR), trained, columns,
                    settings.max_pairs_for_u, TRAIN_MAX_RECORDS, notes,
                    settings.address_change_share)
    return Linker(data, trainer.misc.save_model_to_json(), log_level=logging.ERROR)


def candidate_pairs_sql(keys: list[str], table: str, groups: bool = False,
                        new: bool = False, coarser: dict[str, list[str]] | None = None) -> str:
    """SQL of the candidate pairs of ``table`` (integer ``unique_id``, blocking keys
    ``keys``) as Splink scores them (``match_key``: a rule that makes the pair, ``join_key_l``
    < ``join_key_r``): the pairs :func:`blocking_sql`'s rules make, each once. A key is
    left out where one it refines (``coarser``, :func:`coarser_keys`) is kept: that block
    already holds its pairs, and half the pairs the rules made were made twice. With
    ``new``, each new record (``r``) is joined to the records of its blocks, not every
    record to every other one of its blocks."""
    kept = [c for c, on in (("grp", groups), ("is_new", new)) if on]
    refined = ", ".join(
        f"CASE WHEN coalesce({', '.join(coarser[k])}) IS NULL THEN {k} END AS {k}"
        if coarser and k in coarser else k for k in keys)
    other = _pair_filter(groups, False)
    if new:  # a pair of two new records once: the smaller is l
        pair = "least(l.unique_id, r.unique_id) AS a, greatest(l.unique_id, r.unique_id) AS b"
        which = f"r.is_new AND (NOT l.is_new OR l.unique_id < r.unique_id){other}"
    else:
        pair, which = "l.unique_id AS a, r.unique_id AS b", f"true{other}"
    joins = " UNION ALL ".join(
        f"SELECT {i} AS rule, {pair} FROM k l JOIN k r ON l.{k} = r.{k}"
        f"{'' if new else ' AND l.unique_id < r.unique_id'} WHERE {which}"
        for i, k in enumerate(keys))
    return f"""
        WITH k AS (SELECT {', '.join(['unique_id', *kept])}, {refined} FROM {table})
        SELECT min(rule)::VARCHAR AS match_key, a AS join_key_l, b AS join_key_r
        FROM ({joins}) GROUP BY a, b"""


def predict_pairs(frame: pd.DataFrame | pa.Table, settings: IdentifySettings,
                  model: dict[str, Any] | None,
                  notes: list[str] | None = None, columns: list[str] | None = None,
                  store: Store | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Scored pairs above ``review_threshold`` and the (trained or given) model
    (:func:`fitted_linker`) of the profile records ``frame`` (pandas or Arrow, as
    :func:`make_linker` reads it).

    Splink is given a table of its own connection, not the frame (read again at each of its
    steps), with row numbers, integers, as ids: it joins and compares the ids of every
    candidate pair, and the pairs get their record keys back. The candidate pairs are made
    here (:func:`candidate_pairs_sql`) and handed to Splink, so that the blocking keys stay
    out of the pairs it compares (two records' keys carried through tens of millions of pairs
    cost a third of a prediction)."""
    notes = notes if notes is not None else []
    columns = columns if columns is not None else model_columns(frame)
    if isinstance(frame, pa.Table):
        frame_columns = frame.column_names
    else:
        frame_columns = [str(c) for c in frame.columns]
    if not any(c.startswith("b_") for c in frame_columns):  # keys made here
        frame, _names = block_keys(frame.to_pandas() if isinstance(frame, pa.Table) else frame,
                                   columns, settings.max_block_size)
    table = frame if isinstance(frame, pa.Table) else \
        pa.Table.from_pandas(frame, preserve_index=False)
    record_keys = table.column("unique_id").to_numpy(zero_copy_only=False)
    table = table.set_column(table.column_names.index("unique_id"), "unique_id",
                             pa.array(np.arange(len(table), dtype=np.int64)))
    api = _splink_api()
    con = api.duckdb_con
    con.register("_frame", table)
    names = [c for c in table.column_names if c.startswith("b_")]
    kept = [c for c in ("grp", "is_new") if c in table.column_names]
    coarser = coarser_keys(columns) if names == block_key_sql(columns)[0] else None
    pairs_sql = candidate_pairs_sql(names, "_frame", "grp" in kept, "is_new" in kept,
                                    coarser) if names \
        else ("SELECT ''::VARCHAR AS match_key, 0::BIGINT AS join_key_l, "
              "0::BIGINT AS join_key_r WHERE false")
    con.execute(f"CREATE TABLE _candidate_pairs AS {pairs_sql}")
    select = ", ".join(["unique_id", *columns,
                        *derived_columns_sql(columns, table.column_names)])
    con.execute(f"CREATE TABLE _records AS SELECT {select} FROM _frame")
    con.unregister("_frame")

    def sample() -> pd.DataFrame:  # the rows pandas' frame.sample(n, random_state=1) takes
        rows = np.random.RandomState(1).choice(len(table), TRAIN_MAX_RECORDS, replace=False)
        con.register("_sample_rows", pd.DataFrame({"unique_id": rows,
                                                   "_order": np.arange(len(rows))}))
        picked = con.execute("SELECT r.* FROM _records r JOIN _sample_rows USING (unique_id) "
                             "ORDER BY _order").df()
        con.unregister("_sample_rows")
        return picked

    linker = fitted_linker(api, api.register("_records"), len(table), sample, settings,
                           model, notes, columns, [], store if "is_new" in kept else None)
    linker.table_management.register_blocked_pairs_for_predict(api.register("_candidate_pairs"))
    pairs = linker.inference.predict(
        threshold_match_probability=settings.review_threshold,
        warning_mode="never").as_pandas_dataframe()
    for side in ("unique_id_l", "unique_id_r"):
        pairs[side] = record_keys[pairs[side].to_numpy(dtype=np.int64)]
    labels = level_labels(linker)
    pairs["person_probability"] = person_probability(linker, pairs)
    pairs["home_weight"] = person_weight(pairs, relatives_levels(labels))
    gammas = [c for c in pairs.columns if c.startswith("gamma_")]
    pairs["evidence"] = [
        json.dumps({g[6:]: labels.get(g[6:], {}).get(int(v), str(v))
                    for g, v in zip(gammas, row, strict=True) if int(v) != -1})
        for row in pairs[gammas].itertuples(index=False)
    ]
    return pairs, {"columns": columns, "model": linker.misc.save_model_to_json()}


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
    lam = float(linker._settings_obj._probability_two_random_records_match)
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


#: The columns of scored pairs as the vetoes read them (``_scored``).
SCORED = ["unique_id_l", "unique_id_r", "match_probability", "match_weight", "evidence",
          "person_probability", "personal", "contact", "home", "home_weight"]


def no_pairs() -> pd.DataFrame:
    """No scored pairs."""
    return pd.DataFrame(columns=SCORED)


def _flags(pairs: pd.DataFrame, store: Store, settings: IdentifySettings) -> pd.DataFrame:
    """The scored pairs as the vetoes read them (:data:`SCORED`)."""
    pairs["personal"] = personal_agreement(pairs, personal_keys(store, settings))
    pairs["contact"] = contact_agreement(pairs)
    pairs["home"] = home_agreement(pairs)
    return pairs[SCORED]


def _stored_input(store: Store, settings: IdentifySettings) -> tuple[pa.Table, list[str]]:
    """Every profile record as Splink sees it, stored with its blocking keys (before the
    block-size cut) in :data:`INPUT_TABLE`; returned with the keys cut and each record's
    deterministic group (``grp``, from ``_groups``), and the compared columns that hold a
    value. Made in the store, in SQL."""
    con = store.con
    con.execute("CREATE OR REPLACE TEMP TABLE _input_all AS "
                f"{_input_sql(settings, ordered=False)}")  # read in order below
    names = [c for c in (str(r[0]) for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = '_input_all'").fetchall())
        if c in FIELDS.values() or c.startswith("x_")]
    counts = con.execute("SELECT " + ", ".join(f"count({ident(c)})" for c in names)
                         + " FROM _input_all").fetchall()[0] if names else ()
    columns = [c for c, n in zip(names, counts, strict=True) if n]
    keys, hashed, _fields = block_key_sql(columns)
    con.execute(f"CREATE OR REPLACE TABLE {INPUT_TABLE} AS SELECT *{', ' + hashed if keys else ''} "
                "FROM _input_all")
    con.execute("DROP TABLE _input_all")
    kept = (f" EXCLUDE ({', '.join(keys)}), "
            f"{kept_keys_sql(keys, INPUT_TABLE, settings.max_block_size)}" if keys else "")
    frame = con.sql(f"""
        SELECT i.*{kept}, coalesce(g."group", -1) AS grp
        FROM {INPUT_TABLE} i LEFT JOIN _groups g USING (unique_id)
        ORDER BY unique_id""").to_arrow_table()
    return frame, columns


def _saved_model(store: Store) -> dict[str, Any] | None:
    saved = store.scalar("SELECT value FROM onetoone_meta WHERE key = ?", [_MODEL_KEY])
    return json.loads(saved) if saved else None


def score_new_pairs(store: Store, settings: IdentifySettings,
                    progress: Callable[[str], None] | None = None) -> pd.DataFrame | None:
    """The pairs of the new records (``_new_keys``), scored with the saved model: the
    stored input (:data:`INPUT_TABLE`) loses the rows of new and removed (``_gone``)
    records and gains the new ones; the candidates are the new rows and the stored rows that
    share a block with one, the block sizes and term frequencies those of the whole input,
    as a full run counts them. ``None`` when there is no saved model that fits (the base
    reached :data:`MIN_RECORDS`, a compared field got its first values, a new DuckDB hashes
    keys differently): a full run is needed."""
    say = progress or (lambda _message: None)
    model = _saved_model(store)
    stored = bool(store.scalar("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?",
                               [INPUT_TABLE]))
    if model is None or not stored:
        profiles = int(store.scalar("SELECT count(*) FROM customer_records "
                                    "WHERE origin = 'profile'"))
        return no_pairs() if profiles < MIN_RECORDS and model is None else None
    columns = list(model.get("columns", []))
    new = _input(store, settings, only="_new_keys")
    new, keys = raw_block_keys(new, columns)
    stored_columns = {str(r[0]) for r in store.fetchall(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [INPUT_TABLE])}
    if model.get("duckdb") != ENGINE_VERSION or set(new.columns) != stored_columns \
            or set(model_columns(new)) - set(columns):
        return None
    con = store.con
    con.execute(f"DELETE FROM {INPUT_TABLE} WHERE unique_id IN (SELECT record_key FROM "
                "_new_keys) OR unique_id IN (SELECT record_key FROM _gone)")
    con.register("_input_new", new)
    # The new rows are appended: their row ids are past every stored row's.
    first_new = int(store.scalar(f"SELECT coalesce(max(rowid), -1) + 1 FROM {INPUT_TABLE}"))
    con.execute(f"INSERT INTO {INPUT_TABLE} BY NAME SELECT * FROM _input_new")
    if new.empty or not keys:
        con.unregister("_input_new")
        return no_pairs()
    say(f"  scoring the pairs of {len(new):,} new profile records with the saved model")
    # The blocks of the new rows that are small enough in the whole input, and their rows.
    con.execute("CREATE OR REPLACE TEMP TABLE _input_keys AS " + " UNION ALL ".join(
        f"SELECT {i} AS k, {key} AS v FROM {INPUT_TABLE} WHERE {key} IN "
        f"(SELECT {key} FROM _input_new) GROUP BY {key} "
        f"HAVING count(*) <= {settings.max_block_size}" for i, key in enumerate(keys)))
    near = " UNION ".join(f"SELECT i.rowid FROM {INPUT_TABLE} i JOIN _input_keys k "
                          f"ON k.k = {n} AND k.v = i.{key}" for n, key in enumerate(keys))
    kept = "".join(f", CASE WHEN {key} IN (SELECT v FROM _input_keys WHERE k = {i}) "
                   f"THEN {key} END AS {key}" for i, key in enumerate(keys))
    frame = con.sql(f"""
        SELECT * EXCLUDE ({', '.join(keys)}) {kept},
               rowid >= {first_new} AS is_new
        FROM {INPUT_TABLE} WHERE rowid >= {first_new} OR rowid IN ({near})
        ORDER BY unique_id""").to_arrow_table()
    con.unregister("_input_new")
    pairs, _model = predict_pairs(frame, settings, model, None, columns, store)
    return _flags(pairs, store, settings)


def _pair_records(store: Store, scored: pd.DataFrame) -> None:
    """``_scored``: the scored pairs, as a table; ``_pair_rec``: their records' first name,
    surname, birth date (``_rec``) and deterministic group (``_groups``), read once."""
    store.con.register("_scored_view", scored)
    store.execute("CREATE OR REPLACE TEMP TABLE _scored AS SELECT * FROM _scored_view")
    store.con.unregister("_scored_view")
    store.execute("""
        CREATE OR REPLACE TEMP TABLE _pair_rec AS
        SELECT r.record_key, r.fn, r.ln, r.bd, g."group"
        FROM _rec r JOIN _groups g ON g.unique_id = r.record_key
        WHERE r.record_key IN (SELECT unique_id_l FROM _scored
                               UNION SELECT unique_id_r FROM _scored)""")


def _record_pairs(store: Store, settings: IdentifySettings, odds: float) -> None:
    """``_pairs``: the scored pairs (``_scored``) of records in two deterministic groups
    (``_pair_rec``), less the vetoed ones."""
    store.execute(f"""
        CREATE OR REPLACE TEMP TABLE _pairs AS
        SELECT least(unique_id_l, unique_id_r) AS l, greatest(unique_id_l, unique_id_r) AS r,
               match_probability, match_weight, evidence
        FROM _scored s
        JOIN _pair_rec a ON a.record_key = s.unique_id_l
        JOIN _pair_rec b ON b.record_key = s.unique_id_r
        WHERE a."group" <> b."group"
          AND NOT ({veto_sql(settings, contact='s.contact', home='s.home')}
                   AND s.person_probability < {settings.match_threshold}
                   AND NOT s.personal AND NOT {home_lift_sql(settings, odds)})
    """)


def match_pairs(store: Store, settings: IdentifySettings,
                progress: Callable[[str], None] | None = None, *,
                scored: pd.DataFrame | None = None) -> Outcome:
    """Score profile pairs into ``identity_review``; returns the pairs that link.
    ``progress`` hears what is being done, in a few words. An incremental run passes the
    pairs of its new records (:func:`score_new_pairs`) as ``scored``; a full run scores
    every candidate pair and trains the model, and stores the input (:data:`INPUT_TABLE`)."""
    say = progress or (lambda _message: None)
    outcome = Outcome()
    _deterministic_groups(store)
    only_new = scored is not None
    if scored is None:
        frame, columns = _stored_input(store, settings)
        if len(frame) < MIN_RECORDS:
            store.execute(f"DROP TABLE IF EXISTS {INPUT_TABLE}")
            store.execute("DELETE FROM onetoone_meta WHERE key = ?", [_MODEL_KEY])
            return outcome
        if len(frame) > TRAIN_MAX_RECORDS:
            say(f"  training the model on {TRAIN_MAX_RECORDS:,} of {len(frame):,} profile "
                f"records, then scoring every candidate pair")
        else:
            say(f"  training the model on {len(frame):,} profile records and scoring pairs")
        pairs, trained = predict_pairs(frame, settings, None, outcome.notes, columns)
        scored = _flags(pairs, store, settings)
        _pair_records(store, scored)
        odds = home_odds(store, "_pair_rec")
        store.execute("INSERT OR REPLACE INTO onetoone_meta VALUES (?, ?)", [_MODEL_KEY, json.dumps(
            {**trained, "home_odds": odds, "duckdb": ENGINE_VERSION})])
    else:
        model = _saved_model(store) or {}
        odds = float(model.get("home_odds", 0.0))  # measured on the base, with the model
    say(f"  {len(scored):,} pairs at or above the review threshold; applying the vetoes")
    if scored.empty:
        store.execute("CREATE OR REPLACE TEMP TABLE _pairs (l VARCHAR, r VARCHAR, "
                      "match_probability DOUBLE, match_weight DOUBLE, evidence VARCHAR)")
    else:
        if only_new:
            _pair_records(store, scored)
        _record_pairs(store, settings, odds)
    if only_new:
        store.execute("""DELETE FROM identity_review WHERE status IN ('linked', 'pending')
                         AND (record_key_l IN (SELECT record_key FROM _new)
                           OR record_key_r IN (SELECT record_key FROM _new))""")
    else:
        store.execute("DELETE FROM identity_review WHERE status IN ('linked', 'pending')")
    store.execute("""
        INSERT INTO identity_review
        SELECT l, r, match_probability, match_weight, evidence::JSON,
               CASE WHEN match_probability >= ? THEN 'linked' ELSE 'pending' END, NULL
        FROM _pairs p WHERE NOT EXISTS (SELECT 1 FROM identity_review x
                                        WHERE x.record_key_l = p.l AND x.record_key_r = p.r)
    """, [settings.match_threshold])
    outcome.links = int(store.scalar(
        "SELECT count(*) FROM identity_review WHERE status = 'linked'"))
    return outcome
