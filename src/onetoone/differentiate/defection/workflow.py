"""The scoring step's defection part: needs segments, defection risk, monitor, in one call.

:class:`~onetoone.differentiate.scores.Scores` (``onetoone score``) calls
:func:`score_defection_and_needs` after value scoring, so the monitor sees CLV and value tiers.
A step that cannot run (too little history, one class, too few customers for segments) is
reported in ``notes`` and leaves the value scores intact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from onetoone.differentiate.defection.monitor import MonitorResult, update_monitor
from onetoone.differentiate.defection.scoring import (
    DefectionResult,
    score_defection,
    write_defection,
)
from onetoone.differentiate.settings import DefectionSettings, NeedsSettings
from onetoone.errors import ModelError
from onetoone.progress import Progress, silent, within
from onetoone.store import frame_view

UNSEGMENTED = "unsegmented"


@dataclass
class DifferentiateRun:
    defection: DefectionResult | None = None
    needs: Any = None
    monitor: MonitorResult | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def alert(self) -> str | None:
        return self.monitor.alert if self.monitor else None


#: Share of this step's time taken by each part (measured on the demo company at 1 M people),
#: for the progress estimate: needs, defection (training set to reasons), writing, monitor.
_SHARES = {"needs": 0.08, "defection": 0.79, "writing": 0.12}


def score_defection_and_needs(store: Any, as_of: Any, needs: NeedsSettings,
                              defection: DefectionSettings,
                              progress: Progress | None = None) -> DifferentiateRun:
    """Needs segments, then defection risk, both merged into customer_scores; then the monitor.

    ``progress`` is told each part and the fraction of this step done.
    """
    from onetoone.differentiate.needs import assign_needs_segments

    tell = progress or silent
    run = DifferentiateRun()
    day = None if as_of is None else pd.Timestamp(as_of).normalize()
    segments = None
    done = 0.0
    if needs.enabled:
        tell("needs segments", done)
        try:
            run.needs = assign_needs_segments(store, day, needs)
            segments = run.needs.assignments
            run.notes.extend(run.needs.notes)
        except ModelError as exc:
            run.notes.append(f"No needs segments: {exc.user_message()}")
    done += _SHARES["needs"]
    if defection.enabled:
        try:
            run.defection = score_defection(
                store, day, defection, progress=within(tell, done, done + _SHARES["defection"]))
            run.notes.extend(run.defection.notes)
        except ModelError as exc:
            run.notes.append(f"No defection risk: {exc.user_message()}")
    done += _SHARES["defection"]
    if run.defection is None and segments is None:
        return run
    tell("writing defection and needs", done)
    if run.defection is not None:
        result = run.defection
    else:  # segments only: write them with an empty defection result
        return _write_segments_only(store, day, segments, run)
    extra = None
    if segments is not None:
        extra = pd.DataFrame({"needs_segment": segments})
    write_defection(store, result, extra=extra, fill={"needs_segment": UNSEGMENTED})
    tell("defection monitor", done + _SHARES["writing"])
    run.monitor = update_monitor(store, result.as_of, defection)
    run.notes.extend(run.monitor.notes)
    return run


def _write_segments_only(store: Any, day: Any, segments: pd.Series,
                         run: DifferentiateRun) -> DifferentiateRun:
    import json

    con = getattr(store, "con", store)
    as_of = (day or pd.Timestamp(run.needs.as_of)).date()
    frame = pd.DataFrame({"customer_id": segments.index.astype(str),
                          "patch": [json.dumps({"needs_segment": s}) for s in segments]})
    with frame_view(con, "_needs_patch", frame):
        con.execute("UPDATE customer_scores SET scores = json_merge_patch(coalesce(scores, "
                    "'{}'), p.patch::JSON) FROM _needs_patch p WHERE customer_scores.customer_id "
                    "= p.customer_id AND customer_scores.as_of = ?", [as_of])
    return run
