"""Defection risk: point-in-time training sets, a calibrated LightGBM model with reasons in
words, and the mass-defection monitor. See docs/defection-and-needs.md.

>>> from onetoone.differentiate.defection import DefectionModel, score_defection  # doctest: +SKIP
>>> result = score_defection(ws.store, "2025-12-31", ws.config)                   # doctest: +SKIP
"""

from onetoone.differentiate.defection._features import SILO_FEATURES, compute_features
from onetoone.differentiate.defection._training import (
    DefectionError,
    InsufficientHistoryError,
    SingleClassError,
    TrainingSet,
    build_training_set,
    labels,
    purchase_horizon,
)
from onetoone.differentiate.defection.model import DefectionModel
from onetoone.differentiate.defection.monitor import (
    MonitorResult,
    check_alert,
    monitor_history,
    update_monitor,
)
from onetoone.differentiate.defection.scoring import (
    DefectionResult,
    score_defection,
    write_defection,
)
from onetoone.differentiate.defection.workflow import DifferentiateRun, score_defection_and_needs

__all__ = [
    "SILO_FEATURES",
    "DefectionError",
    "DefectionModel",
    "DefectionResult",
    "DifferentiateRun",
    "InsufficientHistoryError",
    "MonitorResult",
    "SingleClassError",
    "TrainingSet",
    "build_training_set",
    "check_alert",
    "compute_features",
    "labels",
    "monitor_history",
    "purchase_horizon",
    "score_defection",
    "score_defection_and_needs",
    "update_monitor",
    "write_defection",
]
