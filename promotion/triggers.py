"""Retraining triggers: when the live champion, the new data or the gate say "train now".

Pure functions of counts, scores and times. The performance trigger fires only when the whole
confidence interval of the champion's live metric lies beyond the policy's bound, never on a dip
of the point estimate; the gate turns the signals that held into at most one training per
incident (cooldown, daily cap, nothing while a run of the model is active).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import numpy as np
from scipy import stats

from promotion.metrics import (
    METRICS,
    confusion_counts,
    higher_is_better,
    label_metric_from_counts,
    roc_auc,
    row_log_loss,
)

KINDS: tuple[str, ...] = ("performance", "data_volume", "drift")
F1_RESAMPLES = 2000
REGRESSION_METRICS = frozenset({"rmse", "mae", "r2"})
MULTICLASS_METRICS = frozenset({"accuracy", "macro_f1", "log_loss"})
# Probabilities are clipped before the logarithm, as promotion.metrics does for binary log loss.
_EPS = 1e-15


@dataclass(frozen=True)
class PerformanceRule:
    """The policy's `triggers.performance`, with the metric of its promotion section."""

    metric: str
    floor: float | None
    max_drop: float | None
    min_labeled: int
    confidence: float

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric: unknown {self.metric!r}; use one of {', '.join(METRICS)}")
        if self.floor is None and self.max_drop is None:
            raise ValueError("give a floor, a max_drop, or both")
        if not 0.5 < self.confidence < 1:
            raise ValueError(f"confidence: must be in (0.5, 1), got {self.confidence}")


@dataclass(frozen=True)
class PerformanceSignal:
    """The live metric, its interval and the bound it was held against (the monitor's numbers)."""

    metric: str
    value: float | None
    lower: float | None
    upper: float | None
    confidence: float
    labeled: int
    floor: float | None
    max_drop: float | None
    promoted_level: float | None
    fired: bool
    reason: str

    def as_signal(self) -> dict:
        """The `performance` entry of a monitor check's signals."""
        return asdict(self)


def _wilson(successes: int, trials: int, z: float) -> tuple[float, float, float]:
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (
        z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    )
    # Wilson's interval always holds p; the clamp keeps rounding (p = 0 or 1) from moving an end
    # past it.
    return p, max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def metric_interval(
    metric: str, labels: np.ndarray, scores: np.ndarray, confidence: float, seed: int = 0
) -> tuple[float, float, float]:
    """The metric on labeled rows and its two-sided `confidence` interval: (value, lower, upper).

    Binary (1-D probabilities, labels 0/1): accuracy, precision and recall are proportions
    (Wilson's score interval); ROC AUC uses Hanley and McNeil's variance; log loss the normal
    interval of its mean; F1 a seeded bootstrap of the confusion counts. Multiclass (2-D
    probabilities, labels the column index of the true class) and regression (rmse, mae, r2 on
    values) as `_multiclass_interval` and `_regression_interval` say. ValueError when the rows
    cannot give the metric (e.g. one class for AUC).
    """
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    if labels.size == 0:
        raise ValueError("no labeled rows")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    if metric in REGRESSION_METRICS:
        return _regression_interval(metric, labels.astype(np.float64), scores, confidence, z, seed)
    if scores.ndim == 2:
        return _multiclass_interval(metric, labels.astype(int), scores, confidence, z, seed)
    tp, fp, fn, tn = confusion_counts(labels, scores)
    if metric in ("accuracy", "precision", "recall"):
        hits, trials = {
            "accuracy": (tp + tn, labels.size),
            "precision": (tp, tp + fp),
            "recall": (tp, tp + fn),
        }[metric]
        if trials == 0:
            raise ValueError(
                f"{metric} needs rows that are {'predicted' if metric == 'precision' else 'actually'} positive"
            )
        return _wilson(hits, trials, z)
    if metric == "f1":
        value = float(label_metric_from_counts("f1", tp, fp, fn, tn))
        draws = np.random.default_rng(seed).multinomial(
            labels.size, np.array([tp, fp, fn, tn]) / labels.size, size=F1_RESAMPLES
        )
        resampled = label_metric_from_counts("f1", *draws.T)
        tail = (1 - confidence) / 2
        low, high = np.quantile(resampled, [tail, 1 - tail])
        return value, float(low), float(high)
    if metric == "roc_auc":
        auc = roc_auc(labels, scores)
        n_pos = int(np.count_nonzero(labels == 1))
        n_neg = labels.size - n_pos
        q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
        variance = (
            auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)
        ) / (n_pos * n_neg)
        half = z * math.sqrt(max(variance, 0.0))
        return auc, max(0.0, auc - half), min(1.0, auc + half)
    if metric == "log_loss":
        losses = row_log_loss(labels, scores)
        mean = float(losses.mean())
        half = (
            z * float(losses.std(ddof=1)) / math.sqrt(losses.size) if losses.size > 1 else math.inf
        )
        return mean, max(0.0, mean - half), mean + half
    raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")


def _mean_interval(values: np.ndarray, z: float) -> tuple[float, float, float]:
    mean = float(values.mean())
    half = z * float(values.std(ddof=1)) / math.sqrt(values.size) if values.size > 1 else math.inf
    return mean, mean - half, mean + half


def _quantiles(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return float(low), float(high)


def _macro_f1(confusion: np.ndarray) -> np.ndarray:
    """Macro-F1 of confusion matrices (..., true, predicted), over the classes that occur."""
    tp = np.diagonal(confusion, axis1=-2, axis2=-1)
    actual, predicted = confusion.sum(axis=-1), confusion.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(actual + predicted > 0, 2 * tp / (actual + predicted), np.nan)
    return np.nanmean(f1, axis=-1)


def _multiclass_interval(
    metric: str,
    labels: np.ndarray,
    probabilities: np.ndarray,
    confidence: float,
    z: float,
    seed: int,
) -> tuple[float, float, float]:
    """Accuracy: Wilson's interval; log loss: the normal interval of its mean; macro-F1: a seeded
    bootstrap of the confusion matrix's cells (the multiclass form of the binary F1's)."""
    n, k = probabilities.shape
    if metric not in MULTICLASS_METRICS:
        raise ValueError(f"{metric} is not a multiclass metric; use accuracy, macro_f1 or log_loss")
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"labels must index the {k} probability columns")
    predicted = probabilities.argmax(axis=1)
    if metric == "accuracy":
        return _wilson(int((predicted == labels).sum()), n, z)
    if metric == "log_loss":
        losses = -np.log(np.clip(probabilities[np.arange(n), labels], _EPS, 1.0))
        mean, low, high = _mean_interval(losses, z)
        return mean, max(0.0, low), high
    confusion = np.zeros((k, k))
    np.add.at(confusion, (labels, predicted), 1)
    draws = np.random.default_rng(seed).multinomial(n, confusion.ravel() / n, size=F1_RESAMPLES)
    resampled = _macro_f1(draws.reshape(F1_RESAMPLES, k, k))
    return (float(_macro_f1(confusion)), *_quantiles(resampled, confidence))


def _regression_interval(
    metric: str, labels: np.ndarray, values: np.ndarray, confidence: float, z: float, seed: int
) -> tuple[float, float, float]:
    """MAE: the normal interval of the mean absolute error; RMSE: the square root of the normal
    interval of the mean squared error (the root is monotone, so the coverage carries over); R²:
    a seeded bootstrap of the rows (it is a ratio, with no simple variance)."""
    if values.ndim != 1 or values.shape != labels.shape:
        raise ValueError(f"{metric} needs one value per labeled row")
    errors = values - labels
    if metric == "mae":
        mean, low, high = _mean_interval(np.abs(errors), z)
        return mean, max(0.0, low), high
    if metric == "rmse":
        mean, low, high = _mean_interval(errors * errors, z)
        return math.sqrt(mean), math.sqrt(max(0.0, low)), math.sqrt(high)
    if labels.size < 2 or np.ptp(labels) == 0:
        raise ValueError("r2 needs labels that vary")
    r2 = 1 - float((errors**2).sum()) / float(((labels - labels.mean()) ** 2).sum())
    rng = np.random.default_rng(seed)
    chunks = []
    # Resampled in chunks, so a large window does not hold every resample's rows at once.
    per_chunk = max(1, min(F1_RESAMPLES, 2_000_000 // labels.size))
    for start in range(0, F1_RESAMPLES, per_chunk):
        rows = rng.integers(
            0, labels.size, size=(min(per_chunk, F1_RESAMPLES - start), labels.size)
        )
        sampled_labels, sampled_errors = labels[rows], errors[rows]
        spread = ((sampled_labels - sampled_labels.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            chunks.append(1 - (sampled_errors**2).sum(axis=1) / spread)
    resampled = np.concatenate(chunks)
    resampled = resampled[np.isfinite(resampled)]
    return (r2, *_quantiles(resampled, confidence))


def _bound_text(rule: PerformanceRule, promoted_level: float | None) -> tuple[list[float], str]:
    """The bounds in force (floor, promoted level ∓ max_drop) and how they read."""
    sign = 1 if higher_is_better(rule.metric) else -1
    bounds, words = [], []
    if rule.floor is not None:
        bounds.append(rule.floor)
        words.append(f"the {'floor' if sign > 0 else 'ceiling'} {rule.floor:.4f}")
    if rule.max_drop is not None and promoted_level is not None:
        bounds.append(promoted_level - sign * rule.max_drop)
        words.append(
            f"the promoted level {promoted_level:.4f} {'−' if sign > 0 else '+'} {rule.max_drop:g}"
        )
    return bounds, " and ".join(words)


def performance_signal(
    rule: PerformanceRule,
    labels: np.ndarray,
    scores: np.ndarray,
    promoted_level: float | None,
) -> PerformanceSignal:
    """Whether the champion's live metric is shown to be beyond the bound: for a metric where
    higher is better, the interval's upper end below the floor or below the promoted level minus
    `max_drop` (for log loss, the lower end above the ceiling or the level plus `max_drop`)."""
    labeled = int(np.asarray(labels).size)

    def signal(value, lower, upper, fired: bool, reason: str) -> PerformanceSignal:
        return PerformanceSignal(
            rule.metric, value, lower, upper, rule.confidence, labeled, rule.floor,
            rule.max_drop, promoted_level, fired, reason,
        )  # fmt: skip

    bounds, described = _bound_text(rule, promoted_level)
    if not bounds:
        return signal(None, None, None, False, "no floor, and no promoted level to drop from")
    if labeled < rule.min_labeled:
        return signal(
            None,
            None,
            None,
            False,
            f"{labeled} labeled rows, fewer than min_labeled {rule.min_labeled}",
        )
    try:
        value, lower, upper = metric_interval(rule.metric, labels, scores, rule.confidence)
    except ValueError as error:
        return signal(None, None, None, False, f"{rule.metric} cannot be measured: {error}")
    interval = (
        f"{rule.metric} {value:.4f}, {rule.confidence:.0%} interval [{lower:.4f}, {upper:.4f}] "
        f"on {labeled} labeled rows"
    )
    if higher_is_better(rule.metric):
        fired = upper < max(bounds)
        where = "below" if fired else "not wholly below"
    else:
        fired = lower > min(bounds)
        where = "above" if fired else "not wholly above"
    return signal(value, lower, upper, fired, f"{interval}: {where} {described}")


@dataclass(frozen=True)
class VolumeSignal:
    """New labeled rows in the source since the champion's data ended, against the threshold."""

    new_rows: int
    threshold: int
    since: str
    fired: bool

    def as_signal(self) -> dict:
        """The `data_volume` entry of a monitor check's signals."""
        return asdict(self)

    @property
    def reason(self) -> str:
        verb = "reach" if self.fired else "below"
        return f"{self.new_rows} new labeled rows since {self.since}, {verb} {self.threshold}"


def data_volume_signal(new_rows: int, threshold: int, since: str) -> VolumeSignal:
    """Fire when the source has at least `threshold` new labeled rows since `since`."""
    if new_rows < 0 or threshold < 1:
        raise ValueError("new_rows must be ≥ 0 and threshold ≥ 1")
    return VolumeSignal(new_rows, threshold, since, new_rows >= threshold)


@dataclass(frozen=True)
class Gate:
    """How often triggers may start a training (the policy's cooldown and daily cap)."""

    cooldown: timedelta
    max_per_day: int


@dataclass(frozen=True)
class TriggerDecision:
    """Start a training or not; the kinds that held, and why in words."""

    fire: bool
    held: tuple[str, ...]
    reason: str


def decide(
    held: Sequence[str],
    reasons: Mapping[str, str],
    now: datetime,
    recent_fires: Sequence[datetime],
    active_runs: Sequence[str],
    gate: Gate,
) -> TriggerDecision:
    """Turn the signals that held into at most one training: none while a training, promotion or
    rollout of the model runs (that run answers the incident), none within the cooldown of the last
    triggered training, none beyond `max_per_day` in the last 24 hours."""
    held = tuple(kind for kind in KINDS if kind in held)
    if not held:
        return TriggerDecision(False, (), "no trigger held: " + "; ".join(reasons.values()))
    because = "; ".join(f"{kind}: {reasons[kind]}" for kind in held)
    if active_runs:
        return TriggerDecision(
            False, held, f"held but not fired, {', '.join(active_runs)} running — {because}"
        )
    last = max(recent_fires, default=None)
    if last is not None and now - last < gate.cooldown:
        until = (last + gate.cooldown).isoformat()
        return TriggerDecision(
            False, held, f"held but not fired, cooldown until {until} — {because}"
        )
    today = [moment for moment in recent_fires if now - moment < timedelta(days=1)]
    if len(today) >= gate.max_per_day:
        return TriggerDecision(
            False,
            held,
            f"held but not fired, {len(today)} triggered trainings in 24 h "
            f"(max_per_day {gate.max_per_day}) — {because}",
        )
    return TriggerDecision(True, held, because)
