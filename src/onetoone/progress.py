"""How a long step tells its caller how far it is: one signature for every step."""

from __future__ import annotations

from collections.abc import Callable

#: Told the part of the step that runs (words for a person) and the fraction of the whole
#: step done, 0 to 1.
Progress = Callable[[str, float], None]


def silent(_part: str, _done: float) -> None:
    """A :data:`Progress` that tells no one."""


def within(progress: Progress, start: float, end: float) -> Progress:
    """The progress of a part that spans ``start``..``end`` of its caller's step."""

    def tell(part: str, done: float) -> None:
        progress(part, start + (end - start) * min(max(done, 0.0), 1.0))

    return tell
