"""Canary, shadow and guard-window verdicts: step up, promote, revert, keep or wait.

A rollout ends with the challenger as champion only on positive evidence that it is not worse
than the champion by more than a margin (non-inferiority), not merely for lack of evidence of
harm. Two one-sided, anytime-valid tests read the challenger's advantage δ (challenger minus
champion where higher is better) after every batch of labels:

- revert once the upper bound of δ falls below -margin (evidence the challenger is worse than
  the margin allows), or on a guardrail;
- promote, after the last traffic step, once the lower bound of δ clears -margin;
- otherwise wait; a step that reaches its maximum duration does what `on_timeout` says.

Each test is the half-normal mixture likelihood ratio (mSPRT; Johari et al., "Always valid
inference", 2017) of the estimate shifted by the margin, and each bound inverts its test. Under
its null the ratio is a nonnegative (super)martingale, so by Ville's inequality it ever reaches
1/alpha with probability at most alpha, however often it is read: a challenger worse than
-margin is promoted, and one better than -margin is reverted, each with probability ≤ alpha.

Each labeled row has one outcome (`row_outcomes`): for a classifier (binary or multiclass) whether
its class was right, compared as accuracy; for a regressor its squared error, compared on the mean
squared error with a margin relative to the champion's. When the champion also scored the
canary's requests (`StepStats.paired`, and always in shadow mode) the comparison is on those
pairs: only requests where exactly one model is right (classifiers), or the per-request
difference of squared errors (regressors), carry information, so fewer labels decide.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq
from scipy.special import log_ndtr

Mode = Literal["canary", "shadow"]
RolloutTask = Literal["binary", "multiclass", "regression"]
RolloutMetric = Literal["accuracy", "error_rate"]
TimeoutAction = Literal["revert", "hold"]
StepAction = Literal["step_up", "promote", "revert", "wait"]
GuardAction = Literal["keep", "revert"]

_LOG_2 = math.log(2.0)
# E-values are reported up to 1e15: beyond it they say nothing more (any alpha's threshold is far
# below), and a larger float does not survive a task hand-off on a PostgreSQL-backed Airflow
# (its JSON column writes 1e20 as a 21-digit integer, too large for the task runner's channel).
# Decisions compare the log e-values themselves, uncapped.
MAX_E_VALUE = 1e15
_MAX_LOG_E = math.log(MAX_E_VALUE)

# Scales of the regression test are kept above these, so a perfect or constant arm still gives a
# usable (finite) statistic.
_MIN_SCALE = 1e-12


def _reported_e(log_e: float) -> float:
    """The e-value of `log_e` as evidence reports it, at most MAX_E_VALUE."""
    return MAX_E_VALUE if log_e >= _MAX_LOG_E else math.exp(log_e)


SQUARED_ERROR = "squared_error"
# Keeps an inverse variance finite when every outcome of both arms is 0 (perfect predictions).
_TINY = 1e-300
# The rise of the mean squared error the regression test is tuned to by default, per unit of the
# policy's `expected_effect`: 0.03 (an accuracy drop of 3 points) becomes a 60 % rise. Squared
# errors spread about as widely as their mean (√2 × it for normal residuals), far more than a
# right/wrong outcome does, so a tuning much smaller than the rises worth catching would leave a
# clearly worse regressor serving for many more labels before its revert.
ERROR_EFFECT_PER_EXPECTED_EFFECT = 20.0
DEFAULT_MARGIN = 0.015
DEFAULT_REGRESSION_MARGIN = 0.10


def row_outcomes(task: str, predictions: Sequence, labels: Sequence) -> NDArray[np.float64]:
    """One number per labeled row that the live analysis compares: for a classifier 1.0 when the
    predicted class is the label, else 0.0 (binary: probability and label on the same side of
    0.5; multiclass: predicted class name equals the label's); for a regressor the squared error.
    """
    if task == "regression":
        error = np.asarray(predictions, dtype=float) - np.asarray(labels, dtype=float)
        return error * error
    if task == "binary":
        scores, truth = np.asarray(predictions, dtype=float), np.asarray(labels, dtype=float)
        return ((scores >= 0.5) == (truth >= 0.5)).astype(float)
    if task == "multiclass":
        return np.asarray(
            [str(p) == str(t) for p, t in zip(predictions, labels, strict=True)], dtype=float
        )
    raise ValueError(f"unknown task {task!r}; use binary, multiclass or regression")


@dataclass(frozen=True)
class RolloutConfig:
    """How a challenger is rolled out and judged, built from the model's policy.

    `margin` (None: `non_inferiority_margin`'s default) is how much worse than the champion a
    challenger may be and still be promoted. `expected_effect` is how far beyond the margin a drop
    lies that the revert test is tuned to catch fastest (absolute accuracy, e.g. 0.03); the
    promote test is tuned to a challenger as good as the champion. `guard_margin` is how far (in
    the metric's units) a new champion may fall below the previous
    champion's recorded level before the guard window reverts it.

    For `task` regression the rows' outcome is the squared error and the arms are compared on
    their mean squared error (`metric` is then `squared_error`, lower is better):
    `margin` is the relative rise of the champion's mean squared error still accepted (0.10: 10 %
    higher), `error_effect` the relative rise the revert test is tuned to catch fastest (0.6: 60 %
    higher; by default `expected_effect` × 20), and `guard_margin` is
    relative too: the guard window reverts a champion shown to have a mean squared error above
    the previous champion's recorded one × (1 + `guard_margin`). The tunings change how fast a
    verdict comes, never its error rates.
    """

    mode: Mode = "canary"
    task: RolloutTask = "binary"
    traffic_steps: tuple[float, ...] = (0.05, 0.25, 0.5)
    metric: RolloutMetric = "accuracy"
    alpha: float = 0.05
    expected_effect: float = 0.03
    min_labeled_per_step: int = 500
    max_step_seconds: float = 6 * 3600.0
    on_timeout: TimeoutAction = "revert"
    max_error_rate: float = 0.02
    max_p99_latency_ms: float = 500.0
    min_guardrail_requests: int = 100
    min_agreement: float | None = None
    guard_margin: float = 0.01
    error_effect: float | None = None
    margin: float | None = None

    @property
    def non_inferiority_margin(self) -> float:
        """How much worse the challenger may be and still be promoted: accuracy points for a
        classifier (default 0.015), the relative rise of the mean squared error for a regressor
        (default 0.10)."""
        if self.margin is not None:
            return self.margin
        return DEFAULT_REGRESSION_MARGIN if self.task == "regression" else DEFAULT_MARGIN

    @property
    def measured(self) -> str:
        """The name of what the verdicts compare: the policy's metric, or `squared_error`."""
        return SQUARED_ERROR if self.task == "regression" else self.metric

    @property
    def relative_error_effect(self) -> float:
        """The regression test's tuning: the relative rise of the mean squared error."""
        if self.error_effect is not None:
            return self.error_effect
        return self.expected_effect * ERROR_EFFECT_PER_EXPECTED_EFFECT

    def __post_init__(self) -> None:
        object.__setattr__(self, "traffic_steps", tuple(float(s) for s in self.traffic_steps))
        problems = []
        if self.mode not in ("canary", "shadow"):
            problems.append(f"mode: must be 'canary' or 'shadow', got {self.mode!r}")
        steps = self.traffic_steps
        if self.mode == "canary" and not steps:
            problems.append(
                "traffic_steps: a canary needs at least one step, e.g. [0.05, 0.25, 0.5]"
            )
        if any(not 0 < s <= 1 for s in steps) or any(a >= b for a, b in pairwise(steps)):
            problems.append(
                f"traffic_steps: must increase strictly within (0, 1], got {list(steps)}"
            )
        if self.task not in ("binary", "multiclass", "regression"):
            problems.append(
                f"task: must be 'binary', 'multiclass' or 'regression', got {self.task!r}"
            )
        if self.margin is not None and not 0 < self.margin < 1:
            problems.append(f"margin: must be in (0, 1) or null, got {self.margin}")
        if self.error_effect is not None and not self.error_effect > 0:
            problems.append(f"error_effect: must be > 0 or null, got {self.error_effect}")
        if self.metric not in ("accuracy", "error_rate"):
            problems.append(f"metric: must be 'accuracy' or 'error_rate', got {self.metric!r}")
        if not 0 < self.alpha < 1:
            problems.append(f"alpha: must be in (0, 1), got {self.alpha}")
        if not 0 < self.expected_effect < 1:
            problems.append(f"expected_effect: must be in (0, 1), got {self.expected_effect}")
        if self.min_labeled_per_step < 1:
            problems.append(f"min_labeled_per_step: must be ≥ 1, got {self.min_labeled_per_step}")
        if self.max_step_seconds <= 0:
            problems.append(f"max_step_seconds: must be > 0, got {self.max_step_seconds}")
        if self.on_timeout not in ("revert", "hold"):
            problems.append(f"on_timeout: must be 'revert' or 'hold', got {self.on_timeout!r}")
        if not 0 <= self.max_error_rate <= 1:
            problems.append(f"max_error_rate: must be in [0, 1], got {self.max_error_rate}")
        if self.max_p99_latency_ms <= 0:
            problems.append(f"max_p99_latency_ms: must be > 0, got {self.max_p99_latency_ms}")
        if self.min_guardrail_requests < 1:
            problems.append(
                f"min_guardrail_requests: must be ≥ 1, got {self.min_guardrail_requests}"
            )
        if self.min_agreement is not None and not 0 < self.min_agreement < 1:
            problems.append(f"min_agreement: must be in (0, 1) or null, got {self.min_agreement}")
        if not 0 <= self.guard_margin < 1:
            problems.append(f"guard_margin: must be in [0, 1), got {self.guard_margin}")
        if problems:
            raise ValueError("rollout config: " + "; ".join(problems))


@dataclass(frozen=True)
class ArmStats:
    """One model's traffic in a period: labeled predictions, and request health.

    `errors` are failed requests (exceptions, 5xx), not wrong predictions. `correct` counts the
    labeled rows a classifier got right; `outcome_sum` and `outcome_sq_sum` add the rows'
    outcomes (`row_outcomes`) and their squares, which is what the regression test reads.
    """

    labeled: int = 0
    correct: int = 0
    requests: int = 0
    errors: int = 0
    p99_latency_ms: float | None = None
    outcome_sum: float = 0.0
    outcome_sq_sum: float = 0.0

    def __post_init__(self) -> None:
        if min(self.labeled, self.correct, self.requests, self.errors) < 0:
            raise ValueError(f"arm stats: counts must be ≥ 0, got {self}")
        if self.correct > self.labeled:
            raise ValueError(f"arm stats: correct {self.correct} > labeled {self.labeled}")
        if self.errors > self.requests:
            raise ValueError(f"arm stats: errors {self.errors} > requests {self.requests}")
        if min(self.outcome_sum, self.outcome_sq_sum) < 0:
            raise ValueError(f"arm stats: outcome sums must be ≥ 0, got {self}")

    def mean_outcome(self) -> float | None:
        """The arm's mean outcome (mean squared error for a regressor), None without labels."""
        return self.outcome_sum / self.labeled if self.labeled else None

    def outcome_variance(self) -> float | None:
        """The sample variance of the arm's outcomes, None with fewer than two labels."""
        if self.labeled < 2:
            return None
        mean = self.outcome_sum / self.labeled
        return max(0.0, (self.outcome_sq_sum - self.labeled * mean * mean) / (self.labeled - 1))


@dataclass(frozen=True)
class PairedStats:
    """The canary's labeled requests that the champion also scored, off the request path and
    never returned: both models on the same requests, which is where discordant pairs carry the
    information.

    For a classifier `challenger_correct`, `champion_correct` and `both_correct` count the pairs;
    for a regressor `error_difference_sum` adds the champion's squared error minus the
    challenger's (positive: the challenger is better) and `error_difference_sq_sum` the squares
    of those differences. `challenger_outcome_sum` and `champion_outcome_sum` add each model's
    outcomes (`row_outcomes`) over the pairs.
    """

    labeled: int = 0
    challenger_correct: int = 0
    champion_correct: int = 0
    both_correct: int = 0
    challenger_outcome_sum: float = 0.0
    champion_outcome_sum: float = 0.0
    error_difference_sum: float = 0.0
    error_difference_sq_sum: float = 0.0

    def __post_init__(self) -> None:
        counts = (self.challenger_correct, self.champion_correct)
        if min(self.labeled, *counts, self.both_correct) < 0 or max(counts) > self.labeled:
            raise ValueError(f"paired stats: need 0 ≤ correct counts ≤ labeled, got {self}")
        if not sum(counts) - self.labeled <= self.both_correct <= min(counts):
            raise ValueError(
                f"paired stats: both_correct {self.both_correct} is impossible with {counts} "
                f"correct of {self.labeled} labeled"
            )
        if min(self.error_difference_sq_sum, self.challenger_outcome_sum) < 0 or (
            self.champion_outcome_sum < 0
        ):
            raise ValueError(f"paired stats: outcome and squared sums must be ≥ 0, got {self}")


@dataclass(frozen=True)
class StepStats:
    """Both arms of a canary over the same period (one traffic step); `paired` when the gateway
    also scored the canary's requests with the champion."""

    champion: ArmStats
    challenger: ArmStats
    paired: PairedStats | None = None


@dataclass(frozen=True)
class ShadowStats:
    """Both models scored on the same requests: per-arm stats plus how the pairs compare.

    `compared` requests were answered by both models, `agreed` of them with the same class;
    `both_correct` counts labeled requests both models got right (the arms' `labeled` are equal).
    For a regressor `difference_sum` adds, over the labeled requests, the champion's squared error
    minus the challenger's, and `difference_sq_sum` the squares of those differences.
    """

    champion: ArmStats
    challenger: ArmStats
    compared: int = 0
    agreed: int = 0
    both_correct: int = 0
    difference_sum: float = 0.0
    difference_sq_sum: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.agreed <= self.compared:
            raise ValueError(f"shadow stats: need 0 ≤ agreed ≤ compared, got {self}")
        if self.difference_sq_sum < 0:
            raise ValueError(f"shadow stats: difference_sq_sum must be ≥ 0, got {self}")
        if self.champion.labeled != self.challenger.labeled:
            raise ValueError(
                "shadow stats: both arms must be labeled on the same requests, got "
                f"{self.champion.labeled} and {self.challenger.labeled}"
            )
        correct = (self.champion.correct, self.challenger.correct)
        if not sum(correct) - self.champion.labeled <= self.both_correct <= min(correct):
            raise ValueError(
                f"shadow stats: both_correct {self.both_correct} is impossible with "
                f"{correct} correct of {self.champion.labeled} labeled"
            )


@dataclass(frozen=True)
class Evidence:
    """The numbers behind a rollout verdict, in the policy's metric (accuracy or error rate) or,
    for a regressor, in mean squared error.

    `difference` is challenger minus champion, weighted across traffic steps by information, and
    `[ci_low, ci_high]` its anytime-valid interval in the same direction. The verdict itself reads
    the challenger's advantage (challenger minus champion where higher is better, champion minus
    challenger where lower is better) against `margin` (in the metric's units; for a regressor the
    policy's relative margin × the champion's mean squared error): promote needs `lower_bound` >
    -margin, revert `upper_bound` < -margin. Each bound holds at level 1 - alpha at every look;
    `e_value` is the evidence the challenger is worse than the margin allows, `promote_e_value`
    the evidence it is not; either decides at `threshold` = 1/alpha. `paired_labeled` counts the
    requests both models scored that the comparison used (0: arm against arm).
    """

    metric: str
    champion_labeled: int
    challenger_labeled: int
    champion_value: float | None
    challenger_value: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    e_value: float
    threshold: float
    agreement_rate: float | None = None
    margin: float | None = None
    lower_bound: float | None = None
    upper_bound: float | None = None
    promote_e_value: float = 1.0
    paired_labeled: int = 0

    def as_dict(self) -> dict[str, float | int | str | None]:
        """Plain values for tags, logs and XCom."""
        return asdict(self)


@dataclass(frozen=True)
class StepVerdict:
    """What to do with a canary step or a shadow period, why, and the evidence."""

    action: StepAction
    reasons: tuple[str, ...]
    evidence: Evidence


@dataclass(frozen=True)
class GuardEvidence:
    """The new champion against the previous champion's recorded level, in the policy's metric."""

    metric: str
    labeled: int
    value: float | None
    previous_level: float
    floor: float
    ci_low: float | None
    ci_high: float | None
    e_value: float
    threshold: float

    def as_dict(self) -> dict[str, float | int | str | None]:
        """Plain values for tags, logs and XCom."""
        return asdict(self)


@dataclass(frozen=True)
class GuardVerdict:
    """Keep the new champion or revert to the previous one, why, and the evidence."""

    action: GuardAction
    reasons: tuple[str, ...]
    evidence: GuardEvidence


def accuracy_difference(
    champion_labeled: ArrayLike,
    champion_correct: ArrayLike,
    challenger_labeled: ArrayLike,
    challenger_correct: ArrayLike,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Challenger minus champion accuracy from two separate arms and its variance, elementwise;
    arms need ≥ 1 label."""
    n_a = np.asarray(champion_labeled, dtype=float)
    x_a = np.asarray(champion_correct, dtype=float)
    n_b = np.asarray(challenger_labeled, dtype=float)
    x_b = np.asarray(challenger_correct, dtype=float)
    # Each arm's own variance (the null is a difference of -margin, not equal accuracies), with one
    # success and one failure added so it stays positive while an arm is all-correct.
    p_a, p_b = (x_a + 1) / (n_a + 2), (x_b + 1) / (n_b + 2)
    return x_b / n_b - x_a / n_a, p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b


def paired_accuracy_difference(
    labeled: ArrayLike, challenger_only: ArrayLike, champion_only: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Challenger minus champion accuracy on the same requests and its variance, elementwise, from
    the discordant pairs (only one model right); needs ≥ 1 pair."""
    n = np.asarray(labeled, dtype=float)
    b = np.asarray(challenger_only, dtype=float)
    c = np.asarray(champion_only, dtype=float)
    difference = (b - c) / n
    # Requests both models got right or both got wrong carry no information: the variance is the
    # discordant share minus the squared difference, smoothed by one discordant pair so identical
    # models still count as uncertain, and floored there.
    discordant = (b + c + 1) / (n + 2)
    return difference, np.maximum(discordant - difference * difference, 1 / (n + 2)) / n


def log_e_value(estimate: ArrayLike, variance: ArrayLike, mixing_sd: float) -> NDArray[np.float64]:
    """Log of the evidence that the true effect is negative, elementwise; reject at ≥ log(1/alpha).

    `estimate` is an approximately normal estimate of the effect with the given variance. Shift it
    to test another value: `estimate + margin` tests "the effect is below -margin".
    """
    est = np.asarray(estimate, dtype=float)
    var = np.asarray(variance, dtype=float)
    tau2 = mixing_sd * mixing_sd
    total = var + tau2
    # Johari et al.'s normal mixture restricted to negative effects (half-normal, scale mixing_sd):
    # a one-sided test of "effect < 0". In the normal approximation its likelihood ratio is a
    # martingale when the effect is 0 and a supermartingale when it is positive, so by Ville's
    # inequality it crosses 1/alpha with probability at most alpha, however often it is looked
    # at. The variance is plugged in, so the bound is asymptotic; simulations check it.
    return (
        _LOG_2
        + 0.5 * np.log(var / total)
        + est * est * tau2 / (2 * var * total)
        + log_ndtr(-est * mixing_sd / np.sqrt(var * total))
    )


def anytime_bound_width(variance: float, mixing_sd: float, alpha: float) -> float:
    """How far above a value θ an estimate must lie for the one-sided mixture test to reject
    "the effect is ≤ θ" at `alpha`: the anytime-valid lower bound is estimate − width, the upper
    bound (with the mirrored test) estimate + width.

    The test's log e-value falls strictly as the estimate rises, so the bound is where it equals
    log(1/alpha), found by bisection between the two-sided mixture's widths at 2·alpha and alpha,
    which bracket it.
    """
    threshold = math.log(1 / alpha)

    def excess(width: float) -> float:
        return float(log_e_value(-width, variance, mixing_sd)) - threshold

    low = _two_sided_half_width(variance, mixing_sd, 2 * alpha) if alpha < 0.5 else 0.0
    high = _two_sided_half_width(variance, mixing_sd, alpha)
    if excess(low) >= 0:
        return low
    return float(brentq(excess, low, high, xtol=1e-12 * max(high, _TINY), rtol=1e-12))


def _two_sided_half_width(variance: float, mixing_sd: float, alpha: float) -> float:
    # Johari et al.'s always-valid confidence interval: the two-sided normal mixture inverted.
    tau2 = mixing_sd * mixing_sd
    total = variance + tau2
    return math.sqrt(
        2 * variance * total / tau2 * (math.log(1 / alpha) + 0.5 * math.log(total / variance))
    )


def _confidence_sequence(
    estimate: float, variance: float, mixing_sd: float, alpha: float
) -> tuple[float, float]:
    # The guard window's interval: the two-sided mixture with the test's own variance.
    half = _two_sided_half_width(variance, mixing_sd, alpha)
    return estimate - half, estimate + half


def _to_metric(config: RolloutConfig, accuracy: float | None) -> float | None:
    if accuracy is None:
        return None
    return accuracy if config.metric == "accuracy" else 1.0 - accuracy


def _arm_value(config: RolloutConfig, labeled: int, outcome_total: float) -> float | None:
    """An arm's value in the measured metric from its labeled count and summed outcomes."""
    if config.task == "regression":
        return _rate(outcome_total, labeled)
    return _to_metric(config, _rate(outcome_total, labeled))


def _lower_is_better(config: RolloutConfig) -> bool:
    return config.task == "regression" or config.metric == "error_rate"


@dataclass(frozen=True)
class _Stratum:
    """One step's comparison in the "challenger better is positive" scale: the estimated advantage,
    the margin in the same units, and the variance of advantage + margin (what the tests read)."""

    advantage: float
    margin: float
    variance: float
    champion_level: float
    pairs: int


def _stratum(
    config: RolloutConfig, champion: ArmStats, challenger: ArmStats, paired: PairedStats | None
) -> _Stratum | None:
    """The comparison of one period: on the pairs when there are any, else arm against arm; None
    while there is too little to compare."""
    margin = config.non_inferiority_margin
    if config.task == "regression":
        return _regression_stratum(config, champion, challenger, paired)
    if paired is not None and paired.labeled:
        advantage, variance = paired_accuracy_difference(
            paired.labeled,
            paired.challenger_correct - paired.both_correct,
            paired.champion_correct - paired.both_correct,
        )
        level = paired.champion_correct / paired.labeled
        return _Stratum(float(advantage), margin, float(variance), level, paired.labeled)
    if not (champion.labeled and challenger.labeled):
        return None
    advantage, variance = accuracy_difference(
        champion.labeled, champion.correct, challenger.labeled, challenger.correct
    )
    level = champion.correct / champion.labeled
    return _Stratum(float(advantage), margin, float(variance), level, 0)


def _regression_stratum(
    config: RolloutConfig, champion: ArmStats, challenger: ArmStats, paired: PairedStats | None
) -> _Stratum | None:
    """Champion minus challenger mean squared error (positive: the challenger is better) against
    the margin `m` × the champion's mean squared error.

    The tests read advantage + margin = (1 + m) × champion's MSE − challenger's MSE, so the
    champion's own noise enters the margin too: arm against arm the variance is exact (the arms
    are independent, each with its own variance, Welch); on pairs the margin's share is added
    as if perfectly correlated with the paired difference (Cauchy–Schwarz), which can only widen
    the bounds. The champion's squared-error variance is its own arm's."""
    m = config.non_inferiority_margin
    champion_spread = champion.outcome_variance()
    if paired is not None and paired.labeled >= 2:
        n = paired.labeled
        advantage = paired.error_difference_sum / n
        level = paired.champion_outcome_sum / n
        spread = max((paired.error_difference_sq_sum - n * advantage * advantage) / (n - 1), 0.0)
        # Without two champion labels of its own, squared normal residuals: variance 2·mean².
        level_spread = 2 * level * level if champion_spread is None else champion_spread
        variance = (math.sqrt(spread / n) + m * math.sqrt(level_spread / n)) ** 2
        scale = max(level, paired.challenger_outcome_sum / n)
        pairs = n
    else:
        challenger_spread = challenger.outcome_variance()
        level, challenger_level = champion.mean_outcome(), challenger.mean_outcome()
        if champion_spread is None or challenger_spread is None:
            return None
        assert level is not None and challenger_level is not None
        advantage = level - challenger_level
        variance = (1 + m) ** 2 * champion_spread / champion.labeled + (
            challenger_spread / challenger.labeled
        )
        scale = max(level, challenger_level)
        pairs = 0
    # The floors scale with the errors, so the verdict does not depend on the target's units, and
    # keep a perfect or constant arm uncertain.
    floor = max((1e-6 * scale) ** 2, (1e-6 * _MIN_SCALE) ** 2, _TINY)
    return _Stratum(advantage, m * level, max(variance, floor), level, pairs)


@dataclass(frozen=True)
class _Comparison:
    evidence: Evidence
    worse: bool  # the upper bound is below -margin: revert
    non_inferior: bool  # the lower bound is above -margin: may be promoted


def _compare(
    config: RolloutConfig,
    strata: Sequence[_Stratum | None],
    *,
    champion: tuple[int, float],
    challenger: tuple[int, float],
    agreement_rate: float | None = None,
) -> _Comparison:
    """Combine the periods' strata and decide both one-sided tests. `champion` and `challenger`
    are (labeled rows, summed outcomes) for the record."""
    # Each step is its own stratum: traffic shares differ between steps, so pooling raw counts
    # would confound the comparison with drift over time. Strata are combined by inverse
    # variance, which keeps each test's statistic a (super)martingale across step boundaries.
    usable = [s for s in strata if s is not None]
    information = sum(1 / s.variance for s in usable)

    def weighted(value: Callable[[_Stratum], float]) -> float:
        return sum(value(s) / s.variance for s in usable) / information

    margin: float | None = None
    advantage = lower = upper = None
    log_e_worse = log_e_non_inferior = 0.0
    if information:
        advantage, margin, level = (
            weighted(lambda s: s.advantage),
            weighted(lambda s: s.margin),
            weighted(lambda s: s.champion_level),
        )
        variance = 1 / information
        revert_sd, promote_sd = _mixing_sds(config, level)
        lower = advantage - anytime_bound_width(variance, promote_sd, config.alpha)
        upper = advantage + anytime_bound_width(variance, revert_sd, config.alpha)
        log_e_worse = float(log_e_value(advantage + margin, variance, revert_sd))
        log_e_non_inferior = float(log_e_value(-(advantage + margin), variance, promote_sd))
    elif config.task != "regression":
        margin = config.non_inferiority_margin
    worse = upper is not None and margin is not None and upper < -margin
    non_inferior = lower is not None and margin is not None and lower > -margin
    flip = -1.0 if _lower_is_better(config) else 1.0
    difference = None if advantage is None else flip * advantage
    bounds = (
        (None, None) if lower is None or upper is None else sorted((flip * lower, flip * upper))
    )
    evidence = Evidence(
        metric=config.measured,
        champion_labeled=champion[0],
        challenger_labeled=challenger[0],
        champion_value=_arm_value(config, *champion),
        challenger_value=_arm_value(config, *challenger),
        difference=difference,
        ci_low=bounds[0],
        ci_high=bounds[1],
        e_value=_reported_e(log_e_worse),
        threshold=1 / config.alpha,
        agreement_rate=agreement_rate,
        margin=margin,
        lower_bound=lower,
        upper_bound=upper,
        promote_e_value=_reported_e(log_e_non_inferior),
        paired_labeled=sum(s.pairs for s in usable),
    )
    return _Comparison(evidence, worse, non_inferior)


def _mixing_sds(config: RolloutConfig, champion_level: float) -> tuple[float, float]:
    """The mixture scales of the revert and the promote test, in the advantage's units.

    The revert test is tuned to a drop of `expected_effect` beyond the margin (for a regressor
    the relative rise `relative_error_effect` of the champion's mean squared error), the promote
    test to a challenger as good as the champion, which lies one margin above the boundary."""
    if config.task != "regression":
        return config.expected_effect, config.non_inferiority_margin
    level = max(champion_level, 0.0)
    return (
        max(config.relative_error_effect * level, _MIN_SCALE),
        max(config.non_inferiority_margin * level, _MIN_SCALE),
    )


def _rate(part: float, whole: int) -> float | None:
    return part / whole if whole else None


def _describe(evidence: Evidence) -> str:
    """The numbers in words, and which bound decides."""
    if evidence.difference is None or evidence.lower_bound is None or evidence.margin is None:
        return (
            f"{evidence.metric}: not comparable yet ({evidence.challenger_labeled} challenger and "
            f"{evidence.champion_labeled} champion labels)"
        )
    assert evidence.upper_bound is not None
    level = f"{1 - 1 / evidence.threshold:.0%}"
    pairs = (
        f", paired on {evidence.paired_labeled} requests both models scored"
        if evidence.paired_labeled
        else ", arm against arm"
    )
    floor = -evidence.margin
    if evidence.upper_bound < floor:
        decides = (
            f"its upper bound {evidence.upper_bound:+.4g} is below -margin {floor:+.4g}: "
            "worse than the margin allows"
        )
    elif evidence.lower_bound > floor:
        decides = (
            f"its lower bound {evidence.lower_bound:+.4g} clears -margin {floor:+.4g}: non-inferior"
        )
    else:
        decides = (
            f"undecided: promoting needs the lower bound {evidence.lower_bound:+.4g} above "
            f"-margin {floor:+.4g}, reverting needs the upper bound {evidence.upper_bound:+.4g} "
            "below it"
        )
    return (
        f"{evidence.metric}: challenger {_shown(evidence.challenger_value)} "
        f"(n={evidence.challenger_labeled}) vs champion {_shown(evidence.champion_value)} "
        f"(n={evidence.champion_labeled}), difference {evidence.difference:+.4f}{pairs}; "
        f"the challenger's advantage has {level} anytime-valid one-sided bounds "
        f"[{evidence.lower_bound:+.4g}, {evidence.upper_bound:+.4g}]; {decides} "
        f"(e-values: worse {evidence.e_value:.3g}, non-inferior {evidence.promote_e_value:.3g}; "
        f"either decides at ≥ {evidence.threshold:.3g})"
    )


def _shown(value: float | None) -> str:
    # An arm may have no labeled rows of its own while the pairs already compare both models.
    return "n/a" if value is None else f"{value:.4f}"


def _guardrail_breaches(config: RolloutConfig, arm: ArmStats, who: str) -> list[str]:
    breaches = []
    # Errors are counted over at least min_guardrail_requests, so one early error does not end a
    # quiet step, while a challenger failing most requests trips after a handful.
    if arm.errors > config.max_error_rate * max(arm.requests, config.min_guardrail_requests):
        breaches.append(
            f"error-rate guardrail: {who} failed {arm.errors} of {arm.requests} requests, above "
            f"max_error_rate {config.max_error_rate:.2%} "
            f"(counted over at least {config.min_guardrail_requests} requests)"
        )
    # A p99 of a few requests is their maximum, often one cold start: wait for enough requests.
    if (
        arm.p99_latency_ms is not None
        and arm.requests >= config.min_guardrail_requests
        and arm.p99_latency_ms > config.max_p99_latency_ms
    ):
        breaches.append(
            f"p99-latency guardrail: {who} p99 latency {arm.p99_latency_ms:.0f} ms over "
            f"{arm.requests} requests, above max_p99_latency_ms {config.max_p99_latency_ms:.0f} ms"
        )
    return breaches


def _canary_comparison(config: RolloutConfig, periods: Sequence[StepStats]) -> _Comparison:
    total = (
        (lambda arm: arm.outcome_sum) if config.task == "regression" else (lambda arm: arm.correct)
    )
    return _compare(
        config,
        [_stratum(config, p.champion, p.challenger, p.paired) for p in periods],
        champion=(
            sum(p.champion.labeled for p in periods),
            sum(total(p.champion) for p in periods),
        ),
        challenger=(
            sum(p.challenger.labeled for p in periods),
            sum(total(p.challenger) for p in periods),
        ),
    )


def _timeout(
    config: RolloutConfig, where: str, elapsed_seconds: float, missing: str, evidence: Evidence
) -> StepVerdict:
    reason = (
        f"{where} reached its maximum duration ({elapsed_seconds:.0f} s ≥ "
        f"{config.max_step_seconds:.0f} s) with {missing}"
    )
    if config.on_timeout == "revert":
        return StepVerdict(
            "revert",
            (reason + "; on_timeout is 'revert' (fail closed)", _describe(evidence)),
            evidence,
        )
    return StepVerdict(
        "wait",
        (reason + "; on_timeout is 'hold': waiting for more evidence", _describe(evidence)),
        evidence,
    )


def analyze_step(
    config: RolloutConfig,
    step_index: int,
    stats: StepStats,
    elapsed_seconds: float,
    *,
    earlier_steps: Sequence[StepStats] = (),
) -> StepVerdict:
    """Decide a canary step by non-inferiority: revert on a guardrail or once the anytime-valid
    upper bound of the challenger's advantage is below -margin; step up once both arms have
    `min_labeled_per_step` labels; after the last step promote only once, in addition, the lower
    bound clears -margin; else wait, and at the step's maximum duration do what `on_timeout` says.

    Pass the stats of the steps already completed as `earlier_steps`: the tests then run over the
    whole rollout, so their error rates are `alpha` for the rollout rather than per step. A step
    whose `paired` stats are filled is judged on those pairs.
    """
    if config.mode != "canary":
        raise ValueError(f"analyze_step needs a canary config, got mode {config.mode!r}")
    if not 0 <= step_index < len(config.traffic_steps):
        raise ValueError(
            f"step_index: must be in [0, {len(config.traffic_steps)}), got {step_index}"
        )
    share = config.traffic_steps[step_index]
    where = f"step {step_index + 1}/{len(config.traffic_steps)} ({share:.0%} traffic)"
    comparison = _canary_comparison(config, [*earlier_steps, stats])
    evidence = comparison.evidence

    breaches = _guardrail_breaches(config, stats.challenger, "challenger")
    if breaches:
        return StepVerdict("revert", (*breaches, _describe(evidence)), evidence)
    if comparison.worse:
        return StepVerdict(
            "revert",
            (
                f"{where}: the challenger is worse than the champion by more than the margin",
                _describe(evidence),
            ),
            evidence,
        )

    labeled = min(stats.champion.labeled, stats.challenger.labeled)
    counts = (
        f"{stats.challenger.labeled} challenger and {stats.champion.labeled} champion labels "
        f"this step (need {config.min_labeled_per_step} each)"
    )
    last = step_index == len(config.traffic_steps) - 1
    if labeled >= config.min_labeled_per_step and not last:
        return StepVerdict(
            "step_up",
            (
                f"{where}: {counts} and no evidence the challenger is worse than the margin "
                f"allows: step up to {config.traffic_steps[step_index + 1]:.0%}",
                _describe(evidence),
            ),
            evidence,
        )
    if labeled >= config.min_labeled_per_step and comparison.non_inferior:
        return StepVerdict(
            "promote",
            (f"{where}: {counts}; the challenger is non-inferior: promote", _describe(evidence)),
            evidence,
        )
    missing = (
        f"only {counts}"
        if labeled < config.min_labeled_per_step
        else "no evidence yet that the challenger is non-inferior"
    )
    if elapsed_seconds >= config.max_step_seconds:
        return _timeout(config, where, elapsed_seconds, missing, evidence)
    waiting = (
        f"waiting for labels, {counts}"
        if labeled < config.min_labeled_per_step
        else f"{counts}; waiting until the challenger is shown non-inferior"
    )
    return StepVerdict("wait", (f"{where}: {waiting}", _describe(evidence)), evidence)


def analyze_shadow(
    config: RolloutConfig, stats: ShadowStats, elapsed_seconds: float
) -> StepVerdict:
    """Decide a shadow period from both models' answers to the same requests, by the same
    non-inferiority rule on the pairs: revert on a guardrail, too little agreement or an upper
    bound below -margin; promote once enough labels and a lower bound above -margin; else wait
    or time out.
    """
    if config.mode != "shadow":
        raise ValueError(f"analyze_shadow needs a shadow config, got mode {config.mode!r}")
    regression = config.task == "regression"
    agreement = None if regression else _rate(stats.agreed, stats.compared)
    n = stats.champion.labeled
    total = (lambda arm: arm.outcome_sum) if regression else (lambda arm: arm.correct)
    pairs = PairedStats(
        labeled=n,
        challenger_correct=stats.challenger.correct,
        champion_correct=stats.champion.correct,
        both_correct=stats.both_correct,
        challenger_outcome_sum=stats.challenger.outcome_sum,
        champion_outcome_sum=stats.champion.outcome_sum,
        error_difference_sum=stats.difference_sum,
        error_difference_sq_sum=stats.difference_sq_sum,
    )
    comparison = _compare(
        config,
        [_stratum(config, stats.champion, stats.challenger, pairs) if n else None],
        champion=(n, total(stats.champion)),
        challenger=(n, total(stats.challenger)),
        agreement_rate=agreement,
    )
    evidence = comparison.evidence
    if regression:
        agreement_text = f"{stats.compared} requests scored by both models"
    elif agreement is not None:
        agreement_text = f"agreement {agreement:.2%} on {stats.compared} requests"
    else:
        agreement_text = "no request scored by both models yet"

    reasons = _guardrail_breaches(config, stats.challenger, "challenger")
    if config.min_agreement is not None and agreement is not None:
        floor = config.min_agreement
        # The same one-sided mixture, on the agreement rate against the policy's floor.
        log_e = float(
            log_e_value(
                agreement - floor, floor * (1 - floor) / stats.compared, config.expected_effect
            )
        )
        if log_e >= math.log(1 / config.alpha):
            reasons.append(
                f"shadow: {agreement_text} is below min_agreement {floor:.2%} "
                f"(e-value {_reported_e(log_e):.3g})"
            )
    if comparison.worse:
        reasons.append(
            "shadow: the challenger is worse than the champion on the same requests by more "
            "than the margin"
        )
    if reasons:
        return StepVerdict("revert", (*reasons, _describe(evidence)), evidence)

    counts = f"{n} labeled requests (need {config.min_labeled_per_step})"
    enough = n >= config.min_labeled_per_step
    if enough and comparison.non_inferior:
        return StepVerdict(
            "promote",
            (
                f"shadow: {counts}, {agreement_text}; the challenger is non-inferior: promote",
                _describe(evidence),
            ),
            evidence,
        )
    missing = f"only {counts}" if not enough else "no evidence yet that it is non-inferior"
    if elapsed_seconds >= config.max_step_seconds:
        return _timeout(config, "shadow", elapsed_seconds, missing, evidence)
    waiting = (
        f"waiting for labels, {counts}"
        if not enough
        else f"{counts}; waiting until the challenger is shown non-inferior"
    )
    return StepVerdict(
        "wait", (f"shadow: {waiting}; {agreement_text}", _describe(evidence)), evidence
    )


def guard_window_verdict(
    config: RolloutConfig, champion_stats: ArmStats, previous_champion_level: float
) -> GuardVerdict:
    """Revert a new champion whose metric is shown (anytime-valid) to be worse than the previous
    champion's recorded level by more than `guard_margin`, or that breaks a guardrail; else keep.
    For a regressor the level is a mean squared error and the margin relative to it.
    """
    if config.task == "regression":
        return _regression_guard(config, champion_stats, previous_champion_level)
    if not 0 <= previous_champion_level <= 1:
        raise ValueError(
            f"previous_champion_level: must be a {config.metric} in [0, 1], "
            f"got {previous_champion_level}"
        )
    to_accuracy = 1.0 if config.metric == "accuracy" else -1.0
    level_accuracy = previous_champion_level if to_accuracy > 0 else 1 - previous_champion_level
    floor_accuracy = level_accuracy - config.guard_margin
    floor = previous_champion_level - to_accuracy * config.guard_margin
    n = champion_stats.labeled
    log_e, low, high, value = 0.0, None, None, None
    if n:
        accuracy = champion_stats.correct / n
        value = _to_metric(config, accuracy)
        # The recorded level is taken as known; the variance is the one at the floor (the null),
        # kept away from 0 and 1 so a perfect recorded level still gives a usable test.
        p = min(max(floor_accuracy, 1 / (n + 2)), 1 - 1 / (n + 2))
        variance = p * (1 - p) / n
        log_e = float(log_e_value(accuracy - floor_accuracy, variance, config.expected_effect))
        low, high = _confidence_sequence(accuracy, variance, config.expected_effect, config.alpha)
        if to_accuracy < 0:
            low, high = 1 - high, 1 - low
    evidence = GuardEvidence(
        metric=config.metric,
        labeled=n,
        value=value,
        previous_level=previous_champion_level,
        floor=floor,
        ci_low=low,
        ci_high=high,
        e_value=_reported_e(log_e),
        threshold=1 / config.alpha,
    )
    summary = (
        f"{config.metric}: champion {value:.4f} (n={n}) vs previous champion's "
        f"{previous_champion_level:.4f} with margin {config.guard_margin:.4f} (floor {floor:.4f}), "
        f"{1 - config.alpha:.0%} anytime-valid interval [{low:.4f}, {high:.4f}]; "
        f"e-value {evidence.e_value:.3g} (revert at ≥ {evidence.threshold:.3g})"
        if value is not None and low is not None and high is not None
        else f"{config.metric}: no labeled outcomes for the champion yet"
    )
    return _guard_verdict(config, champion_stats, evidence, summary, log_e)


def _guard_verdict(
    config: RolloutConfig,
    champion_stats: ArmStats,
    evidence: GuardEvidence,
    summary: str,
    log_e: float,
) -> GuardVerdict:
    reasons = _guardrail_breaches(config, champion_stats, "champion")
    if log_e >= math.log(1 / config.alpha):
        reasons.append("guard window: the new champion is below the previous champion's level")
    if reasons:
        return GuardVerdict("revert", (*reasons, summary), evidence)
    return GuardVerdict("keep", ("guard window: no evidence of a regression", summary), evidence)


def _regression_guard(
    config: RolloutConfig, champion_stats: ArmStats, previous_level: float
) -> GuardVerdict:
    """The guard window on squared errors: is the champion's mean squared error shown to be above
    the previous champion's recorded one × (1 + guard_margin)?"""
    if not (math.isfinite(previous_level) and previous_level >= 0):
        raise ValueError(
            f"previous_champion_level: must be a mean squared error ≥ 0, got {previous_level}"
        )
    ceiling = previous_level * (1 + config.guard_margin)
    mixing_sd = max(config.relative_error_effect * previous_level, _MIN_SCALE)
    n = champion_stats.labeled
    mean, spread = champion_stats.mean_outcome(), champion_stats.outcome_variance()
    log_e, low, high = 0.0, None, None
    if mean is not None and spread is not None:
        # The recorded level is taken as known, as for a classifier; the variance is the arm's own.
        variance = max(spread / n, (mixing_sd * 1e-6) ** 2)
        log_e = float(log_e_value(ceiling - mean, variance, mixing_sd))
        low, high = _confidence_sequence(mean, variance, mixing_sd, config.alpha)
    evidence = GuardEvidence(
        metric=SQUARED_ERROR,
        labeled=n,
        value=mean,
        previous_level=previous_level,
        floor=ceiling,
        ci_low=low,
        ci_high=high,
        e_value=_reported_e(log_e),
        threshold=1 / config.alpha,
    )
    summary = (
        f"{SQUARED_ERROR}: champion mean {mean:.4g} (n={n}) vs previous champion's "
        f"{previous_level:.4g} with relative margin {config.guard_margin:.2%} (ceiling "
        f"{ceiling:.4g}), {1 - config.alpha:.0%} anytime-valid interval [{low:.4g}, {high:.4g}]; "
        f"e-value {evidence.e_value:.3g} (revert at ≥ {evidence.threshold:.3g})"
        if mean is not None and low is not None and high is not None
        else f"{SQUARED_ERROR}: fewer than two labeled outcomes for the champion yet"
    )
    return _guard_verdict(config, champion_stats, evidence, summary, log_e)
