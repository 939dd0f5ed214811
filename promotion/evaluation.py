"""Champion–challenger evaluation: a verdict with its confidence interval and guardrails.

`evaluate_challenger` is the one function that answers "why was this version (not) promoted?":
plain arrays and a frozen config in, an `EvaluationResult` out. It reads no clock, environment,
registry or file, so a recorded evaluation can be replayed exactly from its inputs and seed.

Predictions are shaped per task (`EvaluationConfig.task`): binary models give the positive
class's probability (1-D), multiclass models an (n, k) matrix of class probabilities with labels
as class indices 0..k-1, regression models their predicted values (1-D).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from policies.schema import TASK_METRICS, Task
from promotion.intervals import IntervalMethod, improvement_interval
from promotion.metrics import (
    METRICS,
    TASKS,
    AucComponents,
    Metric,
    auc_components,
    auc_of_rows,
    brier_score,
    delong_test,
    expected_calibration_error,
    mcnemar_exact,
    metric_value,
    paired_t_test,
    row_outcomes,
    signed_improvement,
)

Verdict = Literal["promote", "reject", "cannot_evaluate"]
Mode = Literal["superiority", "non_inferiority"]
GuardrailStatus = Literal["pass", "fail", "insufficient", "skipped"]

# Metrics whose value on a slice needs positives (recall, F1) or both classes (AUC).
_NEEDS_POSITIVES = frozenset({"recall", "f1"})
_NEEDS_BOTH_CLASSES = frozenset({"roc_auc"})
# How far a row of class probabilities may sum from 1: float32 softmax output is off by ~1e-7,
# unnormalised scores by far more.
_PROBABILITY_SUM_TOLERANCE = 1e-4


class EvaluationConfigError(ValueError):
    """An evaluation config that cannot be used; the message names every bad field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class SliceGuardrail:
    """The challenger may not be worse than the champion by more than `max_regression` on any
    value (categorical) or bin (numeric, `bins` are the inner edges) of `column`.

    A slice with fewer than `min_rows` rows, or without what the metric needs (binary: both
    classes for roc_auc, positives for recall and f1; multiclass: two classes for macro_f1;
    regression: labels that vary for r2), is "insufficient". Insufficient slices fail closed:
    they block promotion, because a regression that cannot be measured has not been ruled out.
    Set `allow_insufficient` to report them without blocking, e.g. for a column with a long tail
    of rare categories.
    """

    column: str
    kind: Literal["categorical", "numeric"]
    max_regression: float
    bins: tuple[float, ...] = ()
    min_rows: int = 200
    allow_insufficient: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "bins", tuple(self.bins))

    def problems(self, where: str) -> list[str]:
        """Every invalid field, each named from `where`."""
        problems = []
        if self.kind not in ("categorical", "numeric"):
            problems.append(f"{where}.kind: must be 'categorical' or 'numeric', got {self.kind!r}")
        if self.kind == "numeric" and not self.bins:
            problems.append(f"{where}.bins: a numeric slice needs at least one bin edge")
        if self.kind == "categorical" and self.bins:
            problems.append(f"{where}.bins: only numeric slices take bin edges")
        if any(not math.isfinite(edge) for edge in self.bins) or list(self.bins) != sorted(
            set(self.bins)
        ):
            problems.append(
                f"{where}.bins: must be finite and strictly increasing, got {self.bins}"
            )
        if not self.max_regression >= 0:
            problems.append(f"{where}.max_regression: must be ≥ 0, got {self.max_regression}")
        if self.min_rows < 1:
            problems.append(f"{where}.min_rows: must be ≥ 1, got {self.min_rows}")
        return problems


@dataclass(frozen=True)
class CalibrationGuardrail:
    """The challenger's Brier score or expected calibration error may exceed the champion's by
    at most `max_worsening`. Classification only; for multiclass models the Brier score sums
    over the classes and the ECE is the top-label one (confidence in the predicted class)."""

    measure: Literal["brier", "ece"]
    max_worsening: float
    bins: int = 10

    def problems(self, where: str) -> list[str]:
        """Every invalid field, each named from `where`."""
        problems = []
        if self.measure not in ("brier", "ece"):
            problems.append(f"{where}.measure: must be 'brier' or 'ece', got {self.measure!r}")
        if not self.max_worsening >= 0:
            problems.append(f"{where}.max_worsening: must be ≥ 0, got {self.max_worsening}")
        if self.bins < 2:
            problems.append(f"{where}.bins: must be ≥ 2, got {self.bins}")
        return problems


@dataclass(frozen=True)
class EvaluationConfig:
    """How a challenger must beat the champion; built from the model's policy.

    `superiority`: the lower confidence bound of the improvement must reach `min_improvement`
    (and be above 0 when `min_improvement` is 0). `non_inferiority`: the lower bound must reach
    `-margin`. The interval is two-sided at `confidence`, so the verdict is a one-sided test at
    level (1 - confidence) / 2: with 0.95, an equally good challenger is promoted at most ~2.5% of
    the time.

    `task` decides the metrics (`policies.schema.TASK_METRICS`) and the shape of the predictions.
    `min_class_rows` is the least number of holdout rows of every class (binary: positives and
    negatives; multiclass: each of the k classes) and, for regression, of the whole holdout;
    fewer cannot be evaluated, as the class-stratified bootstrap would treat those few rows as
    certain. `classes` optionally names the multiclass classes in column order, for messages and
    the report. `resamples` and `seed` drive the paired bootstrap; on a large holdout the AUC,
    log-loss and regression intervals are analytic instead (`promotion.intervals`), and then
    draw none.
    """

    metric: Metric
    mode: Mode = "superiority"
    min_improvement: float = 0.0
    margin: float = 0.0
    confidence: float = 0.95
    resamples: int = 1000
    seed: int = 0
    min_class_rows: int = 10
    slices: tuple[SliceGuardrail, ...] = ()
    calibration: CalibrationGuardrail | None = None
    max_latency_ms_per_row: float | None = None
    max_size_bytes: int | None = None
    task: Task = "binary"
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "slices", tuple(self.slices))
        object.__setattr__(self, "classes", tuple(str(name) for name in self.classes))
        problems = []
        if self.task not in TASKS:
            problems.append(f"task: must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.metric not in METRICS:
            problems.append(f"metric: must be one of {', '.join(METRICS)}, got {self.metric!r}")
        elif self.task in TASKS and self.metric not in TASK_METRICS[self.task]:
            problems.append(
                f"metric: {self.metric!r} does not measure a {self.task} model; use one of "
                f"{', '.join(TASK_METRICS[self.task])}"
            )
        if self.calibration is not None and self.task == "regression":
            problems.append(
                "calibration: only applies to classification (binary, multiclass), not to a "
                "regression model; remove it"
            )
        if self.classes and self.task != "multiclass":
            problems.append(f"classes: only names multiclass classes, not {self.task!r} ones")
        elif self.classes and len(self.classes) < 2:
            problems.append(f"classes: a multiclass model has at least two, got {self.classes}")
        for duplicate in sorted({c for c in self.classes if self.classes.count(c) > 1}):
            problems.append(f"classes: {duplicate!r} is listed twice")
        if self.mode not in ("superiority", "non_inferiority"):
            problems.append(f"mode: must be 'superiority' or 'non_inferiority', got {self.mode!r}")
        if not self.min_improvement >= 0:
            problems.append(f"min_improvement: must be ≥ 0, got {self.min_improvement}")
        if not self.margin >= 0:
            problems.append(f"margin: must be ≥ 0, got {self.margin}")
        if self.mode == "superiority" and self.margin:
            problems.append("margin: only applies to mode 'non_inferiority'; remove it")
        if self.mode == "non_inferiority" and self.min_improvement:
            problems.append("min_improvement: only applies to mode 'superiority'; remove it")
        if not 0.5 < self.confidence < 1:
            problems.append(f"confidence: must be between 0.5 and 1, got {self.confidence}")
        if self.resamples < 100:
            problems.append(
                f"resamples: must be ≥ 100 to resolve a confidence bound, got {self.resamples}"
            )
        if self.min_class_rows < 1:
            problems.append(f"min_class_rows: must be ≥ 1, got {self.min_class_rows}")
        columns = [guardrail.column for guardrail in self.slices]
        for duplicate in sorted({c for c in columns if columns.count(c) > 1}):
            problems.append(f"slices: column {duplicate!r} is listed twice")
        for index, guardrail in enumerate(self.slices):
            problems += guardrail.problems(f"slices[{index}]")
        if self.calibration is not None:
            problems += self.calibration.problems("calibration")
        if self.max_latency_ms_per_row is not None and not self.max_latency_ms_per_row > 0:
            problems.append(
                f"max_latency_ms_per_row: must be > 0, got {self.max_latency_ms_per_row}"
            )
        if self.max_size_bytes is not None and not self.max_size_bytes > 0:
            problems.append(f"max_size_bytes: must be > 0, got {self.max_size_bytes}")
        if problems:
            raise EvaluationConfigError([f"EvaluationConfig.{problem}" for problem in problems])

    @property
    def required_lower_bound(self) -> float:
        """The value the improvement's lower confidence bound must reach."""
        return self.min_improvement if self.mode == "superiority" else -self.margin


@dataclass(frozen=True)
class ModelFacts:
    """Measured facts about one model version that are not predictions; any may be unknown.

    `input_schema` lists (column name, type) pairs, with MLflow's type names ("long", "double",
    "string", ...).
    """

    latency_ms_per_row: float | None = None
    size_bytes: int | None = None
    input_schema: tuple[tuple[str, str], ...] | None = None

    def __post_init__(self) -> None:
        if self.input_schema is not None:
            schema = tuple((str(name), str(kind)) for name, kind in self.input_schema)
            object.__setattr__(self, "input_schema", schema)


@dataclass(frozen=True)
class GuardrailResult:
    """One guardrail's outcome, the numbers it was decided on, and a sentence for humans."""

    name: str
    status: GuardrailStatus
    message: str
    numbers: dict[str, float | int | None] = field(default_factory=dict)
    blocks_promotion: bool = False


@dataclass(frozen=True)
class EvaluationResult:
    """The verdict on a challenger, the evidence for it, and every reason in plain words.

    `improvement`, `ci_low` and `ci_high` are signed so that positive means "challenger better",
    also for metrics where lower is better (log_loss, rmse, mae). `task` and `classes` are the
    config's, so the report can show the result the way the task needs. `interval` says how the
    interval was computed (`promotion.intervals`): "bootstrap" (then `resamples` were drawn),
    or analytically on a large holdout, "delong" for AUC and "normal" for the other metrics.
    """

    verdict: Verdict
    reasons: tuple[str, ...]
    metric: str
    mode: Mode
    required_lower_bound: float
    confidence: float
    rows: int
    champion_score: float | None = None
    challenger_score: float | None = None
    improvement: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    test: str | None = None
    resamples: int = 0
    seed: int = 0
    interval: IntervalMethod | None = None
    guardrails: tuple[GuardrailResult, ...] = ()
    champion_metrics: dict[str, float] = field(default_factory=dict)
    challenger_metrics: dict[str, float] = field(default_factory=dict)
    task: str = "binary"
    classes: tuple[str, ...] = ()

    @property
    def requirement(self) -> str:
        """What the improvement's lower bound had to be, e.g. "> +0.0000" or "≥ -0.0100"."""
        return _requirement(self.mode, self.required_lower_bound)

    def guardrails_with(self, status: GuardrailStatus) -> list[str]:
        """Names of the guardrails that ended with `status`."""
        return [guardrail.name for guardrail in self.guardrails if guardrail.status == status]

    def to_json_dict(self) -> dict:
        """A JSON-able dict (for XCom or a record), readable back with `from_json_dict`."""
        return asdict(self)

    @classmethod
    def from_json_dict(cls, data: Mapping) -> EvaluationResult:
        """The result `to_json_dict` wrote."""
        values = dict(data)
        values["reasons"] = tuple(values["reasons"])
        values["guardrails"] = tuple(GuardrailResult(**item) for item in values["guardrails"])
        values["classes"] = tuple(values.get("classes", ()))
        return cls(**values)


def evaluate_challenger(
    config: EvaluationConfig,
    *,
    labels: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    slices: Mapping[str, np.ndarray] | None = None,
    champion_facts: ModelFacts | None = None,
    challenger_facts: ModelFacts | None = None,
) -> EvaluationResult:
    """Decide whether the challenger replaces the champion, from both models' predictions on
    the same holdout rows (shaped per `config.task`, see the module docstring).

    Promote only when the improvement's lower confidence bound (`improvement_interval`: the
    paired bootstrap, or its analytic equivalent on a large holdout) reaches the configured
    bound and no guardrail blocks. Problems with the inputs give `cannot_evaluate` rather than
    a guess. Guardrails whose inputs were not given are reported as "skipped" and listed in the
    reasons; they do not block.
    """
    champion_facts = champion_facts or ModelFacts()
    challenger_facts = challenger_facts or ModelFacts()
    slices = dict(slices or {})
    problems: list[str] = []
    labels_array = _column("labels", labels, problems, config.task)
    champion = _predictions(config.task, "champion", champion, problems)
    challenger = _predictions(config.task, "challenger", challenger, problems)
    base = _result_base(config, labels_array)

    signature = _signature_guardrail(champion_facts, challenger_facts)
    if not problems:
        problems = _input_problems(
            config, labels_array, {"champion": champion, "challenger": challenger}, slices
        )
    if not problems:
        problems = _class_size_problems(config, labels_array, _classes(config.task, challenger))
    if signature.status == "fail":
        problems.append(signature.message)
    if problems:
        return EvaluationResult("cannot_evaluate", tuple(problems), guardrails=(signature,), **base)
    labels_int = _typed_labels(config.task, labels_array)

    # Binary tasks report AUC whatever the metric, and DeLong's test and interval use the same
    # structural components: each model's scores are sorted once for all three.
    aucs = (
        (auc_components(labels_int, champion), auc_components(labels_int, challenger))
        if config.task == "binary"
        else None
    )
    champion_metrics = _all_metrics(config.task, labels_int, champion, aucs and aucs[0])
    challenger_metrics = _all_metrics(config.task, labels_int, challenger, aucs and aucs[1])
    champion_score = champion_metrics[config.metric]
    challenger_score = challenger_metrics[config.metric]
    improvement = signed_improvement(config.metric, champion_score, challenger_score)
    interval = improvement_interval(
        config.task,
        config.metric,
        labels_int,
        champion,
        challenger,
        improvement=improvement,
        confidence=config.confidence,
        resamples=config.resamples,
        seed=config.seed,
        aucs=aucs,
    )
    ci_low, ci_high = interval.low, interval.high
    test, p_value = _significance(
        config.task, config.metric, labels_int, champion, challenger, aucs
    )

    guardrails = [signature]
    guardrails += _slice_guardrails(config, labels_int, champion, challenger, slices, aucs)
    if config.calibration is not None:
        guardrails.append(
            _calibration_guardrail(config.calibration, labels_int, champion, challenger)
        )
    if config.max_latency_ms_per_row is not None:
        guardrails.append(
            _latency_guardrail(config.max_latency_ms_per_row, champion_facts, challenger_facts)
        )
    if config.max_size_bytes is not None:
        guardrails.append(_size_guardrail(config.max_size_bytes, champion_facts, challenger_facts))

    bound = config.required_lower_bound
    meets_bound = ci_low > bound if _strict(config.mode, bound) else ci_low >= bound
    comparison = (
        f"{config.metric}: challenger {challenger_score:.4f} vs champion {champion_score:.4f}, "
        f"improvement {improvement:+.4f} ({config.confidence:.0%} CI {ci_low:+.4f} to "
        f"{ci_high:+.4f}); {config.mode.replace('_', '-')} needs the lower bound "
        f"{_requirement(config.mode, bound)}"
    )
    reasons = [f"{comparison}: {'met' if meets_bound else 'not met'}"]
    blocking = [guardrail for guardrail in guardrails if guardrail.blocks_promotion]
    reasons += [guardrail.message for guardrail in blocking]
    reasons += [guardrail.message for guardrail in guardrails if guardrail.status == "skipped"]
    verdict: Verdict = "promote" if meets_bound and not blocking else "reject"
    return EvaluationResult(
        verdict,
        tuple(reasons),
        champion_score=champion_score,
        challenger_score=challenger_score,
        improvement=improvement,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=p_value,
        test=test,
        resamples=interval.resamples,
        seed=config.seed,
        interval=interval.method,
        guardrails=tuple(guardrails),
        champion_metrics=champion_metrics,
        challenger_metrics=challenger_metrics,
        **base,
    )


def evaluate_first_champion(
    config: EvaluationConfig,
    *,
    labels: np.ndarray,
    challenger: np.ndarray,
    challenger_facts: ModelFacts | None = None,
) -> EvaluationResult:
    """The verdict on a model's first candidate, when there is no champion to compare against:
    its holdout metrics and the guardrails that need no champion (latency, size).

    The comparison and the guardrails that compare (slices, calibration, signature) are reported
    as skipped. Unusable inputs, or too few rows of a class for the metric to mean anything, give
    `cannot_evaluate`; a failed guardrail rejects the candidate, as it would against a champion.
    """
    facts = challenger_facts or ModelFacts()
    problems: list[str] = []
    labels_array = _column("labels", labels, problems, config.task)
    challenger = _predictions(config.task, "challenger", challenger, problems)
    base = _result_base(config, labels_array)
    if not problems:
        problems = _input_problems(config, labels_array, {"challenger": challenger}, {})
    if not problems:
        problems = _class_size_problems(config, labels_array, _classes(config.task, challenger))
    if problems:
        return EvaluationResult("cannot_evaluate", tuple(problems), **base)
    labels_int = _typed_labels(config.task, labels_array)
    metrics = _all_metrics(config.task, labels_int, challenger)
    none = ModelFacts()
    comparing = "no champion to compare against"
    guardrails = [GuardrailResult("signature", "skipped", f"signature: skipped, {comparing}")]
    guardrails += [
        GuardrailResult(
            f"slice {rule.column}", "skipped", f"slice {rule.column}: skipped, {comparing}"
        )
        for rule in config.slices
    ]
    if config.calibration is not None:
        name = f"calibration {config.calibration.measure}"
        guardrails.append(GuardrailResult(name, "skipped", f"{name}: skipped, {comparing}"))
    if config.max_latency_ms_per_row is not None:
        guardrails.append(_latency_guardrail(config.max_latency_ms_per_row, none, facts))
    if config.max_size_bytes is not None:
        guardrails.append(_size_guardrail(config.max_size_bytes, none, facts))
    blocking = [guardrail for guardrail in guardrails if guardrail.blocks_promotion]
    score = metrics[config.metric]
    reasons = [
        f"first champion: {comparing}; {config.metric} {score:.4f} on {labels_int.size:,} "
        "holdout rows"
    ]
    reasons += [guardrail.message for guardrail in blocking]
    return EvaluationResult(
        "reject" if blocking else "promote",
        tuple(reasons),
        challenger_score=score,
        resamples=config.resamples,
        seed=config.seed,
        guardrails=tuple(guardrails),
        challenger_metrics=metrics,
        **base,
    )


def _strict(mode: str, bound: float) -> bool:
    # Superiority with no minimum improvement still needs evidence of some improvement: a lower
    # bound of exactly 0 is what two identical models produce.
    return mode == "superiority" and bound == 0


def _requirement(mode: str, bound: float) -> str:
    return f"{'>' if _strict(mode, bound) else '≥'} {bound:+.4f}"


def _result_base(config: EvaluationConfig, labels: np.ndarray) -> dict:
    return {
        "metric": config.metric,
        "mode": config.mode,
        "required_lower_bound": config.required_lower_bound,
        "confidence": config.confidence,
        "rows": int(labels.size),
        "task": config.task,
        "classes": config.classes,
    }


_WHAT = {
    "binary": "0/1 labels, positive-class probabilities",
    "multiclass": "class-index labels, class probabilities",
    "regression": "target values, predicted values",
}
_ONE_PER_ROW = {
    "binary": "for predict_proba output pass the positive-class column",
    "multiclass": "labels are one class index per row",
    "regression": "a regression model predicts one value per row",
}


def _column(name: str, values: object, problems: list[str], task: str = "binary") -> np.ndarray:
    """`values` as a flat float array; an unusable shape or type is added to `problems`."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        problems.append(f"{name} must be numbers ({_WHAT[task]})")
        return np.empty(0)
    if array.ndim > 1 and array.shape[1:] != (1,):
        problems.append(
            f"{name} must have one value per row, got shape {array.shape}; {_ONE_PER_ROW[task]}"
        )
    return array.reshape(-1) if array.ndim <= 1 or array.shape[1:] == (1,) else np.empty(0)


def _predictions(task: str, name: str, values: object, problems: list[str]) -> np.ndarray:
    """A model's predictions as the task shapes them; an unusable shape is added to `problems`."""
    if task != "multiclass":
        return _column(name, values, problems, task)
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        problems.append(f"{name} must be numbers (class probabilities)")
        return np.empty((0, 2))
    if array.ndim != 2 or array.shape[1] < 2:
        problems.append(
            f"{name} must be an (n, k) matrix of class probabilities with k ≥ 2 columns, got "
            f"shape {array.shape}"
        )
        return np.empty((0, 2))
    return array


def _classes(task: str, predictions: np.ndarray) -> int:
    return predictions.shape[1] if task == "multiclass" else 2


def _typed_labels(task: str, labels: np.ndarray) -> np.ndarray:
    if task == "regression":
        return labels
    return labels.astype(np.intp if task == "multiclass" else np.int8)


def _class_name(config: EvaluationConfig, index: int) -> str:
    if config.classes and index < len(config.classes):
        return f"{index} ({config.classes[index]!r})"
    return str(index)


def _input_problems(
    config: EvaluationConfig,
    labels: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    slices: Mapping[str, np.ndarray],
) -> list[str]:
    """Why the arrays cannot be compared at all: lengths, missing labels, and values the task's
    models cannot produce (`_binary_problems`, `_multiclass_problems`, `_regression_problems`)."""
    rows = labels.size
    if rows == 0:
        return ["the holdout has no rows"]
    problems = []
    for name, values in predictions.items():
        if values.shape[0] != rows:
            problems.append(
                f"{name} predictions have {values.shape[0]} rows but labels have {rows}"
            )
    for column, values in slices.items():
        if len(values) != rows:
            problems.append(
                f"slice column {column!r} has {len(values)} rows but labels have {rows}"
            )
    missing = int(np.count_nonzero(np.isnan(labels)))
    if missing:
        problems.append(f"{missing} of {rows} labels are missing (NaN)")
    known = labels[~np.isnan(labels)]
    checks = {
        "binary": _binary_problems,
        "multiclass": _multiclass_problems,
        "regression": _regression_problems,
    }
    return problems + checks[config.task](config, known, predictions)


def _binary_problems(
    config: EvaluationConfig, known: np.ndarray, predictions: Mapping[str, np.ndarray]
) -> list[str]:
    """Labels 0/1 with both classes present; probabilities in [0, 1] without NaN."""
    problems = []
    if np.any((known != 0) & (known != 1)):
        problems.append("labels must be 0 or 1 (binary classification)")
    elif known.size and np.unique(known).size == 1:
        problems.append(
            f"every label is {int(known[0])}; both classes are needed to compare models"
        )
    for name, values in predictions.items():
        nan = int(np.count_nonzero(np.isnan(values)))
        if nan:
            problems.append(f"{nan} {name} predictions are NaN")
        if np.any((values < 0) | (values > 1)):
            problems.append(f"{name} predictions must be probabilities in [0, 1]")
    return problems


def _multiclass_problems(
    config: EvaluationConfig, known: np.ndarray, predictions: Mapping[str, np.ndarray]
) -> list[str]:
    """Labels are class indices 0..k-1; each model's rows are probabilities summing to 1 over
    the same k classes (and k matches the named classes, if any)."""
    problems = []
    widths = {name: values.shape[1] for name, values in predictions.items()}
    if len(set(widths.values())) > 1:
        problems.append(
            "champion and challenger must give probabilities for the same classes, got "
            + " and ".join(f"{k} columns ({name})" for name, k in widths.items())
        )
    k = min(widths.values())
    if config.classes and len(config.classes) != k:
        problems.append(
            f"the predictions have {k} class columns but {len(config.classes)} classes are "
            f"named: {', '.join(config.classes)}"
        )
    if np.any(np.isinf(known) | (known != np.round(known)) | (known < 0) | (known >= k)):
        problems.append(f"labels must be class indices 0 to {k - 1} (multiclass, {k} classes)")
    for name, values in predictions.items():
        nan = int(np.count_nonzero(np.isnan(values).any(axis=1)))
        if nan:
            problems.append(f"{nan} {name} prediction rows contain NaN")
            continue
        if np.any((values < 0) | (values > 1)):
            problems.append(f"{name} predictions must be probabilities in [0, 1]")
        sums = values.sum(axis=1)
        off = int(np.count_nonzero(np.abs(sums - 1) > _PROBABILITY_SUM_TOLERANCE))
        if off:
            problems.append(
                f"{off} {name} prediction rows do not sum to 1; pass class probabilities "
                "(predict_proba), not scores"
            )
    return problems


def _regression_problems(
    config: EvaluationConfig, known: np.ndarray, predictions: Mapping[str, np.ndarray]
) -> list[str]:
    """Finite labels and predictions; for r2, labels that vary (else R² is undefined)."""
    problems = []
    infinite = int(np.count_nonzero(np.isinf(known)))
    if infinite:
        problems.append(f"{infinite} labels are infinite")
    elif config.metric == "r2" and known.size and np.ptp(known) == 0:
        problems.append(f"every label is {known[0]:g}; r2 is undefined when the labels do not vary")
    for name, values in predictions.items():
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:
            problems.append(f"{bad} {name} predictions are not finite numbers (NaN or infinite)")
    return problems


def _class_size_problems(config: EvaluationConfig, labels: np.ndarray, k: int) -> list[str]:
    """Too few rows for a meaningful interval: binary per class (positives, negatives),
    multiclass per class index 0..k-1, regression for the whole holdout.

    Every multiclass class must appear, not only two: macro-F1 weighs each class equally and the
    stratified bootstrap holds each class's rows fixed, so a class with a handful of rows would
    sway the verdict while its interval treated those rows as certain. A class absent from the
    holdout window cannot be judged at all.
    """
    floor = config.min_class_rows
    needed = f"at least min_class_rows={floor} are needed for a meaningful interval"
    if config.task == "regression":
        if labels.size < floor:
            return [f"only {labels.size} rows in the holdout; {needed}"]
        return []
    if config.task == "multiclass":
        counts = np.bincount(labels.astype(np.intp), minlength=k)
        return [
            f"only {int(counts[c])} rows of class {_class_name(config, c)} in the holdout; {needed}"
            for c in range(k)
            if counts[c] < floor
        ]
    positives = int(np.count_nonzero(labels))
    problems = []
    for name, count in (("positive", positives), ("negative", labels.size - positives)):
        if count < floor:
            problems.append(f"only {count} {name} rows in the holdout; {needed}")
    return problems


def _significance(
    task: str,
    metric: str,
    labels: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    aucs: tuple[AucComponents, AucComponents] | None = None,
) -> tuple[str | None, float | None]:
    """The standard paired test of the task's metric, where there is one.

    Regression uses a paired t-test on per-row absolute errors for mae and squared errors for
    rmse and r2: on shared rows the difference in R² is the difference in squared error over a
    common total, so it has the same test.
    """
    if metric == "accuracy" and task in ("binary", "multiclass"):
        champion_right = row_outcomes(task, labels, champion) == 1
        challenger_right = row_outcomes(task, labels, challenger) == 1
        champion_only = int(np.count_nonzero(champion_right & ~challenger_right))
        challenger_only = int(np.count_nonzero(challenger_right & ~champion_right))
        return "mcnemar_exact", mcnemar_exact(champion_only, challenger_only)
    if task == "binary" and metric == "roc_auc":
        if min(np.count_nonzero(labels), np.count_nonzero(labels == 0)) >= 2:
            return "delong", delong_test(labels, champion, challenger, aucs).p_value
    if task == "regression":
        if metric == "mae":
            differences = np.abs(champion - labels) - np.abs(challenger - labels)
        else:
            differences = row_outcomes(task, labels, champion) - row_outcomes(
                task, labels, challenger
            )
        return "paired_t", paired_t_test(differences)
    return None, None


def _all_metrics(
    task: str, labels: np.ndarray, predictions: np.ndarray, aucs: AucComponents | None = None
) -> dict[str, float]:
    """Every metric of the task, then Brier and ECE for classification; `aucs` are the model's
    AUC components when already computed, so its scores are not sorted again."""

    def value(metric: str) -> float:
        if metric == "roc_auc" and aucs is not None:
            return aucs.auc
        return metric_value(metric, labels, predictions)

    values = {metric: value(metric) for metric in TASK_METRICS[task]}
    if task != "regression":
        values["brier"] = brier_score(labels, predictions)
        values["ece"] = expected_calibration_error(labels, predictions)
    return values


def _slice_values(guardrail: SliceGuardrail, values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Each row's slice index and the slices' display names."""
    if guardrail.kind == "numeric":
        numbers = np.asarray(values, dtype=np.float64)
        edges = [-math.inf, *guardrail.bins, math.inf]
        names = [f"[{low:g}, {high:g})" for low, high in zip(edges[:-1], edges[1:], strict=True)]
        index = np.searchsorted(np.asarray(guardrail.bins), numbers, side="right")
        missing = np.isnan(numbers)
        if missing.any():
            index = np.where(missing, len(names), index)
            names.append("(missing)")
        return index, names
    if values.dtype.kind in "fc":
        missing = np.isnan(values)
    elif values.dtype.kind == "O":
        missing = np.equal(values, None) | np.not_equal(values, values)
    else:
        missing = np.zeros(values.size, dtype=bool)
    texts = values if values.dtype.kind == "U" else values.astype(str)
    if missing.any():
        texts = np.where(missing, "(missing)", texts)
    names, index = _distinct_texts(texts)
    return index, [str(name) for name in names]


# A slice column with at most this many values is grouped by comparisons, not by sorting.
_FEW_VALUES = 16


def _distinct_texts(texts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(texts, return_inverse=True)`: the sorted distinct values and each row's index.

    A slice column usually holds a few values (regions, plans), and sorting a million strings
    costs far more than one vectorised comparison per value; a column whose first rows already
    show many values, or that turns out to have more than `_FEW_VALUES`, is sorted instead.
    """
    if np.unique(texts[:2000]).size > _FEW_VALUES // 2:
        return np.unique(texts, return_inverse=True)
    index = np.empty(texts.size, dtype=np.intp)
    unassigned = np.ones(texts.size, dtype=bool)
    found = []
    first = 0
    while unassigned[first:].any():
        if len(found) == _FEW_VALUES:
            return np.unique(texts, return_inverse=True)
        first += int(np.argmax(unassigned[first:]))
        matches = texts == texts[first]
        index[matches] = len(found)
        unassigned &= ~matches
        found.append(texts[first])
    names = np.array(found, dtype=texts.dtype)
    order = np.argsort(names)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return names[order], rank[index]


def _slice_guardrails(
    config: EvaluationConfig,
    labels: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    slices: Mapping[str, np.ndarray],
    aucs: tuple[AucComponents, AucComponents] | None = None,
) -> list[GuardrailResult]:
    results = []
    for guardrail in config.slices:
        name = f"slice {guardrail.column}"
        if guardrail.column not in slices:
            results.append(
                GuardrailResult(
                    name,
                    "skipped",
                    f"{name}: skipped, the column was not passed with the holdout",
                )
            )
            continue
        index, names = _slice_values(guardrail, np.asarray(slices[guardrail.column]))
        for position, value in enumerate(names):
            rows = index == position
            if not rows.any():
                continue
            scores = None
            if config.metric == "roc_auc" and aucs is not None:
                # The holdout's sort orders hold for every subset of its rows.
                scores = _sorted_slice_aucs(labels, champion, challenger, rows, aucs)
            results.append(
                _one_slice(
                    config.task,
                    config.metric,
                    guardrail,
                    f"{name}={value}",
                    labels[rows],
                    champion[rows],
                    challenger[rows],
                    scores,
                )
            )
    return results


def _sorted_slice_aucs(
    labels: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    rows: np.ndarray,
    aucs: tuple[AucComponents, AucComponents],
) -> tuple[float, float] | None:
    """Both models' AUC on `rows` from the holdout's sort orders; None without both classes."""
    positives = int(np.count_nonzero(labels[rows]))
    if positives in (0, int(np.count_nonzero(rows))):
        return None
    return (
        auc_of_rows(labels, champion, aucs[0].order, rows),
        auc_of_rows(labels, challenger, aucs[1].order, rows),
    )


def _one_slice(
    task: str,
    metric: str,
    guardrail: SliceGuardrail,
    name: str,
    labels: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    scores: tuple[float, float] | None = None,
) -> GuardrailResult:
    """One slice's guardrail; `scores` are both models' metric on it when already computed."""
    rows = int(labels.size)
    numbers: dict[str, float | int | None] = {"rows": rows}
    lacking = None
    if task == "binary":
        positives = int(np.count_nonzero(labels))
        numbers["positives"] = positives
        if metric in _NEEDS_BOTH_CLASSES and positives in (0, rows):
            lacking = f"only one class among its {rows} rows, so {metric} is undefined"
        elif metric in _NEEDS_POSITIVES and positives == 0:
            lacking = f"no positives among its {rows} rows, so {metric} is undefined"
    elif task == "multiclass":
        present = int(np.unique(labels).size)
        numbers["classes"] = present
        # With one class present macro-F1 is that class's F1 alone, no longer a macro average.
        if metric == "macro_f1" and present < 2:
            lacking = f"only one class among its {rows} rows, so macro_f1 would not be an average"
    elif metric == "r2" and rows and np.ptp(labels) == 0:
        lacking = f"all {rows} labels are equal, so r2 is undefined"
    numbers |= {"min_rows": guardrail.min_rows, "max_regression": guardrail.max_regression}
    if rows < guardrail.min_rows:
        lacking = f"{rows} rows < min_rows {guardrail.min_rows}"
    if lacking is not None:
        consequence = (
            "reported only (allow_insufficient)"
            if guardrail.allow_insufficient
            else "blocks promotion; lower min_rows or set allow_insufficient if this is expected"
        )
        return GuardrailResult(
            name,
            "insufficient",
            f"{name}: {lacking}; {consequence}",
            numbers,
            blocks_promotion=not guardrail.allow_insufficient,
        )
    # Slices are judged on the observed regression. A confidence bound would fail even identical
    # models on slices of a few hundred rows; min_rows is what keeps slice noise in check.
    champion_score, challenger_score = scores or (
        metric_value(metric, labels, champion),
        metric_value(metric, labels, challenger),
    )
    regression = -signed_improvement(metric, champion_score, challenger_score)
    numbers |= {
        "champion": champion_score,
        "challenger": challenger_score,
        "regression": regression,
    }
    message = (
        f"{name}: {metric} challenger {challenger_score:.4f} vs champion {champion_score:.4f} "
        f"on {rows} rows, regression {regression:+.4f} (allowed ≤ {guardrail.max_regression:.4f})"
    )
    return _checked(name, regression <= guardrail.max_regression, message, numbers)


def _calibration_guardrail(
    guardrail: CalibrationGuardrail,
    labels: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
) -> GuardrailResult:
    measure = brier_score if guardrail.measure == "brier" else expected_calibration_error
    extra = {} if guardrail.measure == "brier" else {"bins": guardrail.bins}
    champion_value = measure(labels, champion, **extra)
    challenger_value = measure(labels, challenger, **extra)
    worsening = challenger_value - champion_value
    name = f"calibration {guardrail.measure}"
    message = (
        f"{name}: challenger {challenger_value:.4f} vs champion {champion_value:.4f}, "
        f"worsening {worsening:+.4f} (allowed ≤ {guardrail.max_worsening:.4f})"
    )
    numbers = {
        "champion": champion_value,
        "challenger": challenger_value,
        "worsening": worsening,
        "max_worsening": guardrail.max_worsening,
    }
    return _checked(name, worsening <= guardrail.max_worsening, message, numbers)


def _latency_guardrail(
    limit: float, champion: ModelFacts, challenger: ModelFacts
) -> GuardrailResult:
    measured = challenger.latency_ms_per_row
    numbers = {
        "challenger_ms": measured,
        "champion_ms": champion.latency_ms_per_row,
        "max_ms": limit,
    }
    if measured is None:
        return GuardrailResult(
            "latency",
            "skipped",
            "latency: skipped, no latency measured for the challenger",
            numbers,
        )
    message = f"latency: challenger {measured:.3f} ms/row (allowed ≤ {limit:.3f})"
    return _checked("latency", measured <= limit, message, numbers)


def _size_guardrail(limit: int, champion: ModelFacts, challenger: ModelFacts) -> GuardrailResult:
    measured = challenger.size_bytes
    numbers = {
        "challenger_bytes": measured,
        "champion_bytes": champion.size_bytes,
        "max_bytes": limit,
    }
    if measured is None:
        return GuardrailResult(
            "size", "skipped", "size: skipped, no size measured for the challenger", numbers
        )
    message = f"size: challenger {measured:,} bytes (allowed ≤ {limit:,})"
    return _checked("size", measured <= limit, message, numbers)


def _checked(
    name: str, passed: bool, message: str, numbers: dict[str, float | int | None]
) -> GuardrailResult:
    status: GuardrailStatus = "pass" if passed else "fail"
    return GuardrailResult(
        name, status, f"{message}: {status}", numbers, blocks_promotion=not passed
    )


# Types a champion's column may have for the challenger to accept it: the same type, or a
# widening that loses nothing (MLflow's schema enforcement accepts these conversions).
_ACCEPTS: dict[str, frozenset[str]] = {
    "long": frozenset({"long", "integer"}),
    "double": frozenset({"double", "float", "integer"}),
    "float": frozenset({"float"}),
}


def signature_problems(
    champion_schema: Sequence[tuple[str, str]], challenger_schema: Sequence[tuple[str, str]]
) -> list[str]:
    """Why rows that the champion accepts would not be accepted by the challenger, if at all.

    Every input column of the challenger must be among the champion's columns, with the same
    type or one that widens losslessly into it; extra champion columns are fine.
    """
    available = dict(champion_schema)
    problems = []
    for column, kind in challenger_schema:
        if column not in available:
            problems.append(f"challenger needs column {column!r}, which the champion's inputs lack")
        elif available[column] not in _ACCEPTS.get(kind, frozenset({kind})):
            problems.append(
                f"column {column!r} is {available[column]} for the champion but the challenger "
                f"expects {kind}"
            )
    return problems


def _signature_guardrail(champion: ModelFacts, challenger: ModelFacts) -> GuardrailResult:
    if champion.input_schema is None or challenger.input_schema is None:
        return GuardrailResult(
            "signature", "skipped", "signature: skipped, an input schema was not given"
        )
    problems = signature_problems(champion.input_schema, challenger.input_schema)
    if problems:
        return GuardrailResult(
            "signature",
            "fail",
            "signature: incompatible inputs: " + "; ".join(problems),
            {"problems": len(problems)},
            blocks_promotion=True,
        )
    return GuardrailResult(
        "signature", "pass", "signature: challenger accepts the champion's inputs"
    )
