"""Measure: control groups, lift with confidence intervals, simulations. See docs/service.md."""

from onetoone.measure.lift import Lift, lift

__all__ = ["Lift", "lift"]
