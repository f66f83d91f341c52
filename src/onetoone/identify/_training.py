"""The model and its training: a Splink linker on the profile records, with the saved model
when it fits the compared columns, else trained without labels (the prior from a strict rule,
u by random sampling, m by expectation-maximisation, on a sample above
:data:`TRAIN_MAX_RECORDS`), and the stored model (``onetoone_meta``). Training is made robust:
a training step that fails (expectation-maximisation that degenerates on small or odd data, a
level never observed) is skipped with a note and the model keeps Splink's starting values for
what it could not estimate; m and u probabilities are kept inside (1e-6, 1 - 1e-6) so that one
empty level cannot veto or force every pair, and a postcode, city or address that disagrees
keeps an m of at least ``address_change_share`` (people move; on data where nobody does, EM
would make any difference a veto).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from onetoone.identify._blocking import block_keys, blocking_sql
from onetoone.identify._comparisons import derived_columns_sql, model_columns, splink_settings
from onetoone.identify._records import INPUT_TABLE
from onetoone.identify._splink_compat import (
    comparisons,
    floored_em,
    is_else_level,
    prior,
    raw_u_probability,
    set_prior,
    term_frequency_columns,
)
from onetoone.identify.settings import IdentifySettings
from onetoone.ingest._normalize import ident
from onetoone.store import Store, scratch, show_frame

_MODEL_KEY = "identify_model"


_FLOOR = 1e-6


#: Records of the largest sample the model is trained on (training cost stays flat).
TRAIN_MAX_RECORDS = 15_000


def _first_line(error: Exception) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0][:120]


def _guarded(step: Any, notes: list[str], what: str) -> None:
    try:
        step()
    except Exception as error:
        notes.append(f"Probabilistic model: {what} skipped ({_first_line(error)}).")


#: Comparisons whose values change when a person moves.
MOVING = ("postcode", "city", "address")


def keep_movers(comparison: Any, moved: float) -> None:
    """Give the "else" level of an address field an m of at least ``moved`` (the others
    scaled to keep the sum at one): one person's records disagree on the address when she
    moved between them, so disagreeing must not weigh like a veto (an m at the 1e-6 floor
    does, about -20 bits, when expectation-maximisation meets no movers)."""
    levels = [lv for lv in comparison.comparison_levels if not lv.is_null_level
              and lv.m_probability is not None and np.isfinite(lv.m_probability)]
    other = [lv for lv in levels if not is_else_level(lv)]
    rest = sum(float(lv.m_probability) for lv in other)
    for level in levels:
        if is_else_level(level) and level.m_probability < moved and rest > 0:
            scale = (1 - moved) / rest
            level.m_probability = moved
            for lv in other:
                lv.m_probability = float(lv.m_probability) * scale


def clamp_probabilities(linker: Any, u_unseen: float = _FLOOR, moved: float = 0.0) -> None:
    """Keep every m and u inside (1e-6, 1 - 1e-6); a level no random pair reached gets u =
    ``u_unseen`` (one in the number of pairs sampled), not "no evidence"; the "else" level
    of postcode, city and address keeps an m of at least ``moved`` (:func:`keep_movers`)."""
    for comparison in comparisons(linker):
        if moved > 0 and comparison.output_column_name in MOVING:
            keep_movers(comparison, moved)
        for level in comparison.comparison_levels:
            if level.is_null_level:
                continue
            # The u as estimated: the ``u_probability`` property falls back on Splink's generic
            # default u (1 in 100 or 1 in 16), which would make a level that random pairs never
            # reach (a user name equal but for dots) count *against* a match.
            raw = raw_u_probability(level)
            unseen = not isinstance(raw, float | int) or not np.isfinite(raw)
            if unseen and (level.m_probability is not None or not is_else_level(level)):
                level.u_probability = u_unseen
            for attr in ("m_probability", "u_probability"):
                value = getattr(level, attr)
                if value is None or not np.isfinite(value):
                    continue
                clipped = min(max(float(value), _FLOOR), 1 - _FLOOR)
                if clipped != value:
                    setattr(level, attr, clipped)


@floored_em(_FLOOR)
def train(linker: Any, data: Any, columns: list[str], max_pairs: float, n_records: int,
          notes: list[str] | None = None, moved: float = 0.0) -> Any:
    """Estimate the model without labels: λ from a strict rule, u by sampling, m by EM.

    Returns the trained linker. A step that fails is skipped with a note (``notes``) and the
    model is restored to what it was before that step (a failed expectation-maximisation
    session would otherwise leave its comparisons out of the model). While it runs, Splink's
    expectation-maximisation floors m and u at 1e-6 instead of failing
    (:func:`._splink_compat.floored_em`).
    """
    from splink import Linker, block_on

    notes = notes if notes is not None else []
    strict = [c for c in ("first_name", "surname", "birth_date") if c in columns]
    if strict:
        _guarded(lambda: linker.training.estimate_probability_two_random_records_match(
            [block_on(*strict)], recall=0.7), notes, "prior estimate")
    if not 0 < prior(linker) < 1:
        # No pair agrees on the strict rule (small or very noisy data): assume about one
        # duplicate per record, the least informative prior that keeps the model defined.
        set_prior(linker, 1 / max(n_records, 2))
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


#: DuckDB memory of Splink's connection (spilling to disk beyond): with the store's own cap
#: during a run, a 1 M-customer full run peaks at 6.3 GB, under 8 (at 2 GB its prediction
#: spilled 0.7 GB and took a second longer).
SPLINK_MEMORY_LIMIT = "3GB"


def _splink_api() -> Any:
    """A DuckDB connection for Splink: no progress bars, bounded memory (spills beyond)."""
    from splink import DuckDBAPI

    spill = Path(tempfile.gettempdir()) / f"onetoone-splink-{os.getpid()}"
    connection = scratch(memory_limit=SPLINK_MEMORY_LIMIT, preserve_insertion_order=False,
                         temp_directory=str(spill))  # spills not in the working directory
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
    show_frame(con, "_frame", frame.drop(columns=[c for c in extra if c in frame.columns]))
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
            for name, tf_name in term_frequency_columns(linker):
                linker.table_management.register_term_frequency_lookup(
                    api.register(term_frequencies(store, name, tf_name)), name)
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


def _saved_model(store: Store) -> dict[str, Any] | None:
    saved = store.scalar("SELECT value FROM onetoone_meta WHERE key = ?", [_MODEL_KEY])
    return json.loads(saved) if saved else None
