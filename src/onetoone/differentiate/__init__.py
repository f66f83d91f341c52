"""Differentiate customers by value, defection risk and needs."""

from __future__ import annotations

from collections.abc import Callable

#: Told which part of scoring runs and the fraction of the whole step done (0 to 1).
ScoreProgress = Callable[[str, float], None]


def silent(_part: str, _done: float) -> None:
    """A :data:`ScoreProgress` that tells no one."""


def within(progress: ScoreProgress, start: float, end: float) -> ScoreProgress:
    """The progress of a part that spans ``start``..``end`` of its caller's step."""

    def tell(part: str, done: float) -> None:
        progress(part, start + (end - start) * min(max(done, 0.0), 1.0))

    return tell
