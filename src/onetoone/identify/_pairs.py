"""Scored pairs: every candidate pair of the profile records scored by the model (kept at or
above ``review_threshold``, with the evidence of each compared field in words), the flags the
vetoes read on each (:data:`SCORED`), and the pairs of records in two deterministic groups
that survive the vetoes (``_pairs``), which :func:`._probabilistic.match_pairs` writes to
``identity_review`` as linked (at or above ``match_threshold``) or pending.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from onetoone.identify._blocking import (
    block_key_sql,
    block_keys,
    candidate_pairs_sql,
    coarser_keys,
)
from onetoone.identify._comparisons import derived_columns_sql, level_labels, model_columns
from onetoone.identify._training import TRAIN_MAX_RECORDS, _splink_api, fitted_linker
from onetoone.identify._vetoes import (
    contact_agreement,
    home_agreement,
    home_lift_sql,
    person_probability,
    person_weight,
    personal_agreement,
    personal_keys,
    relatives_levels,
    veto_sql,
)
from onetoone.identify.settings import IdentifySettings
from onetoone.store import Store, frame_view


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
    names = [c for c in table.column_names if c.startswith("b_")]
    kept = [c for c in ("grp", "is_new") if c in table.column_names]
    coarser = coarser_keys(columns) if names == block_key_sql(columns)[0] else None
    pairs_sql = candidate_pairs_sql(names, "_frame", "grp" in kept, "is_new" in kept,
                                    coarser) if names \
        else ("SELECT ''::VARCHAR AS match_key, 0::BIGINT AS join_key_l, "
              "0::BIGINT AS join_key_r WHERE false")
    select = ", ".join(["unique_id", *columns,
                        *derived_columns_sql(columns, table.column_names)])
    with frame_view(con, "_frame", table):
        con.execute(f"CREATE TABLE _candidate_pairs AS {pairs_sql}")
        con.execute(f"CREATE TABLE _records AS SELECT {select} FROM _frame")

    def sample() -> pd.DataFrame:  # the rows pandas' frame.sample(n, random_state=1) takes
        rows = np.random.RandomState(1).choice(len(table), TRAIN_MAX_RECORDS, replace=False)
        order = pd.DataFrame({"unique_id": rows, "_order": np.arange(len(rows))})
        with frame_view(con, "_sample_rows", order):
            return con.execute("SELECT r.* FROM _records r JOIN _sample_rows "
                               "USING (unique_id) ORDER BY _order").df()

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


def _pair_records(store: Store, scored: pd.DataFrame) -> None:
    """``_scored``: the scored pairs, as a table; ``_pair_rec``: their records' first name,
    surname, birth date (``_rec``) and deterministic group (``_groups``), read once."""
    with frame_view(store, "_scored_view", scored):
        store.execute("CREATE OR REPLACE TEMP TABLE _scored AS SELECT * FROM _scored_view")
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
