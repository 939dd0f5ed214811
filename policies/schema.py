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


class Promotion(_Strict):
    """What counts as better when the challenger meets the champion."""

    metric: Metric = "roc_auc"
    min_improvement: float = Field(default=0.0, ge=0)


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

    @field_validator("training_schedule")
    @classmethod
    def _schedule_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("use null for a manual schedule, not an empty string")
        return value

    @property
    def metric_higher_is_better(self) -> bool:
        return self.promotion.metric not in LOWER_IS_BETTER
