"""Binary-classification metrics and paired significance tests on predicted probabilities.

Everything takes numpy arrays of labels (0/1) and probabilities of the positive class, so the
same functions serve the champion–challenger verdict, its slices and the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

import numpy as np
from scipy import stats

from policies.schema import LOWER_IS_BETTER, Metric

METRICS: tuple[str, ...] = get_args(Metric)
LABEL_METRICS: frozenset[str] = frozenset({"accuracy", "f1", "precision", "recall"})

# A row is predicted positive when its probability is strictly above 0.5, as scikit-learn's and
# LightGBM's `predict` do, so label metrics match what the served model answers.
THRESHOLD = 0.5
# Probabilities are clipped before the logarithm so a confident mistake costs ~34.5, not infinity.
LOG_LOSS_EPS = 1e-15


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of `metric` means a better model."""
    return metric not in LOWER_IS_BETTER


def predicted_positive(probs: np.ndarray) -> np.ndarray:
    """The label each row gets at the 0.5 threshold, as booleans."""
    return np.asarray(probs) > THRESHOLD


def label_metric_from_counts(
    metric: str,
    tp: np.ndarray | float,
    fp: np.ndarray | float,
    fn: np.ndarray | float,
    tn: np.ndarray | float,
) -> np.ndarray:
    """A label metric from confusion counts; vectorised so bootstrap draws share the formula.

    A ratio with a zero denominator is 0, as in scikit-learn's default `zero_division`.
    """
    tp, fp, fn, tn = (np.asarray(value, dtype=np.float64) for value in (tp, fp, fn, tn))
    if metric == "accuracy":
        numerator, denominator = tp + tn, tp + fp + fn + tn
    elif metric == "precision":
        numerator, denominator = tp, tp + fp
    elif metric == "recall":
        numerator, denominator = tp, tp + fn
    elif metric == "f1":
        numerator, denominator = 2 * tp, 2 * tp + fp + fn
    else:
        raise ValueError(f"{metric!r} is not a label metric; use one of {sorted(LABEL_METRICS)}")
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def confusion_counts(labels: np.ndarray, probs: np.ndarray) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) at the 0.5 threshold."""
    actual = np.asarray(labels) == 1
    predicted = predicted_positive(probs)
    tp = int(np.count_nonzero(actual & predicted))
    fp = int(np.count_nonzero(~actual & predicted))
    fn = int(np.count_nonzero(actual & ~predicted))
    return tp, fp, fn, actual.size - tp - fp - fn


def roc_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Area under the ROC curve from midranks (Mann–Whitney), ties counted as one half."""
    labels = np.asarray(labels)
    n_pos = int(np.count_nonzero(labels == 1))
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("roc_auc needs both classes in the labels")
    ranks = stats.rankdata(probs)
    rank_sum = float(ranks[labels == 1].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def row_log_loss(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Each row's negative log-likelihood of its label."""
    clipped = np.clip(np.asarray(probs, dtype=np.float64), LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return -np.where(np.asarray(labels) == 1, np.log(clipped), np.log1p(-clipped))


def brier_score(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean squared difference between probability and label; lower is better calibrated."""
    return float(np.mean((np.asarray(probs, dtype=np.float64) - np.asarray(labels)) ** 2))


@dataclass(frozen=True)
class ReliabilityBins:
    """Rows grouped by predicted probability in equal-width bins: the calibration plot's points."""

    edges: np.ndarray
    counts: np.ndarray
    mean_predicted: np.ndarray
    observed_rate: np.ndarray


def reliability_bins(labels: np.ndarray, probs: np.ndarray, bins: int = 10) -> ReliabilityBins:
    """Mean predicted probability and observed positive rate per equal-width probability bin."""
    probs = np.asarray(probs, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, probs, side="right") - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    predicted_sum = np.bincount(which, weights=probs, minlength=bins)
    positive_sum = np.bincount(which, weights=np.asarray(labels, dtype=np.float64), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ReliabilityBins(edges, counts, predicted_sum / counts, positive_sum / counts)


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int = 10) -> float:
    """Row-weighted mean gap between predicted probability and observed rate over the bins."""
    table = reliability_bins(labels, probs, bins)
    filled = table.counts > 0
    gaps = np.abs(table.mean_predicted[filled] - table.observed_rate[filled])
    return float(np.sum(gaps * table.counts[filled]) / np.sum(table.counts))


def roc_curve(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    labels = np.asarray(labels)
    order = np.argsort(-np.asarray(probs, dtype=np.float64), kind="stable")
    sorted_probs = np.asarray(probs, dtype=np.float64)[order]
    positives = np.cumsum(labels[order] == 1)
    negatives = np.arange(1, labels.size + 1) - positives
    last_of_tie = np.r_[sorted_probs[1:] != sorted_probs[:-1], True]
    tpr = np.r_[0.0, positives[last_of_tie] / max(positives[-1], 1)]
    fpr = np.r_[0.0, negatives[last_of_tie] / max(negatives[-1], 1)]
    return fpr, tpr


def metric_value(metric: str, labels: np.ndarray, probs: np.ndarray) -> float:
    """The point estimate of `metric` on the given rows."""
    if metric in LABEL_METRICS:
        return float(label_metric_from_counts(metric, *confusion_counts(labels, probs)))
    if metric == "roc_auc":
        return roc_auc(labels, probs)
    if metric == "log_loss":
        return float(np.mean(row_log_loss(labels, probs)))
    raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")


def mcnemar_exact(champion_only: int, challenger_only: int) -> float:
    """Two-sided exact McNemar p-value for paired accuracy.

    `champion_only` counts rows only the champion gets right, `challenger_only` rows only the
    challenger gets right; rows both get right or wrong carry no information about the difference.
    """
    discordant = champion_only + challenger_only
    if discordant == 0:
        return 1.0
    tail = stats.binom.cdf(min(champion_only, challenger_only), discordant, 0.5)
    return float(min(1.0, 2.0 * tail))


@dataclass(frozen=True)
class DeLongResult:
    """Both AUCs, the variance of their difference and the two-sided p-value of no difference."""

    champion_auc: float
    challenger_auc: float
    variance: float
    p_value: float


def delong_test(labels: np.ndarray, champion: np.ndarray, challenger: np.ndarray) -> DeLongResult:
    """DeLong's test for two correlated ROC AUCs on the same rows, in O(n log n).

    Uses the midrank formulation of Sun & Xu (2014): each row's structural component is read off
    its rank among all rows and among its own class, so no pairwise comparison is materialised.
    """
    labels = np.asarray(labels)
    positive = labels == 1
    n_pos = int(np.count_nonzero(positive))
    n_neg = labels.size - n_pos
    if n_pos < 2 or n_neg < 2:
        raise ValueError("DeLong's test needs at least two rows of each class")
    v10, v01 = [], []
    for probs in (champion, challenger):
        all_ranks = stats.rankdata(probs)
        pos_ranks = stats.rankdata(np.asarray(probs)[positive])
        neg_ranks = stats.rankdata(np.asarray(probs)[~positive])
        v10.append((all_ranks[positive] - pos_ranks) / n_neg)
        v01.append(1.0 - (all_ranks[~positive] - neg_ranks) / n_pos)
    aucs = [float(np.mean(component)) for component in v10]
    s10 = np.cov(np.vstack(v10))
    s01 = np.cov(np.vstack(v01))
    contrast = np.array([-1.0, 1.0])
    variance = float(contrast @ s10 @ contrast / n_pos + contrast @ s01 @ contrast / n_neg)
    difference = aucs[1] - aucs[0]
    if variance <= 0:
        p_value = 1.0 if difference == 0 else 0.0
    else:
        p_value = float(2 * stats.norm.sf(abs(difference) / np.sqrt(variance)))
    return DeLongResult(aucs[0], aucs[1], variance, p_value)
