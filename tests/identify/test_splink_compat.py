"""The Splink internals ``onetoone.identify._splink_compat`` relies on are still there and still
do what it uses them for. A Splink upgrade that moves one of them fails here, with a message
naming the Splink version and the internal, instead of silently changing the model (the
expectation-maximisation floor that would no longer apply, a prior set on a dead attribute).
"""

from __future__ import annotations

import inspect
import random
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _identify_data import Builder, customer_of

splink = pytest.importorskip("splink")

FIRST = ["anne", "paul", "marie", "luc", "eve", "jean", "zoe", "hugo", "lea", "noah",
         "emma", "louis", "jade", "gabriel", "chloe", "arthur", "lina", "jules", "mia", "adam"]
LAST = ["martin", "bernard", "dubois", "thomas", "robert", "richard", "petit", "durand",
        "leroy", "moreau", "simon", "laurent", "lefebvre", "michel", "garcia", "david"]
CITIES = ["paris", "lyon", "lille", "nantes", "rennes", "nice", "metz", "brest"]
HOOK_PARAMETERS = ["training_fixed_probabilities", "comparison_level", "output_column_name",
                   "m_u_records_lookup"]


def _fail(internal: str, problem: str) -> None:
    pytest.fail(f"Splink {splink.__version__}: {internal} {problem}. "
                "onetoone.identify._splink_compat relies on it (see that module's docstring): "
                "adapt it to this Splink version, or pin Splink below it.", pytrace=False)


def _require(obj: Any, attribute: str, internal: str) -> Any:
    try:
        return getattr(obj, attribute)
    except AttributeError:
        _fail(internal, "is missing")


def _em_module() -> Any:
    from onetoone.identify._splink_compat import EM_MODULE

    try:
        return __import__(EM_MODULE, fromlist=["_"])
    except ImportError:
        _fail(f"module {EM_MODULE}", "cannot be imported")


def _frame(n: int = 150) -> pd.DataFrame:
    """Profile records as Splink sees them, a third with a duplicate."""
    rng = random.Random(5)
    rows = []
    for i in range(n):
        person = {"first_name": rng.choice(FIRST), "surname": rng.choice(LAST),
                  "birth_date": f"19{rng.randint(40, 99)}-0{rng.randint(1, 9)}-1{i % 9}",
                  "postcode": f"{rng.randint(10, 95)}000", "city": rng.choice(CITIES)}
        rows.append({"unique_id": str(i), **person})
        if i % 3 == 0:
            rows.append({"unique_id": f"{i}d", **person})
    frame = pd.DataFrame(rows)
    frame["name_concat"] = frame["first_name"] + " " + frame["surname"]
    return frame


def _linker() -> Any:
    from onetoone.config import IdentifySettings
    from onetoone.identify._training import make_linker

    return make_linker(_frame(), IdentifySettings(max_pairs_for_u=1e4), None, [])


def test_the_expectation_maximisation_hook_is_there() -> None:
    from onetoone.identify._splink_compat import EM_HOOK, EM_MODULE

    em = _em_module()
    hook = _require(em, EM_HOOK, f"{EM_MODULE}.{EM_HOOK}")
    names = list(inspect.signature(hook).parameters)
    if names != HOOK_PARAMETERS:
        _fail(f"{EM_MODULE}.{EM_HOOK}", f"takes {names}, not {HOOK_PARAMETERS}")


def test_the_model_internals_are_there() -> None:
    from onetoone.identify import _splink_compat as compat

    linker = _linker()
    settings = _require(linker, "_settings_obj", "Linker._settings_obj")
    comparisons = _require(settings, "comparisons", "Linker._settings_obj.comparisons")
    if not comparisons:
        _fail("Linker._settings_obj.comparisons", "is empty for a model of five comparisons")
    prior = getattr(type(settings), "_probability_two_random_records_match", None)
    if not isinstance(prior, property) or prior.fset is None:
        _fail(f"{type(settings).__name__}._probability_two_random_records_match",
              "is no longer a property that can be set")
    columns = _require(settings, "_term_frequency_columns",
                       "Linker._settings_obj._term_frequency_columns")
    for column in columns:
        unquoted = _require(column, "unquote", "InputColumn.unquote()")()
        _require(unquoted, "name", "InputColumn.name")
        _require(unquoted, "tf_name", "InputColumn.tf_name")
    for comparison in comparisons:
        for level in comparison.comparison_levels:
            for public in ("is_null_level", "comparison_vector_value", "label_for_charts"):
                _require(level, public, f"ComparisonLevel.{public}")
            _require(level, "_is_else_level", "ComparisonLevel._is_else_level")
            if not level.is_null_level:
                _require(level, "_u_probability", "ComparisonLevel._u_probability")

    # What each accessor reads is what the model uses.
    assert compat.comparisons(linker) is comparisons
    for comparison in comparisons:
        levels = comparison.comparison_levels
        if [bool(compat.is_else_level(lv)) for lv in levels] != \
                [i == len(levels) - 1 for i in range(len(levels))]:
            _fail("ComparisonLevel._is_else_level", f"no longer marks the last level of "
                  f"{comparison.output_column_name} (and only it) as the 'else' level")
    level = next(lv for lv in comparisons[0].comparison_levels if not lv.is_null_level)
    level.u_probability = 0.25
    if compat.raw_u_probability(level) != 0.25:
        _fail("ComparisonLevel._u_probability", "no longer holds the u set on the level")
    compat.set_prior(linker, 0.0123)
    saved = linker.misc.save_model_to_json()
    if compat.prior(linker) != 0.0123 or saved["probability_two_random_records_match"] != 0.0123:
        _fail("Linker._settings_obj._probability_two_random_records_match",
              "is no longer the model's prior (the saved model does not carry it)")
    pairs = compat.term_frequency_columns(linker)
    if ("postcode", "tf_postcode") not in pairs or ("city", "tf_city") not in pairs:
        _fail("Linker._settings_obj._term_frequency_columns",
              f"gives {pairs}, not the term-frequency adjusted postcode and city")


def test_the_floor_is_applied_only_while_entered() -> None:
    from onetoone.identify._splink_compat import EM_HOOK, comparisons, floored_em

    em = _em_module()
    original = getattr(em, EM_HOOK)
    comparison = comparisons(_linker())[0]
    level = next(lv for lv in comparison.comparison_levels if not lv.is_null_level)
    lookup = {comparison.output_column_name: {level.comparison_vector_value: {
        "m_probability": 0.0, "u_probability": 0.0}}}
    with floored_em(1e-6):
        with floored_em(1e-6):
            assert getattr(em, EM_HOOK) is not original
        assert getattr(em, EM_HOOK) is not original  # still in the outer entry
        getattr(em, EM_HOOK)(set(), level, comparison.output_column_name, lookup)
    assert getattr(em, EM_HOOK) is original
    if level.m_probability != 1e-6 or level.u_probability != 1e-6:
        _fail(f"{em.__name__}.{EM_HOOK}", "no longer sets the level's m and u from the "
              "proportions it is given")


@pytest.mark.slow
def test_a_small_base_trains_scores_and_scores_new_records(
        base: Builder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A full run (training with expectation-maximisation, prediction, vetoes) and then an
    # incremental one (the saved model, the stored input's term frequencies) through our code.
    from onetoone.identify import _training
    from onetoone.identify._splink_compat import EM_HOOK, EM_MODULE

    em = _em_module()
    calls = {"em": 0, "tf": 0}
    hook = getattr(em, EM_HOOK)

    def counted(*args: Any) -> None:
        calls["em"] += 1
        hook(*args)

    monkeypatch.setattr(em, EM_HOOK, counted)
    columns = _training.term_frequency_columns

    def counted_columns(linker: Any) -> list[tuple[str, str]]:
        calls["tf"] += 1
        return columns(linker)

    monkeypatch.setattr(_training, "term_frequency_columns", counted_columns)
    rng = random.Random(7)
    rows, people = [], []
    for i in range(90):
        first, last, city = rng.choice(FIRST), rng.choice(LAST), rng.choice(CITIES)
        people.append((first, last))
        dob = f"19{rng.randint(40, 99)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        rows.append(f"{i},{first},{last},,,{dob},,{rng.randint(10, 95)}000,{city},\n")
        if i % 4 == 0:  # a duplicate with a typo in the last name
            rows.append(f"{i}d,{first},{last[:-1] + 'x'},,,{dob},,,{city},\n")
    ws = base(crm="".join(rows), identify="probabilistic = true")
    result = ws.identify()
    assert not any("failed" in note or "skipped" in note for note in result.notes), result.notes
    if calls["em"] == 0:
        _fail(f"{EM_MODULE}.{EM_HOOK}", "is no longer called by expectation-maximisation "
              "(the floor of m and u would silently not apply)")
    assert getattr(em, EM_HOOK) is counted  # the floor is gone after training
    assert result.probabilistic_links > 0
    assert customer_of(ws, "crm:4") == customer_of(ws, "crm:4d")

    first, last = people[0]
    (tmp_path / "web2.csv").write_text(f"id,first,last,email,num\nw1,{first},{last},,\n",
                                       encoding="utf-8")
    ws.ingest()
    assert ws.identify().mode == "incremental"
    assert calls["tf"] > 0
    ws.close()
