"""What two profile records are compared on: the compared fields and extra columns (identifier
types or attribute keys of ``[identify] compare``), each field's Splink comparison and its
agreement levels (several rewritten to compute an edit distance only where it can matter, on
columns derived once per record), and the words of each level (for ``--why``).
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import pyarrow as pa

from onetoone.identify._splink_compat import comparisons as linker_comparisons

#: Canonical field → name in the Splink input (the data model's, except ``surname``).
FIELDS = {"first_name": "first_name", "last_name": "surname", "birth_date": "birth_date",
          "postcode": "postcode", "city": "city", "address": "address", "email": "email",
          "phone": "phone"}


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


def model_columns(frame: pd.DataFrame | pa.Table) -> list[str]:
    """The compared columns that hold at least one value."""
    present = list(frame.column_names if isinstance(frame, pa.Table) else frame.columns)
    names = [*FIELDS.values(), *[c for c in present if c.startswith("x_")]]
    if isinstance(frame, pa.Table):
        return [c for c in names if c in present and frame.column(c).null_count < len(frame)]
    return [c for c in names if c in present and frame[c].notna().any()]


def level_labels(linker: Any) -> dict[str, dict[int, str]]:
    """Comparison → agreement level → its words (for ``--why``)."""
    labels: dict[str, dict[int, str]] = {}
    for comparison in linker_comparisons(linker):
        labels[comparison.output_column_name] = {
            int(level.comparison_vector_value): str(level.label_for_charts)
            for level in comparison.comparison_levels}
    return labels
