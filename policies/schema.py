"""Typed schema of a model's promotion policy (one YAML file per model)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MODEL_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,62}$"

Flavor = Literal["lightgbm_classifier", "sklearn_random_forest"]
Metric = Literal["accuracy", "roc_auc", "log_loss", "f1", "precision", "recall"]

# Metrics where a smaller value is the better model.
LOWER_IS_BETTER: frozenset[str] = frozenset({"log_loss"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureColumns(_Strict):
    """Feature columns by kind; the kind decides the preprocessing inside the model pipeline."""

    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _at_least_one_and_distinct(self) -> FeatureColumns:
        names = self.numeric + self.categorical
        if not names:
            raise ValueError("list at least one numeric or categorical feature")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"columns listed twice: {', '.join(duplicates)}")
        return self

    @property
    def all(self) -> list[str]:
        return self.numeric + self.categorical


class Source(_Strict):
    """Where training and holdout rows come from: one SQL table or query, sliced by time."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; ${VAR} is replaced from the environment when the task runs.",
    )
    conn_id: str | None = Field(default=None, description="Airflow connection id of the database.")
    table: str | None = None
    query: str | None = None
    time_column: str
    target: str
    features: FeatureColumns
    training_window_days: int = Field(gt=0)
    holdout_days: int = Field(gt=0)

    @model_validator(mode="after")
    def _exactly_one_location_and_one_selection(self) -> Source:
        if (self.url is None) == (self.conn_id is None):
            raise ValueError("give exactly one of 'url' or 'conn_id'")
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of 'table' or 'query'")
        if self.table is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", self.table):
            raise ValueError(
                f"table {self.table!r} is not a plain (optionally schema-qualified) name"
            )
        if self.target in self.features.all or self.time_column in self.features.all:
            raise ValueError("the target and the time column cannot also be features")
        return self


class Validation(_Strict):
    """Checks an extracted window must pass before any model is trained on it."""

    min_rows: int = Field(default=500, gt=0)
    max_missing_share: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Largest share of missing values allowed in any feature.",
    )


class ModelSpec(_Strict):
    """The estimator at the end of the pipeline and its hyperparameters."""

    flavor: Flavor
    hyperparameters: dict[str, int | float | str | bool | None] = Field(default_factory=dict)


class SliceRule(_Strict):
    """A per-slice guardrail: no value (categorical) or bin (numeric) may regress too far."""

    column: str
    kind: Literal["categorical", "numeric"]
    bins: list[float] = Field(default_factory=list, description="Inner bin edges (numeric).")
    max_regression: float = Field(ge=0)
    min_rows: int = Field(default=200, gt=0)
    allow_insufficient: bool = False


class CalibrationRule(_Strict):
    """The challenger's calibration may not be worse than the champion's by more than a margin."""

    measure: Literal["brier", "ece"] = "brier"
    max_worsening: float = Field(ge=0)
    bins: int = Field(default=10, ge=2)


class Promotion(_Strict):
    """What counts as better when the challenger meets the champion."""

    metric: Metric = "roc_auc"
    mode: Literal["superiority", "non_inferiority"] = "superiority"
    min_improvement: float = Field(default=0.0, ge=0)
    margin: float = Field(default=0.0, ge=0, description="Non-inferiority margin.")
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    resamples: int = Field(default=1000, ge=100, le=100_000)
    seed: int = 0
    slices: list[SliceRule] = Field(default_factory=list)
    calibration: CalibrationRule | None = None
    max_latency_ms_per_row: float | None = Field(default=None, gt=0)
    max_size_bytes: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _mode_fields(self) -> Promotion:
        if self.mode == "superiority" and self.margin:
            raise ValueError("margin applies to mode non_inferiority only; use min_improvement")
        if self.mode == "non_inferiority" and self.min_improvement:
            raise ValueError("min_improvement applies to mode superiority only; use margin")
        for rule in self.slices:
            if (rule.kind == "numeric") != bool(rule.bins):
                raise ValueError(
                    f"slices: {rule.column!r}: numeric slices need bins, categorical none"
                )
        return self


class Approval(_Strict):
    """Who must approve a promotion in Slack before any alias moves."""

    required: bool = False
    channel: str = ""
    approvers: list[str] = Field(default_factory=list, description="Slack user ids or names.")
    quorum: int = Field(default=1, ge=1)
    timeout_minutes: int = Field(default=24 * 60, gt=0)
    separation_of_duties: bool = True

    @model_validator(mode="after")
    def _approvers_when_required(self) -> Approval:
        if self.required:
            if not self.channel:
                raise ValueError("channel: required when approval.required is true")
            if len(self.approvers) < self.quorum:
                raise ValueError(
                    f"approvers: {len(self.approvers)} listed, fewer than quorum {self.quorum}"
                )
        return self


class Rollout(_Strict):
    """How an approved challenger meets live traffic before it becomes champion."""

    mode: Literal["none", "canary", "shadow"] = "none"
    traffic_steps: list[float] = Field(default_factory=lambda: [0.05, 0.25, 0.5])
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    expected_effect: float = Field(default=0.03, gt=0, lt=1)
    min_labeled_per_step: int = Field(default=500, gt=0)
    max_step_minutes: float = Field(default=360, gt=0)
    on_timeout: Literal["revert", "hold"] = "revert"
    check_interval_seconds: float = Field(default=60, gt=0)
    max_error_rate: float = Field(default=0.02, ge=0, le=1)
    max_p99_latency_ms: float = Field(default=500, gt=0)
    min_agreement: float | None = Field(default=None, gt=0, lt=1)
    guard_window_minutes: float = Field(default=0, ge=0, description="0: no guard window.")
    guard_margin: float = Field(default=0.01, ge=0, lt=1)

    @field_validator("traffic_steps")
    @classmethod
    def _increasing_shares(cls, steps: list[float]) -> list[float]:
        if not steps or any(not 0 < s <= 1 for s in steps) or steps != sorted(set(steps)):
            raise ValueError(f"must be strictly increasing shares in (0, 1], got {steps}")
        return steps


class Policy(_Strict):
    """One model's promotion policy."""

    model_name: str = Field(pattern=MODEL_NAME_PATTERN)
    description: str = ""
    owner: str = ""
    training_schedule: str | None = Field(
        default=None, description="Cron expression or preset for train_<model>; null: manual."
    )
    source: Source
    validation: Validation = Validation()
    model: ModelSpec
    promotion: Promotion = Promotion()
    approval: Approval = Approval()
    rollout: Rollout = Rollout()

    @field_validator("training_schedule")
    @classmethod
    def _schedule_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("use null for a manual schedule, not an empty string")
        return value

    @model_validator(mode="after")
    def _slices_are_features(self) -> Policy:
        unknown = [
            r.column for r in self.promotion.slices if r.column not in self.source.features.all
        ]
        if unknown:
            raise ValueError(
                f"promotion.slices: columns must be features, not {', '.join(unknown)}"
            )
        return self

    @property
    def alias_pool(self) -> str:
        """The Airflow pool (one slot) every alias-moving task of this model runs in."""
        return f"aliases_{self.model_name}"

    @property
    def candidate_asset_uri(self) -> str:
        """The Asset a training run updates when it registers a new `challenger`."""
        return f"model-registry://{self.model_name}/challenger"

    @property
    def rollout_asset_uri(self) -> str:
        """The Asset a promotion run updates when it hands an approved winner to the rollout."""
        return f"model-registry://{self.model_name}/rollout"

    @property
    def metric_higher_is_better(self) -> bool:
        return self.promotion.metric not in LOWER_IS_BETTER
