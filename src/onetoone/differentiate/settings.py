"""``[value]``, ``[defection]`` and ``[needs]``: how customers are told apart by value,
defection risk and needs (documented in docs/value-models.md and docs/defection-and-needs.md)."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from onetoone.settings import Section

ValueModelName = Literal["bgnbd", "paretonbd", "mbgnbd"]
_VALUE_MODELS: tuple[ValueModelName, ...] = get_args(ValueModelName)


class ValueSettings(Section):
    """[value]: lifetime value, model choice and value tiers (see docs/value-models.md)."""

    time_unit: Literal["day", "week", "month"] = "week"
    holdout_weeks: int = Field(default=26, ge=1)
    models: list[ValueModelName] = Field(
        default_factory=lambda: list(_VALUE_MODELS), min_length=1
    )
    min_customers: int = Field(default=30, ge=2)
    min_repeat_customers: int = Field(default=10, ge=2)
    horizon_months: int = Field(default=12, ge=1)
    monthly_discount_rate: float = Field(default=0.01, ge=0, lt=1)
    default_margin: float = Field(default=0.3, ge=-1, le=1)
    cost_to_serve_per_year: float = Field(default=0.0, ge=0)
    exclude_statuses: list[str] = Field(default_factory=lambda: ["cancelled", "canceled"])
    top_share: float = Field(default=0.2, gt=0, lt=1)
    growable_min_purchases_quantile: float = Field(default=0.5, ge=0, le=1)
    growable_max_spend_quantile: float = Field(default=0.5, ge=0, le=1)


class DefectionSettings(Section):
    """[defection]: defection risk, reasons and the mass-defection monitor
    (see docs/defection-and-needs.md)."""

    enabled: bool = True
    kind: Literal["auto", "purchase", "contract"] = "auto"
    horizon_days: int | None = Field(default=None, ge=7)
    horizon_percentile: float = Field(default=0.9, ge=0.5, lt=1)
    min_horizon_days: int = Field(default=30, ge=7)
    max_horizon_days: int = Field(default=365, ge=7)
    cutoffs: int = Field(default=4, ge=1)
    cutoff_step_days: int | None = Field(default=None, ge=7)
    min_training_rows: int = Field(default=50_000, ge=0)
    max_cutoffs: int = Field(default=12, ge=1)
    min_history_days: int = Field(default=90, ge=0)
    exclude_statuses: list[str] = Field(default_factory=lambda: ["cancelled", "canceled"])
    n_estimators: int = Field(default=400, ge=10)
    learning_rate: float = Field(default=0.05, gt=0, le=1)
    num_leaves: int = Field(default=31, ge=2)
    max_training_rows: int = Field(default=400_000, ge=100)
    reasons: int = Field(default=3, ge=1)
    reasons_min_risk: float = Field(default=0.3, ge=0, le=1)
    reasons_exact_max_rows: int = Field(default=20_000, ge=0)
    sentiment_words: dict[str, float] = Field(default_factory=dict)
    alert_threshold: float = Field(default=0.5, gt=0, lt=1)
    monitor_margin: float = Field(default=0.05, ge=0, lt=1)
    seed: int = 0


class NeedsSettings(Section):
    """[needs]: needs-based segments (see docs/defection-and-needs.md)."""

    enabled: bool = True
    lookback_days: int = Field(default=365, ge=7)
    min_segments: int = Field(default=3, ge=2)
    max_segments: int = Field(default=8, ge=2)
    max_categories: int = Field(default=12, ge=1)
    min_customers: int = Field(default=50, ge=10)
    sample_size: int = Field(default=20_000, ge=100)
    match_distance: float = Field(default=1.0, gt=0)
    exclude_statuses: list[str] = Field(default_factory=lambda: ["cancelled", "canceled"])
    seed: int = 0
