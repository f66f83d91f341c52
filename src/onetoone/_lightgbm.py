"""LightGBM, imported on first use (the ``models`` extra), for every model that boosts trees."""

from __future__ import annotations

import os
from typing import Any

from onetoone.errors import ModelError


def lightgbm(needed_by: str) -> Any:
    """The ``lightgbm`` module; one sentence naming ``needed_by`` when it is not installed."""
    # OpenMP threads that sleep at barriers instead of spinning (unless the user chose): on a
    # machine whose cores are busy with other work, spinning threads made the boosting 2-3
    # times slower with 2 threads than with 1; idle, the difference is small. Read by the
    # OpenMP runtime when LightGBM loads it, so it is set before the first import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import lightgbm as module
    except ImportError:  # pragma: no cover - depends on the environment
        raise ModelError(f"{needed_by} needs LightGBM.",
                         hint="pip install 'onetoone[models]'.") from None
    return module
