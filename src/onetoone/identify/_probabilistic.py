"""Probabilistic matching of profile records with Splink (Fellegi & Sunter 1969).

Each compared field (names, birth date, postcode, city, address, e-mail, phone, and the
identifier types or attribute keys listed in ``[identify] compare``) agrees at some level; the
model weighs each level by its m probability (how often true matches agree at that level)
against its u probability (how often random pairs do). u is estimated by random sampling, m by
expectation-maximisation without labels, and rare values weigh more than common ones
(term-frequency adjustments). Splink is used rather than written here: it is the well-kept
implementation, on DuckDB as on Spark.

This module runs the step, for a full run (:func:`match_pairs`) and for the new records of an
incremental one (:func:`score_new_pairs`); the parts are in their own modules: the records as
Splink sees them (``_records``), the compared fields and their levels (``_comparisons``), the
candidate pairs (``_blocking``), the model and its training (``_training``, with every use of
Splink internals in ``_splink_compat``), the scored pairs (``_pairs``) and the vetoes that keep
relatives and namesakes apart (``_vetoes``). Pairs already joined by a strong identifier are
not reported; pairs at or above ``match_threshold`` link, those between ``review_threshold``
and it wait for a person.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from onetoone.identify._blocking import raw_block_keys
from onetoone.identify._comparisons import model_columns
from onetoone.identify._pairs import (
    _flags,
    _pair_records,
    _record_pairs,
    no_pairs,
    predict_pairs,
)
from onetoone.identify._records import (
    INPUT_TABLE,
    _deterministic_groups,
    _input,
    _stored_input,
)
from onetoone.identify._training import (
    _MODEL_KEY,
    TRAIN_MAX_RECORDS,
    _saved_model,
)
from onetoone.identify._training import make_linker as make_linker  # benchmarks/identity.py
from onetoone.identify._vetoes import home_odds
from onetoone.identify.settings import IdentifySettings
from onetoone.progress import Progress, silent
from onetoone.store import (
    ENGINE_VERSION,
    Connection,
    Store,
    frame_view,
    has_table,
    table_columns,
)

MIN_RECORDS = 20


@dataclass
class Outcome:
    """What the probabilistic step did."""

    links: int = 0
    notes: list[str] = field(default_factory=list)


def score_new_pairs(store: Store, settings: IdentifySettings,
                    progress: Progress | None = None) -> pd.DataFrame | None:
    """The pairs of the new records (``_new_keys``), scored with the saved model: the
    stored input (:data:`INPUT_TABLE`) loses the rows of new and removed (``_gone``)
    records and gains the new ones; the candidates are the new rows and the stored rows that
    share a block with one, the block sizes and term frequencies those of the whole input,
    as a full run counts them. ``None`` when there is no saved model that fits (the base
    reached :data:`MIN_RECORDS`, a compared field got its first values, a new DuckDB hashes
    keys differently): a full run is needed."""
    say = progress or silent
    model = _saved_model(store)
    stored = has_table(store, INPUT_TABLE)
    if model is None or not stored:
        profiles = int(store.scalar("SELECT count(*) FROM customer_records "
                                    "WHERE origin = 'profile'"))
        return no_pairs() if profiles < MIN_RECORDS and model is None else None
    columns = list(model.get("columns", []))
    new = _input(store, settings, only="_new_keys")
    new, keys = raw_block_keys(new, columns)
    stored_columns = set(table_columns(store, INPUT_TABLE))
    if model.get("duckdb") != ENGINE_VERSION or set(new.columns) != stored_columns \
            or set(model_columns(new)) - set(columns):
        return None
    con = store.con
    con.execute(f"DELETE FROM {INPUT_TABLE} WHERE unique_id IN (SELECT record_key FROM "
                "_new_keys) OR unique_id IN (SELECT record_key FROM _gone)")
    with frame_view(con, "_input_new", new):
        # The new rows are appended: their row ids are past every stored row's.
        first_new = int(store.scalar(f"SELECT coalesce(max(rowid), -1) + 1 FROM {INPUT_TABLE}"))
        con.execute(f"INSERT INTO {INPUT_TABLE} BY NAME SELECT * FROM _input_new")
        if new.empty or not keys:
            return no_pairs()
        frame = _new_and_near(con, new, keys, first_new, settings.max_block_size, say)
    pairs, _model = predict_pairs(frame, settings, model, None, columns, store)
    return _flags(pairs, store, settings)


def match_pairs(store: Store, settings: IdentifySettings,
                progress: Progress | None = None, *,
                scored: pd.DataFrame | None = None) -> Outcome:
    """Score profile pairs into ``identity_review``; returns the pairs that link.
    ``progress`` hears what is being done, in a few words. An incremental run passes the
    pairs of its new records (:func:`score_new_pairs`) as ``scored``; a full run scores
    every candidate pair and trains the model, and stores the input (:data:`INPUT_TABLE`)."""
    say = progress or silent
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
            say(f"training the model on {TRAIN_MAX_RECORDS:,} of {len(frame):,} profile "
                f"records, then scoring every candidate pair", 0.1)
        else:
            say(f"training the model on {len(frame):,} profile records and scoring pairs", 0.1)
        pairs, trained = predict_pairs(frame, settings, None, outcome.notes, columns)
        scored = _flags(pairs, store, settings)
        _pair_records(store, scored)
        odds = home_odds(store, "_pair_rec")
        store.execute("INSERT OR REPLACE INTO onetoone_meta VALUES (?, ?)", [_MODEL_KEY, json.dumps(
            {**trained, "home_odds": odds, "duckdb": ENGINE_VERSION})])
    else:
        model = _saved_model(store) or {}
        odds = float(model.get("home_odds", 0.0))  # measured on the base, with the model
    say(f"{len(scored):,} pairs at or above the review threshold; applying the vetoes", 0.8)
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


def _new_and_near(con: Connection, new: pd.DataFrame, keys: list[str], first_new: int,
                  max_block_size: int, say: Progress) -> pa.Table:
    """The new rows (``_input_new``, appended from row id ``first_new``) and the stored rows
    that share one of their blocks small enough in the whole input, flagged ``is_new``."""
    say(f"scoring the pairs of {len(new):,} new profile records with the saved model", 0.1)
    con.execute("CREATE OR REPLACE TEMP TABLE _input_keys AS " + " UNION ALL ".join(
        f"SELECT {i} AS k, {key} AS v FROM {INPUT_TABLE} WHERE {key} IN "
        f"(SELECT {key} FROM _input_new) GROUP BY {key} "
        f"HAVING count(*) <= {max_block_size}" for i, key in enumerate(keys)))
    near = " UNION ".join(f"SELECT i.rowid FROM {INPUT_TABLE} i JOIN _input_keys k "
                          f"ON k.k = {n} AND k.v = i.{key}" for n, key in enumerate(keys))
    kept = "".join(f", CASE WHEN {key} IN (SELECT v FROM _input_keys WHERE k = {i}) "
                   f"THEN {key} END AS {key}" for i, key in enumerate(keys))
    return con.sql(f"""
        SELECT * EXCLUDE ({', '.join(keys)}) {kept},
               rowid >= {first_new} AS is_new
        FROM {INPUT_TABLE} WHERE rowid >= {first_new} OR rowid IN ({near})
        ORDER BY unique_id""").to_arrow_table()
