"""Probabilistic matching of profile records with Splink (Fellegi & Sunter 1969).

Each compared field (first name, last name, birth date, postcode, city, address) agrees at some
level; the model weighs each level by its m probability (how often true matches agree at that
level) against its u probability (how often random pairs do). u is estimated by random
sampling, m by expectation-maximisation without labels, and rare names weigh more than common
ones (term-frequency adjustments). Splink is used rather than written here: it is the well-kept
implementation, on DuckDB as on Spark.

Pairs already joined by a strong identifier are not reported; pairs at or above
``match_threshold`` link, those between ``review_threshold`` and it wait for a person.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pandas as pd

from onetoone.config import IdentifySettings
from onetoone.identify._components import components
from onetoone.store import Store

#: Canonical field → name in the Splink input (the data model's, except ``surname``).
FIELDS = {"first_name": "first_name", "last_name": "surname", "birth_date": "birth_date",
          "postcode": "postcode", "city": "city", "address": "address"}
MIN_RECORDS = 20
_MODEL_KEY = "identify_model"


def splink_settings(columns: list[str]) -> Any:
    """The Splink model over the fields present: comparisons and blocking rules."""
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    comparisons: list[Any] = []
    if "first_name" in columns:
        comparisons.append(cl.NameComparison("first_name").configure(
            term_frequency_adjustments=True))
    if "surname" in columns:
        comparisons.append(cl.NameComparison("surname").configure(
            term_frequency_adjustments=True))
    if "birth_date" in columns:
        comparisons.append(cl.DateOfBirthComparison("birth_date", input_is_string=True))
    if "postcode" in columns:
        comparisons.append(cl.LevenshteinAtThresholds("postcode", [1]))
    if "city" in columns:
        comparisons.append(cl.JaroWinklerAtThresholds("city", [0.9]).configure(
            term_frequency_adjustments=True))
    if "address" in columns:
        comparisons.append(cl.JaroWinklerAtThresholds("address", [0.9, 0.7]))
    rules: list[Any] = [block_on(*pair) for pair in (
        ("first_name", "surname"), ("surname", "birth_date"), ("first_name", "birth_date"),
        ("postcode", "surname"), ("postcode", "first_name"), ("city", "surname"),
        ("address", "postcode"),
    ) if all(c in columns for c in pair)]
    return SettingsCreator(
        link_type="dedupe_only", comparisons=comparisons,
        blocking_rules_to_generate_predictions=rules,
        retain_intermediate_calculation_columns=True,
    )


def train(linker: Any, columns: list[str], max_pairs: float, n_records: int) -> None:
    """Estimate the model without labels: λ from a strict rule, u by sampling, m by EM."""
    from splink import block_on

    strict = [c for c in ("first_name", "surname", "birth_date") if c in columns]
    linker.training.estimate_probability_two_random_records_match(
        [block_on(*strict)], recall=0.7)
    settings = linker._settings_obj
    if not 0 < settings._probability_two_random_records_match < 1:
        # No pair agrees on the strict rule (small or very noisy data): assume about one
        # duplicate per record, the least informative prior that keeps the model defined.
        settings._probability_two_random_records_match = 1 / max(n_records, 2)
    linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs, seed=1)
    sessions = [("first_name", "surname"), ("birth_date",), ("postcode",)]
    for rule in sessions:
        if all(c in columns for c in rule):
            linker.training.estimate_parameters_using_expectation_maximisation(
                block_on(*rule), estimate_without_term_frequencies=False)


def level_labels(linker: Any) -> dict[str, dict[int, str]]:
    """Comparison → agreement level → its words (for ``--why``)."""
    labels: dict[str, dict[int, str]] = {}
    for comparison in linker._settings_obj.comparisons:
        labels[comparison.output_column_name] = {
            int(level.comparison_vector_value): str(level.label_for_charts)
            for level in comparison.comparison_levels}
    return labels


def _input(store: Store) -> pd.DataFrame:
    select = ", ".join(
        f"nullif(lower(strip_accents(trim({c}::VARCHAR))), '') AS {name}"
        for c, name in FIELDS.items())
    return store.execute(f"""
        SELECT r.record_key AS unique_id, {select}
        FROM customer_records r WHERE r.origin = 'profile'
          AND coalesce(r.first_name, r.last_name, r.full_name) IS NOT NULL
        ORDER BY r.record_key""").df()


def _deterministic_groups(store: Store) -> pd.DataFrame:
    """Record → deterministic component, so pairs already joined are not reported."""
    edges = store.execute("SELECT idx, dense_rank() OVER (ORDER BY node) - 1 AS nid "
                          "FROM _id_edges").fetchnumpy()
    n = int(store.scalar("SELECT count(*) FROM _rec"))
    labels = components(n, np.asarray(edges["idx"], dtype=np.int64),
                        np.asarray(edges["nid"], dtype=np.int64))
    keys = store.execute("SELECT record_key FROM _rec ORDER BY idx").fetchnumpy()["record_key"]
    return pd.DataFrame({"unique_id": keys, "group": labels[:n]})


def predict_pairs(frame: pd.DataFrame, settings: IdentifySettings,
                  model: dict[str, Any] | None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Scored pairs above ``review_threshold`` and the (trained or given) model."""
    from splink import DuckDBAPI, Linker

    columns = [c for c in FIELDS.values() if frame[c].notna().any()]
    frame = frame[["unique_id", *columns]]
    db_api = DuckDBAPI()
    data = db_api.register(frame)
    if model is not None and _model_columns(model) == columns:
        linker = Linker(data, model, log_level=logging.ERROR)
    else:
        linker = Linker(data, splink_settings(columns), log_level=logging.ERROR)
        train(linker, columns, settings.max_pairs_for_u, len(frame))
    pairs = linker.inference.predict(
        threshold_match_probability=settings.review_threshold,
        warning_mode="never").as_pandas_dataframe()
    labels = level_labels(linker)
    gammas = [c for c in pairs.columns if c.startswith("gamma_")]
    pairs["evidence"] = [
        json.dumps({g[6:]: labels.get(g[6:], {}).get(int(v), str(v))
                    for g, v in zip(gammas, row, strict=True) if int(v) != -1})
        for row in pairs[gammas].itertuples(index=False)
    ]
    return pairs, linker.misc.save_model_to_json()


def _model_columns(model: dict[str, Any]) -> list[str]:
    names = []
    for comparison in model.get("comparisons", []):
        name = str(comparison.get("output_column_name", ""))
        names.append(name)
    return names


def match_pairs(store: Store, settings: IdentifySettings, mode: str) -> int:
    """Score profile pairs into ``identity_review``; returns the pairs that link."""
    frame = _input(store)
    if len(frame) < MIN_RECORDS:
        return 0
    saved = store.scalar("SELECT value FROM onetoone_meta WHERE key = ?", [_MODEL_KEY])
    model = json.loads(saved) if saved and mode == "incremental" else None
    pairs, trained = predict_pairs(frame, settings, model)
    store.execute("INSERT OR REPLACE INTO onetoone_meta VALUES (?, ?)",
                  [_MODEL_KEY, json.dumps(trained)])
    groups = _deterministic_groups(store)
    scored = pairs[["unique_id_l", "unique_id_r", "match_probability", "match_weight",
                    "evidence"]]
    store.con.register("_scored", scored)
    store.con.register("_groups", groups)
    store.execute("""
        CREATE OR REPLACE TEMP TABLE _pairs AS
        SELECT least(unique_id_l, unique_id_r) AS l, greatest(unique_id_l, unique_id_r) AS r,
               match_probability, match_weight, evidence
        FROM _scored s
        JOIN _groups gl ON gl.unique_id = s.unique_id_l
        JOIN _groups gr ON gr.unique_id = s.unique_id_r
        WHERE gl."group" <> gr."group"
    """)
    store.con.unregister("_scored")
    store.con.unregister("_groups")
    store.execute("DELETE FROM identity_review WHERE status IN ('linked', 'pending')")
    store.execute("""
        INSERT INTO identity_review
        SELECT l, r, match_probability, match_weight, evidence::JSON,
               CASE WHEN match_probability >= ? THEN 'linked' ELSE 'pending' END, NULL
        FROM _pairs p WHERE NOT EXISTS (SELECT 1 FROM identity_review x
                                        WHERE x.record_key_l = p.l AND x.record_key_r = p.r)
    """, [settings.match_threshold])
    return int(store.scalar("SELECT count(*) FROM identity_review WHERE status = 'linked'"))
