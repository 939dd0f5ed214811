"""Canary, shadow and guard-window verdicts: step up, promote, revert, keep or wait.

Challenger and champion are compared with a one-sided mixture sequential probability ratio test
(mSPRT; Johari et al., "Always valid inference", 2017) on labeled outcomes of the same period. Its
verdict may be read after every batch of labels without pushing false reverts above `alpha`.

Each labeled row has one outcome (`row_outcomes`): for a classifier (binary or multiclass) whether
its class was right, compared as accuracy; for a regressor its squared error, compared as the
difference of mean squared errors with the arms' own variances (Welch), on the same test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import log_ndtr

Mode = Literal["canary", "shadow"]
RolloutTask = Literal["binary", "multiclass", "regression"]
RolloutMetric = Literal["accuracy", "error_rate"]
TimeoutAction = Literal["revert", "hold"]
StepAction = Literal["step_up", "promote", "revert", "wait"]
GuardAction = Literal["keep", "revert"]

_LOG_2 = math.log(2.0)
# exp() of anything larger overflows a float; an e-value this large is a revert whatever alpha is.
_MAX_LOG_E = 700.0
# Scales of the regression test are kept above these, so a perfect or constant arm still gives a
# usable (finite) statistic.
_MIN_SCALE = 1e-12
SQUARED_ERROR = "squared_error"
# Keeps an inverse variance finite when every outcome of both arms is 0 (perfect predictions).
_TINY = 1e-300
# The rise of the mean squared error the regression test is tuned to by default, per unit of the
# policy's `expected_effect`: 0.03 (an accuracy drop of 3 points) becomes a 60 % rise. Squared
# errors spread about as widely as their mean (√2 × it for normal residuals), far more than a
# right/wrong outcome does, so a tuning much smaller than the rises worth catching would leave a
# clearly worse regressor serving for many more labels before its revert.
ERROR_EFFECT_PER_EXPECTED_EFFECT = 20.0
DEFAULT_MARGIN = 0.02
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

    `expected_effect` is the accuracy drop (absolute, e.g. 0.03) the test is tuned to catch fastest;
    `guard_margin` is how far (in the metric's units) a new champion may fall below the previous
    champion's recorded level before the guard window reverts it.

    For `task` regression the rows' outcome is the squared error and the arms are compared on
    their mean squared error (`metric` is then `squared_error`, lower is better):
    `error_effect` is the relative rise of the champion's mean squared error the test is tuned to
    catch fastest (0.6: 60 % higher; by default `expected_effect` × 20), and `guard_margin` is
    relative too: the guard window reverts a champion shown to have a mean squared error above
    the previous champion's recorded one × (1 + `guard_margin`). Like the classification test's,
    the tuning changes how fast a difference is caught, never the false-revert rate.
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
        classifier (default 0.02), the relative rise of the mean squared error for a regressor
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

    `difference` is challenger minus champion, weighted across traffic steps by information;
    the confidence sequence `[ci_low, ci_high]` holds at level 1 - alpha at every look.
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


def pooled_difference(
    champion_labeled: ArrayLike,
    champion_correct: ArrayLike,
    challenger_labeled: ArrayLike,
    challenger_correct: ArrayLike,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Challenger minus champion accuracy and its variance, elementwise; arms need ≥ 1 label."""
    n_a = np.asarray(champion_labeled, dtype=float)
    x_a = np.asarray(champion_correct, dtype=float)
    n_b = np.asarray(challenger_labeled, dtype=float)
    x_b = np.asarray(challenger_correct, dtype=float)
    # Variance under "no difference" (pooled, as in a score test): the false-revert guarantee rests
    # on it. One success and one failure are added so it stays positive while both arms are
    # all-correct.
    pooled = (x_a + x_b + 1) / (n_a + n_b + 2)
    return x_b / n_b - x_a / n_a, pooled * (1 - pooled) * (1 / n_a + 1 / n_b)


def log_e_value(estimate: ArrayLike, variance: ArrayLike, mixing_sd: float) -> NDArray[np.float64]:
    """Log of the evidence that the true effect is negative, elementwise; revert at ≥ log(1/alpha).

    `estimate` is an approximately normal estimate of the effect with the given variance.
    """
    est = np.asarray(estimate, dtype=float)
    var = np.asarray(variance, dtype=float)
    tau2 = mixing_sd * mixing_sd
    total = var + tau2
    # Johari et al.'s normal mixture restricted to negative effects (half-normal, scale mixing_sd):
    # a one-sided test of "challenger worse". In the normal approximation its likelihood ratio is a
    # martingale when the effect is 0 and a supermartingale when the challenger is better, so by
    # Ville's inequality it crosses 1/alpha with probability at most alpha, however often it is
    # looked at. The variance is plugged in, so the bound is asymptotic; simulations check it.
    return (
        _LOG_2
        + 0.5 * np.log(var / total)
        + est * est * tau2 / (2 * var * total)
        + log_ndtr(-est * mixing_sd / np.sqrt(var * total))
    )


def _confidence_sequence(
    estimate: float, variance: float, mixing_sd: float, alpha: float
) -> tuple[float, float]:
    # Inverts the two-sided normal mixture (Johari et al.'s always-valid confidence interval) with
    # the test's own variance, so interval and verdict agree near "no difference", where it matters.
    tau2 = mixing_sd * mixing_sd
    total = variance + tau2
    half = math.sqrt(
        2 * variance * total / tau2 * (math.log(1 / alpha) + 0.5 * math.log(total / variance))
    )
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


def _difference_to_metric(
    config: RolloutConfig, difference: float | None, low: float | None, high: float | None
) -> tuple[float | None, float | None, float | None]:
    # The tests run on "challenger better" > 0 (accuracy, or minus the squared error); a metric
    # where lower is better reads the other way round.
    lower_is_better = config.task == "regression" or config.metric == "error_rate"
    if not lower_is_better or difference is None or low is None or high is None:
        return difference, low, high
    return -difference, -high, -low


def _mixing_sd(config: RolloutConfig, champion_error: float | None) -> float:
    """The scale of the effect the test is tuned to: the accuracy drop, or for a regressor the
    relative rise of the champion's mean squared error in its units."""
    if config.task != "regression":
        return config.expected_effect
    return max(config.relative_error_effect * (champion_error or 0.0), _MIN_SCALE)


def _evidence(
    config: RolloutConfig,
    *,
    estimate: float | None,
    variance: float | None,
    champion: tuple[int, float],
    challenger: tuple[int, float],
    agreement_rate: float | None = None,
) -> tuple[Evidence, bool]:
    """The evidence of one comparison, and whether it says revert. `champion` and `challenger`
    are (labeled rows, summed outcomes); `estimate` is positive when the challenger is better."""
    mixing_sd = _mixing_sd(config, _rate(champion[1], champion[0]))
    if estimate is None or variance is None:
        log_e, low, high = 0.0, None, None
    else:
        if config.task == "regression":
            variance = max(variance, (mixing_sd * 1e-6) ** 2)
        log_e = float(log_e_value(estimate, variance, mixing_sd))
        low, high = _confidence_sequence(estimate, variance, mixing_sd, config.alpha)
    difference, low, high = _difference_to_metric(config, estimate, low, high)
    evidence = Evidence(
        metric=config.measured,
        champion_labeled=champion[0],
        challenger_labeled=challenger[0],
        champion_value=_arm_value(config, *champion),
        challenger_value=_arm_value(config, *challenger),
        difference=difference,
        ci_low=low,
        ci_high=high,
        e_value=math.exp(min(log_e, _MAX_LOG_E)),
        threshold=1 / config.alpha,
        agreement_rate=agreement_rate,
    )
    return evidence, log_e >= math.log(1 / config.alpha)


def _rate(part: float, whole: int) -> float | None:
    return part / whole if whole else None


def _describe(evidence: Evidence) -> str:
    if evidence.difference is None:
        return (
            f"{evidence.metric}: not comparable yet ({evidence.challenger_labeled} challenger and "
            f"{evidence.champion_labeled} champion labels)"
        )
    return (
        f"{evidence.metric}: challenger {evidence.challenger_value:.4f} "
        f"(n={evidence.challenger_labeled}) vs champion {evidence.champion_value:.4f} "
        f"(n={evidence.champion_labeled}), difference {evidence.difference:+.4f}, "
        f"{1 - 1 / evidence.threshold:.0%} anytime-valid interval "
        f"[{evidence.ci_low:+.4f}, {evidence.ci_high:+.4f}]; "
        f"e-value {evidence.e_value:.3g} (revert at ≥ {evidence.threshold:.3g})"
    )


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


def _canary_evidence(config: RolloutConfig, periods: Sequence[StepStats]) -> tuple[Evidence, bool]:
    # Each step is its own stratum: traffic shares differ between steps, so pooling raw counts
    # would confound the comparison with drift over time. Strata are combined by inverse
    # variance, which keeps the statistic a (super)martingale across step boundaries.
    information = 0.0
    weighted = 0.0
    regression = config.task == "regression"
    for period in periods:
        a, b = period.champion, period.challenger
        if regression:
            stratum = _error_difference(a, b)
            if stratum is None:
                continue
            estimate, variance = stratum
        elif a.labeled and b.labeled:
            estimate, variance = pooled_difference(a.labeled, a.correct, b.labeled, b.correct)
        else:
            continue
        information += 1 / float(variance)
        weighted += float(estimate) / float(variance)
    total = (lambda arm: arm.outcome_sum) if regression else (lambda arm: arm.correct)
    champion = (
        sum(p.champion.labeled for p in periods),
        sum(total(p.champion) for p in periods),
    )
    challenger = (
        sum(p.challenger.labeled for p in periods),
        sum(total(p.challenger) for p in periods),
    )
    if not information:
        return _evidence(
            config, estimate=None, variance=None, champion=champion, challenger=challenger
        )
    return _evidence(
        config,
        estimate=weighted / information,
        variance=1 / information,
        champion=champion,
        challenger=challenger,
    )


def _error_difference(champion: ArmStats, challenger: ArmStats) -> tuple[float, float] | None:
    """Champion minus challenger mean squared error (positive: the challenger is better) and its
    variance; None until each arm has two labels.

    Equal means do not make the arms' spreads equal, so each arm keeps its own variance (Welch),
    floored so a constant arm still counts as uncertain."""
    a_var, b_var = champion.outcome_variance(), challenger.outcome_variance()
    a_mean, b_mean = champion.mean_outcome(), challenger.mean_outcome()
    if a_var is None or b_var is None or a_mean is None or b_mean is None:
        return None
    variance = a_var / champion.labeled + b_var / challenger.labeled
    # The floor scales with the errors, so the verdict does not depend on the target's units.
    return a_mean - b_mean, max(variance, (1e-6 * max(a_mean, b_mean)) ** 2, _TINY)


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
        (reason + "; on_timeout is 'hold': waiting for labels", _describe(evidence)),
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
    """Decide a canary step: revert on a guardrail or evidence the challenger is worse, else step up
    (promote after the last step) once both arms have enough labels, else wait or time out.

    Pass the stats of the steps already completed as `earlier_steps`: the test then runs over the
    whole rollout, so its false-revert rate is `alpha` for the rollout rather than per step.
    """
    if config.mode != "canary":
        raise ValueError(f"analyze_step needs a canary config, got mode {config.mode!r}")
    if not 0 <= step_index < len(config.traffic_steps):
        raise ValueError(
            f"step_index: must be in [0, {len(config.traffic_steps)}), got {step_index}"
        )
    share = config.traffic_steps[step_index]
    where = f"step {step_index + 1}/{len(config.traffic_steps)} ({share:.0%} traffic)"
    evidence, worse = _canary_evidence(config, [*earlier_steps, stats])

    breaches = _guardrail_breaches(config, stats.challenger, "challenger")
    if breaches:
        return StepVerdict("revert", (*breaches, _describe(evidence)), evidence)
    if worse:
        return StepVerdict(
            "revert",
            (f"{where}: the challenger is worse than the champion", _describe(evidence)),
            evidence,
        )

    labeled = min(stats.champion.labeled, stats.challenger.labeled)
    counts = (
        f"{stats.challenger.labeled} challenger and {stats.champion.labeled} champion labels "
        f"this step (need {config.min_labeled_per_step} each)"
    )
    if labeled >= config.min_labeled_per_step:
        last = step_index == len(config.traffic_steps) - 1
        action: StepAction = "promote" if last else "step_up"
        outcome = "promote" if last else f"step up to {config.traffic_steps[step_index + 1]:.0%}"
        return StepVerdict(
            action,
            (
                f"{where}: {counts} and no evidence the challenger is worse: {outcome}",
                _describe(evidence),
            ),
            evidence,
        )
    if elapsed_seconds >= config.max_step_seconds:
        return _timeout(config, where, elapsed_seconds, f"only {counts}", evidence)
    return StepVerdict(
        "wait", (f"{where}: waiting for labels, {counts}", _describe(evidence)), evidence
    )


def analyze_shadow(
    config: RolloutConfig, stats: ShadowStats, elapsed_seconds: float
) -> StepVerdict:
    """Decide a shadow period from both models' answers to the same requests: revert on a guardrail,
    too little agreement or labeled evidence the challenger is worse; promote once enough labels.
    """
    if config.mode != "shadow":
        raise ValueError(f"analyze_shadow needs a shadow config, got mode {config.mode!r}")
    regression = config.task == "regression"
    agreement = None if regression else _rate(stats.agreed, stats.compared)
    n = stats.champion.labeled
    estimate = variance = None
    if regression and n >= 2:
        # Paired squared errors: the mean of (champion − challenger) per request, with the
        # variance of those differences.
        estimate = stats.difference_sum / n
        spread = (stats.difference_sq_sum - n * estimate * estimate) / (n - 1)
        variance = max(spread / n, 0.0)
    elif not regression and n:
        # Paired outcomes: only requests where exactly one model is right carry information
        # (McNemar). The variance is again the one under "no difference", smoothed to stay > 0.
        champion_only = stats.champion.correct - stats.both_correct
        challenger_only = stats.challenger.correct - stats.both_correct
        estimate = (challenger_only - champion_only) / n
        variance = (champion_only + challenger_only + 1) / (n + 2) / n
    total = (lambda arm: arm.outcome_sum) if regression else (lambda arm: arm.correct)
    evidence, worse = _evidence(
        config,
        estimate=estimate,
        variance=variance,
        champion=(n, total(stats.champion)),
        challenger=(n, total(stats.challenger)),
        agreement_rate=agreement,
    )
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
                f"(e-value {math.exp(min(log_e, _MAX_LOG_E)):.3g})"
            )
    if worse:
        reasons.append("shadow: the challenger is worse than the champion on the same requests")
    if reasons:
        return StepVerdict("revert", (*reasons, _describe(evidence)), evidence)

    counts = f"{n} labeled requests (need {config.min_labeled_per_step})"
    if n >= config.min_labeled_per_step:
        return StepVerdict(
            "promote",
            (
                f"shadow: {counts}, {agreement_text}, no evidence the challenger is worse: promote",
                _describe(evidence),
            ),
            evidence,
        )
    if elapsed_seconds >= config.max_step_seconds:
        return _timeout(config, "shadow", elapsed_seconds, f"only {counts}", evidence)
    return StepVerdict(
        "wait",
        (f"shadow: waiting for labels, {counts}; {agreement_text}", _describe(evidence)),
        evidence,
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
        e_value=math.exp(min(log_e, _MAX_LOG_E)),
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
        e_value=math.exp(min(log_e, _MAX_LOG_E)),
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
