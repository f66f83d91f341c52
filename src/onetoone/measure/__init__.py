"""Measure: control groups, lift with confidence intervals, uplift models, A/B tests, KPIs.
See docs/service.md and docs/measurement.md."""

from onetoone.measure.lift import Lift, lift
from onetoone.measure.uplift import UpliftModel

__all__ = ["Lift", "UpliftModel", "lift"]
