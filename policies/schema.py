"""Typed schema of a model's promotion policy (one YAML file per model)."""

from __future__ import annotations

import re
import warnings
from typing import Annotated, Any, Literal

from croniter import CroniterError, croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MODEL_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,62}$"

Flavor = Literal[
    "lightgbm_classifier",
    "lightgbm_regressor",
    "sklearn_random_forest",
    "sklearn_random_forest_regressor",
    "sklearn_logistic_regression",
    "sklearn_ridge",
    "sklearn_hist_gradient_boosting_classifier",
    "sklearn_hist_gradient_boosting_regressor",
]
Task = Literal["binary", "multiclass", "regression"]
Metric = Literal[
    "accuracy", "roc_auc", "log_loss", "f1", "precision", "recall", "macro_f1", "rmse", "mae", "r2"
]

# Metrics where a smaller value is the better model.
LOWER_IS_BETTER: frozenset[str] = frozenset({"log_loss", "rmse", "mae"})

# The metrics that measure each task's models.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("accuracy", "roc_auc", "log_loss", "f1", "precision", "recall"),
    "multiclass": ("accuracy", "macro_f1", "log_loss"),
    "regression": ("rmse", "mae", "r2"),
}

# Each flavor's estimator (an import path) and the tasks it can learn.
FLAVORS: dict[str, tuple[str, tuple[str, ...]]] = {
    "lightgbm_classifier": ("lightgbm.LGBMClassifier", ("binary", "multiclass")),
    "lightgbm_regressor": ("lightgbm.LGBMRegressor", ("regression",)),
    "sklearn_random_forest": ("sklearn.ensemble.RandomForestClassifier", ("binary", "multiclass")),
    "sklearn_random_forest_regressor": ("sklearn.ensemble.RandomForestRegressor", ("regression",)),
    "sklearn_logistic_regression": (
        "sklearn.linear_model.LogisticRegression",
        ("binary", "multiclass"),
    ),
    "sklearn_ridge": ("sklearn.linear_model.Ridge", ("regression",)),
    "sklearn_hist_gradient_boosting_classifier": (
        "sklearn.ensemble.HistGradientBoostingClassifier",
        ("binary", "multiclass"),
    ),
    "sklearn_hist_gradient_boosting_regressor": (
        "sklearn.ensemble.HistGradientBoostingRegressor",
        ("regression",),
    ),
}
# Metrics bounded to [0, 1] (a performance floor outside that range can never be crossed).
BOUNDED_METRICS: frozenset[str] = frozenset(
    {"accuracy", "roc_auc", "f1", "precision", "recall", "macro_f1"}
)
IMPORT_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"
FACTORY_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
MAX_TRIALS = 500

# Airflow's cron presets (the ones that repeat), resolved to the expressions Airflow uses.
CRON_PRESETS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}


def cron_expression(value: str) -> str:
    """The cron expression of a schedule given as an expression or preset; ValueError if invalid."""
    expression = CRON_PRESETS.get(value.strip(), value.strip())
    if not expression:
        raise ValueError("use null for no schedule, not an empty string")
    try:
        croniter(expression)
    except (CroniterError, ValueError) as error:
        presets = ", ".join(CRON_PRESETS)
        raise ValueError(
            f"{value!r} is not a cron expression (minute hour day month weekday) or one of {presets}"
            f" ({error})"
        ) from None
    return expression


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


HyperparameterValue = int | float | str | bool | None


class ModelSpec(_Strict):
    """The estimator at the end of the pipeline and its hyperparameters.

    Exactly one of `flavor` (a shorthand), `estimator` (an import path) or `factory`
    (`package.module:function` returning an unfitted estimator or pipeline). The estimator's
    parameters are checked by `workflow.estimators` (it imports the estimator, so not at parse).
    """

    task: Task = "binary"
    flavor: Flavor | None = None
    estimator: str | None = None
    factory: str | None = None
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict, description="Numbers, text, true/false or null, by name."
    )
    seed: int = Field(default=0, description="random_state of the estimator (when not set).")
    trusted_types: list[str] = Field(
        default_factory=list,
        description="Types (or modules) beyond scikit-learn, LightGBM and NumPy that the saved "
        "model may contain.",
    )
    validation_gate: float | None = Field(
        default=None,
        description="Least promotion metric on the validation split (most, for lower-is-better "
        "metrics) a candidate needs to become challenger.",
    )

    @field_validator("hyperparameters")
    @classmethod
    def _scalar_values(cls, values: dict[str, Any]) -> dict[str, Any]:
        bad = [
            f"{name} ({type(value).__name__})"
            for name, value in values.items()
            if value is not None and not isinstance(value, int | float | str | bool)
        ]
        if bad:
            raise ValueError(
                f"values must be numbers, text, true/false or null, not: {', '.join(bad)}"
            )
        return values

    @field_validator("estimator")
    @classmethod
    def _an_import_path(cls, path: str | None) -> str | None:
        if path is not None and not re.fullmatch(IMPORT_PATH, path):
            raise ValueError(
                f"{path!r} is not an import path of a class (e.g. lightgbm.LGBMRegressor)"
            )
        return path

    @field_validator("factory")
    @classmethod
    def _a_function_path(cls, path: str | None) -> str | None:
        if path is not None and not re.fullmatch(FACTORY_PATH, path):
            raise ValueError(f"{path!r} is not package.module:function")
        return path

    @field_validator("trusted_types")
    @classmethod
    def _dotted_names(cls, names: list[str]) -> list[str]:
        bad = [name for name in names if not re.fullmatch(r"[A-Za-z_][\w.]*[\w]", name)]
        if bad:
            raise ValueError(f"not a type or module name: {', '.join(map(repr, bad))}")
        return names

    @model_validator(mode="after")
    def _one_estimator_fit_for_the_task(self) -> ModelSpec:
        given = [k for k in ("flavor", "estimator", "factory") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of 'flavor', 'estimator' (import path) or 'factory' "
                f"(package.module:function), got {', '.join(given) or 'none'}"
            )
        if self.flavor is not None and self.task not in FLAVORS[self.flavor][1]:
            fitting = [f for f, (_, tasks) in FLAVORS.items() if self.task in tasks]
            raise ValueError(
                f"flavor: {self.flavor} does not learn a {self.task} task; use one of "
                f"{', '.join(fitting)}"
            )
        return self

    @property
    def import_path(self) -> str:
        """What builds the estimator: the flavor's or the given import path, or the factory."""
        if self.flavor is not None:
            return FLAVORS[self.flavor][0]
        return self.estimator or self.factory or ""


class IntRange(_Strict):
    """An integer hyperparameter searched in [low, high]."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(default=1, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError("log needs low ≥ 1 and step 1")
        return self


class FloatRange(_Strict):
    """A real hyperparameter searched in [low, high], on a log scale with `log`."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> FloatRange:
        if self.low >= self.high:
            raise ValueError(f"low {self.low} must be below high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError("log needs low > 0")
        return self


class Choices(_Strict):
    """A hyperparameter searched among listed values."""

    type: Literal["categorical"]
    choices: list[HyperparameterValue] = Field(min_length=1)


SearchRange = Annotated[IntRange | FloatRange | Choices, Field(discriminator="type")]


class Tuning(_Strict):
    """An Optuna search over hyperparameters before the final fit, scored by k-fold
    cross-validation on the training split with the promotion metric."""

    search_space: dict[str, SearchRange] = Field(min_length=1)
    trials: int = Field(default=20, gt=0, le=MAX_TRIALS)
    timeout_minutes: float | None = Field(default=None, gt=0)
    pruning: bool = False
    folds: int = Field(default=3, ge=2, le=10)
    seed: int = 0


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
    identities: dict[str, str] = Field(
        default_factory=dict,
        description="Airflow user name -> Slack user id (U…) or the email Slack knows them by; "
        "separation of duties compares the Slack users the run's triggers map to.",
    )
    identity_email_domain: str | None = Field(
        default=None,
        description="Airflow users not in `identities` are looked up in Slack (users.lookupByEmail) "
        "as <user>@<domain>; an Airflow user found by neither cannot be told apart, so with "
        "separation of duties nobody can approve that run.",
    )

    @field_validator("identities")
    @classmethod
    def _slack_users(cls, identities: dict[str, str]) -> dict[str, str]:
        bad = [
            user
            for user, target in identities.items()
            if not re.fullmatch(r"[UW][A-Z0-9]{2,20}|[^@\s]+@[^@\s]+\.[^@\s]+", target)
        ]
        if bad:
            raise ValueError(
                f"{', '.join(bad)}: map each Airflow user to a Slack user id (U024BE7LH) or an email"
            )
        return identities

    @field_validator("identity_email_domain")
    @classmethod
    def _a_domain(cls, domain: str | None) -> str | None:
        if domain is not None and not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", domain):
            raise ValueError(f"{domain!r} is not a domain (e.g. example.com)")
        return domain

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


class PredictionLogMasking(_Strict):
    """Feature columns the serving gateway's prediction log keeps hashed, or does not keep."""

    hashed_features: list[str] = Field(
        default_factory=list,
        description="Stored as a keyed SHA-256 (equal values stay equal, the value is not kept).",
    )
    unlogged_features: list[str] = Field(
        default_factory=list, description="Not stored in the log at all."
    )

    @model_validator(mode="after")
    def _disjoint(self) -> PredictionLogMasking:
        both = sorted(set(self.hashed_features) & set(self.unlogged_features))
        if both:
            raise ValueError(f"listed as both hashed and unlogged: {', '.join(both)}")
        return self


class Rollout(_Strict):
    """How an approved challenger meets live traffic before it becomes champion."""

    mode: Literal["none", "canary", "shadow"] = "none"
    traffic_steps: list[float] = Field(default_factory=lambda: [0.05, 0.25, 0.5])
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    expected_effect: float = Field(
        default=0.03,
        gt=0,
        lt=1,
        description="How far beyond the margin an accuracy drop lies that the revert test catches "
        "fastest (its mixture scale); changes the speed of verdicts, never their error rates.",
    )
    min_labeled_per_step: int = Field(default=500, gt=0)
    max_step_minutes: float = Field(default=360, gt=0)
    on_timeout: Literal["revert", "hold"] = "revert"
    check_interval_seconds: float = Field(default=60, gt=0)
    max_error_rate: float = Field(default=0.02, ge=0, le=1)
    max_p99_latency_ms: float = Field(default=500, gt=0)
    min_agreement: float | None = Field(default=None, gt=0, lt=1)
    guard_window_minutes: float = Field(default=0, ge=0, description="0: no guard window.")
    guard_margin: float = Field(default=0.01, ge=0, lt=1)
    margin: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Non-inferiority margin: how much worse than the champion a challenger may be "
        "and still leave its rollout as champion. Promotion needs the anytime-valid lower bound "
        "of (challenger - champion) above -margin, a revert its upper bound below -margin. "
        "null: classifiers 0.015 accuracy points, regressors a 0.10 relative rise of the mean "
        "squared error.",
    )

    @field_validator("traffic_steps")
    @classmethod
    def _increasing_shares(cls, steps: list[float]) -> list[float]:
        if not steps or any(not 0 < s <= 1 for s in steps) or steps != sorted(set(steps)):
            raise ValueError(f"must be strictly increasing shares in (0, 1], got {steps}")
        return steps


class RollbackRules(_Strict):
    """The preflight of rollback_<model>: both versions scored on the most recent labeled data
    (the prediction log, else the source's newest window) before anything moves."""

    margin: float = Field(
        default=0.02,
        ge=0,
        description="How much worse than the champion a rollback target may score on recent data "
        "(in promotion.metric) before the rollback refuses it without force.",
    )
    min_rows: int = Field(
        default=200,
        gt=0,
        description="Labeled rows of recent data needed to score both versions: the gateway's "
        "prediction log is scored when this many of its labeled requests logged every feature, "
        "else the source's newest window; with fewer there, the rollback goes ahead unscored, "
        "with a warning.",
    )


class PerformanceTrigger(_Strict):
    """Retrain when the champion's live metric is shown to be below a floor or to have dropped."""

    floor: float | None = Field(default=None, description="Absolute floor of the live metric.")
    max_drop: float | None = Field(
        default=None, ge=0, description="Largest drop from the level the champion was promoted at."
    )
    min_labeled: int = Field(default=500, gt=0)
    lookback_hours: float = Field(default=7 * 24, gt=0)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)

    @model_validator(mode="after")
    def _a_bound(self) -> PerformanceTrigger:
        if self.floor is None and self.max_drop is None:
            raise ValueError("give a floor, a max_drop, or both")
        return self


class DataVolumeTrigger(_Strict):
    """Retrain when enough new labeled rows arrived since the champion's data ended."""

    min_new_rows: int = Field(gt=0)


class DriftTrigger(_Strict):
    """Retrain when recent inputs are shown to differ from the champion's training profile."""

    features: list[str] | None = Field(default=None, description="null: every feature.")
    source: Literal["prediction_log", "source"] = "prediction_log"
    window_hours: float = Field(default=24, gt=0)
    min_rows: int = Field(default=500, gt=0)
    alpha: float = Field(default=0.05, gt=0, lt=0.5, description="Family-wise false-alarm rate.")
    min_psi: float = Field(
        default=0.02, ge=0, description="Effect-size floor of a drifted feature."
    )


class Triggers(_Strict):
    """When train_<model> runs: a schedule, and signals that the monitor checks."""

    schedule: str | None = Field(
        default=None, description="Cron expression or preset for train_<model>; null: none."
    )
    check_every: str = Field(default="@hourly", description="Schedule of monitor_<model>.")
    cooldown_hours: float = Field(default=24, ge=0)
    max_per_day: int = Field(default=2, gt=0)
    performance: PerformanceTrigger | None = None
    data_volume: DataVolumeTrigger | None = None
    drift: DriftTrigger | None = None

    @field_validator("schedule", "check_every")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            cron_expression(value)
        return value

    @property
    def monitored(self) -> bool:
        """Whether any signal is configured, so that monitor_<model> has something to check."""
        return any(t is not None for t in (self.performance, self.data_volume, self.drift))


class Policy(_Strict):
    """One model's promotion policy."""

    model_name: str = Field(pattern=MODEL_NAME_PATTERN)
    description: str = ""
    owner: str = ""
    training_schedule: str | None = Field(
        default=None,
        description="Deprecated: use triggers.schedule. Cron expression or preset; null: manual.",
    )
    source: Source
    validation: Validation = Validation()
    model: ModelSpec
    tuning: Tuning | None = None
    promotion: Promotion = Promotion()
    approval: Approval = Approval()
    rollout: Rollout = Rollout()
    prediction_log: PredictionLogMasking = PredictionLogMasking()
    triggers: Triggers = Triggers()
    rollback: RollbackRules = RollbackRules()

    @field_validator("training_schedule")
    @classmethod
    def _schedule_valid(cls, value: str | None) -> str | None:
        if value is not None:
            cron_expression(value)
            warnings.warn(
                "training_schedule is deprecated: move it to triggers.schedule",
                DeprecationWarning,
                stacklevel=2,
            )
        return value

    @model_validator(mode="after")
    def _one_schedule_and_known_drift_features(self) -> Policy:
        if self.training_schedule is not None and self.triggers.schedule is not None:
            raise ValueError(
                "training_schedule and triggers.schedule both set; keep triggers.schedule only"
            )
        drift = self.triggers.drift
        if drift is not None and drift.features is not None:
            unknown = [f for f in drift.features if f not in self.source.features.all]
            if unknown or not drift.features:
                raise ValueError(
                    "triggers.drift.features: must be features of source.features, not "
                    + (", ".join(unknown) or "an empty list (use null for all)")
                )
        performance = self.triggers.performance
        bounded = self.promotion.metric in BOUNDED_METRICS
        if performance is not None and performance.floor is not None and bounded:
            if not 0 <= performance.floor <= 1:
                raise ValueError(
                    f"triggers.performance.floor: {self.promotion.metric} lies in [0, 1], "
                    f"got {performance.floor}"
                )
        return self

    @model_validator(mode="before")
    @classmethod
    def _default_metric_of_the_task(cls, data: object) -> object:
        """A policy that names no promotion metric is measured by its task's first one."""
        if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
            return data
        task = data["model"].get("task", "binary")
        promotion = data.get("promotion") or {}
        if task in TASK_METRICS and isinstance(promotion, dict) and "metric" not in promotion:
            return {**data, "promotion": {**promotion, "metric": TASK_METRICS[task][0]}}
        return data

    @model_validator(mode="after")
    def _metric_and_calibration_fit_the_task(self) -> Policy:
        task, metric = self.model.task, self.promotion.metric
        if metric not in TASK_METRICS[task]:
            raise ValueError(
                f"promotion.metric: {metric} does not measure a {task} model; use one of "
                f"{', '.join(TASK_METRICS[task])}"
            )
        if task == "regression" and self.promotion.calibration is not None:
            raise ValueError(
                "promotion.calibration: a regression model has no probabilities to calibrate; "
                "remove it"
            )
        gate = self.model.validation_gate
        if gate is not None and metric in BOUNDED_METRICS and not 0 <= gate <= 1:
            raise ValueError(f"model.validation_gate: {metric} lies in [0, 1], got {gate}")
        return self

    @model_validator(mode="after")
    def _tuned_hyperparameters_are_not_also_fixed(self) -> Policy:
        if self.tuning is None:
            return self
        both = sorted(set(self.tuning.search_space) & set(self.model.hyperparameters))
        if both:
            raise ValueError(
                f"tuning.search_space: {', '.join(both)} also fixed in model.hyperparameters; "
                "keep each in one place"
            )
        return self

    @model_validator(mode="after")
    def _masked_columns_are_features(self) -> Policy:
        masked = self.prediction_log.hashed_features + self.prediction_log.unlogged_features
        unknown = [column for column in masked if column not in self.source.features.all]
        if unknown:
            raise ValueError(f"prediction_log: not features of the model: {', '.join(unknown)}")
        return self

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
    def training_cron(self) -> str | None:
        """The cron expression train_<model> runs on (triggers.schedule, else the deprecated
        training_schedule); None: no schedule."""
        schedule = self.triggers.schedule or self.training_schedule
        return None if schedule is None else cron_expression(schedule)

    @property
    def retrain_asset_uri(self) -> str:
        """The Asset monitor_<model> updates when a trigger fires; it starts train_<model>."""
        return f"model-registry://{self.model_name}/retrain"

    @property
    def task(self) -> str:
        """What the model predicts: binary, multiclass or regression (model.task)."""
        return self.model.task

    @property
    def metric_higher_is_better(self) -> bool:
        return self.promotion.metric not in LOWER_IS_BETTER
