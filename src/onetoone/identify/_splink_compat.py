"""Every use of Splink internals, in one place (written for Splink 5.0;
``tests/identify/test_splink_compat.py`` fails, naming the Splink version and the internal,
when an upgrade moves or changes one of them).

The identify code reaches past Splink's public API for these, and only through this module:

* ``splink.internals.expectation_maximisation.populate_m_u_from_lookup(fixed, level, name,
  lookup)``, the function each maximisation step calls to set a level's new m and u
  (:func:`floored_em`): Splink 5 refuses an m or u below 1e-6 (an m of exactly 0 is what a
  level that no pair of a training block reaches gets) and the whole session then fails, so
  the proportions are floored before Splink validates them. It is replaced only while
  :func:`floored_em` is entered (training, :func:`._training.train`), and restored after.
* ``Linker._settings_obj`` (the linker's model), for its ``comparisons``
  (:func:`comparisons`), its ``_probability_two_random_records_match``, read and set
  (:func:`prior`, :func:`set_prior`: the prior when no pair agrees on the strict rule, and
  the person-only probability of the vetoes), and its ``_term_frequency_columns`` with each
  column's ``unquote().name`` and ``unquote().tf_name`` (:func:`term_frequency_columns`: an
  incremental run registers the whole stored input's term frequencies).
* ``ComparisonLevel._u_probability`` (:func:`raw_u_probability`): the u as estimated, where
  the public ``u_probability`` falls back on Splink's generic default for a level random
  pairs never reached, and ``ComparisonLevel._is_else_level`` (:func:`is_else_level`): the
  "else" level of an address field keeps a movers' m, and an unseen level gets its u.

Nothing else in ``onetoone`` names a private Splink attribute. The rest of what identify
uses is public (``Linker``, ``SettingsCreator``, ``DuckDBAPI``, the comparison libraries,
``linker.training`` / ``inference`` / ``table_management`` / ``misc``, and the levels'
``m_probability``, ``u_probability``, ``is_null_level``, ``comparison_vector_value``,
``label_for_charts``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: Module and function :func:`floored_em` replaces while it is entered.
EM_MODULE = "splink.internals.expectation_maximisation"
EM_HOOK = "populate_m_u_from_lookup"

_lock = threading.Lock()
_depth = 0
_original: Any = None


@contextmanager
def floored_em(floor: float) -> Iterator[None]:
    """While entered (or around a function it decorates), Splink's expectation-maximisation
    floors m and u at ``floor`` instead of failing.

    Splink 5 refuses an m of exactly 0, which a level that no pair of a training block
    reaches (or whose pairs all have a negligible match probability) produces; the session
    then fails as a whole. The floor is applied to the proportions Splink computes, before
    they are validated. Nothing is changed when Splink's internals move (the failure is then
    caught per session). Entries nest and may overlap across threads: the first installs the
    floor (with its ``floor``), the last out restores Splink's function; meanwhile any
    expectation-maximisation in the process is floored, as it was when the floor was
    installed for good.
    """
    global _depth, _original
    try:
        from splink.internals import expectation_maximisation as em
    except ImportError:  # pragma: no cover - another Splink layout
        yield
        return
    if not hasattr(em, EM_HOOK):  # pragma: no cover - another Splink layout
        yield
        return
    with _lock:
        if _depth == 0:
            original = getattr(em, EM_HOOK)

            def floored(fixed: Any, level: Any, name: str, lookup: dict[str, Any]) -> None:
                for record in lookup.get(name, {}).values():
                    for key in ("m_probability", "u_probability"):
                        value = record.get(key)
                        if isinstance(value, float | int) and value < floor:
                            record[key] = floor
                original(fixed, level, name, lookup)

            _original = original
            setattr(em, EM_HOOK, floored)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                setattr(em, EM_HOOK, _original)
                _original = None


def comparisons(linker: Any) -> list[Any]:
    """The linker's comparisons (``Linker._settings_obj.comparisons``), as the model holds
    them: setting a level's m or u changes the model."""
    return linker._settings_obj.comparisons


def prior(linker: Any) -> float:
    """The linker's prior, λ (``_settings_obj._probability_two_random_records_match``)."""
    return linker._settings_obj._probability_two_random_records_match


def set_prior(linker: Any, value: float) -> None:
    """Set the linker's prior, λ (see :func:`prior`)."""
    linker._settings_obj._probability_two_random_records_match = value


def term_frequency_columns(linker: Any) -> list[tuple[str, str]]:
    """(column, its term-frequency column) of each term-frequency adjusted comparison input
    (``_settings_obj._term_frequency_columns``), in Splink's order."""
    return [(column.unquote().name, column.unquote().tf_name)
            for column in linker._settings_obj._term_frequency_columns]


def raw_u_probability(level: Any) -> Any:
    """A level's u as estimated (``_u_probability``): the ``u_probability`` property falls
    back on Splink's generic default u (1 in 100 or 1 in 16), which would make a level that
    random pairs never reach (a user name equal but for dots) count *against* a match."""
    return getattr(level, "_u_probability", level.u_probability)


def is_else_level(level: Any) -> bool | None:
    """Whether a level is its comparison's "else" level (``_is_else_level``); Splink's
    property is truthy or None."""
    return level._is_else_level
