"""The scores of one customer base (``Workspace.scores``): value, needs and defection risk.

:meth:`Scores.run` is ``onetoone score``: value of every customer as of a date (the BTYD
models of :mod:`onetoone.differentiate.value`), then needs segments, defection risk with
reasons and the mass-defection monitor (:mod:`onetoone.differentiate.defection`), all merged
into ``customer_scores``, one row per customer and as-of date (re-scoring replaces).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from onetoone.progress import Progress, silent, within

if TYPE_CHECKING:
    from onetoone.differentiate.defection import DifferentiateRun
    from onetoone.differentiate.settings import DefectionSettings, NeedsSettings, ValueSettings
    from onetoone.differentiate.value import ValueResult
    from onetoone.store import Store

#: Share of ``run``'s time taken by value scoring, the rest by needs, defection and the monitor
#: (measured on the demo company at 1 M people), for the progress estimate.
VALUE_SHARE = 0.34


class Scores:
    """Value, needs and defection scores, computed from and written to one store."""

    def __init__(self, store: Store, value: ValueSettings, defection: DefectionSettings,
                 needs: NeedsSettings, timezone: str) -> None:
        self.store = store
        self.value_settings = value
        self.defection_settings = defection
        self.needs_settings = needs
        self.timezone = timezone

    def run(self, as_of: Any = None, *, calibration_end: Any = None, write: bool = True,
            progress: Progress | None = None) -> ValueResult:
        """Value of every customer as of ``as_of`` (default: the last transaction day); with
        ``write``, stored, and needs, defection and the monitor follow (:meth:`defection`).
        ``progress`` is told each part and the fraction done."""
        from onetoone.differentiate._value_io import (
            load_customers,
            load_transactions,
            write_scores,
        )
        from onetoone.differentiate.value import ScoringError, score_value

        tell = progress or silent
        value_share = VALUE_SHARE if write else 1.0
        tell("value: reading transactions", 0.0)
        customers = load_customers(self.store)
        if not customers:
            raise ScoringError("There is no customer to score.",
                               hint="Run 'onetoone identify' after ingesting.")
        tx = load_transactions(self.store, self.value_settings, self.timezone)
        tell("value: fitting and scoring", 0.3 * value_share)
        result = score_value(tx, customers, self.value_settings, as_of,
                             calibration_end=calibration_end)
        if write:
            tell("value: writing scores", 0.85 * value_share)
            write_scores(self.store, result)
            run = self.defection(result.as_of, progress=within(tell, value_share, 1.0))
            result.notes.extend(run.notes)
        tell("done", 1.0)
        return result

    def defection(self, as_of: Any = None, *,
                  progress: Progress | None = None) -> DifferentiateRun:
        """Needs segments, defection risk with reasons and the mass-defection monitor, merged
        into ``customer_scores`` (see docs/defection-and-needs.md)."""
        from onetoone.differentiate.defection import score_defection_and_needs

        return score_defection_and_needs(self.store, as_of, self.needs_settings,
                                         self.defection_settings, progress=progress)

    def latest_as_of(self) -> Any:
        """The as-of date scored last (not the latest date: an older one may be re-scored)."""
        from onetoone.differentiate._value_io import latest_as_of

        return latest_as_of(self.store)
