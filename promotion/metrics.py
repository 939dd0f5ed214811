"""Metrics and paired significance tests for each task, on a model's predictions.

Binary: labels 0/1 and the positive class's probability (1-D). Multiclass: labels are integer
class indices 0..k-1 into the columns of an (n, k) matrix of class probabilities. Regression:
labels and predicted values, both 1-D. The same functions serve the champion–challenger verdict,
its slices, the report and the live analysis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

import numpy as np
from scipy import stats

from policies.schema import LOWER_IS_BETTER, TASK_METRICS, Metric, Task

METRICS: tuple[str, ...] = get_args(Metric)
TASKS: tuple[str, ...] = get_args(Task)
LABEL_METRICS: frozenset[str] = frozenset({"accuracy", "f1", "precision", "recall"})
REGRESSION_METRICS: frozenset[str] = frozenset(TASK_METRICS["regression"])

# A row is predicted positive when its probability is strictly above 0.5, as scikit-learn's and
# LightGBM's `predict` do, so label metrics match what the served model answers.
THRESHOLD = 0.5
# Probabilities are clipped before the logarithm so a confident mistake costs ~34.5, not infinity.
LOG_LOSS_EPS = 1e-15


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of `metric` means a better model."""
    return metric not in LOWER_IS_BETTER


def signed_improvement(
    metric: str, champion: np.ndarray | float, challenger: np.ndarray | float
) -> np.ndarray | float:
    """How much better the challenger scores than the champion, positive when it is better,
    also for metrics where lower is better."""
    return challenger - champion if higher_is_better(metric) else champion - challenger


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


@dataclass(frozen=True)
class AucComponents:
    """DeLong's structural components of one model's AUC: for each positive, the share of
    negatives it outscores (`positives`), and for each negative, the share of positives that
    outscore it (`negatives`); a tie counts one half. Both average to the AUC; each array keeps
    its class's rows in holdout order, so two models' components pair up row by row. `order`
    sorts the scores, so the AUC of any subset of rows needs no sort of its own
    (`auc_of_rows`)."""

    positives: np.ndarray
    negatives: np.ndarray
    order: np.ndarray
    auc: float


def auc_components(labels: np.ndarray, probs: np.ndarray) -> AucComponents:
    """DeLong's structural components from one sort of the scores, in O(n log n).

    One sort serves both classes, which is cheaper than ranking all rows and each class apart
    (the midrank formulation).
    """
    positive = np.asarray(labels) == 1
    n_pos = int(np.count_nonzero(positive))
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("roc_auc needs both classes in the labels")
    probs = np.asarray(probs, dtype=np.float64)
    order = np.argsort(probs, kind="stable")
    positive_sorted = positive[order]
    groups = _TieGroups(positive_sorted, probs[order])
    share = np.empty(positive.size)
    below = np.where(
        positive_sorted,
        groups.negatives_below_twice[groups.of_row] / (2 * n_neg),
        1 - groups.positives_below_twice[groups.of_row] / (2 * n_pos),
    )
    share[order] = below
    return AucComponents(share[positive], share[~positive], order, groups.auc())


def auc_of_rows(
    labels: np.ndarray, probs: np.ndarray, order: np.ndarray, rows: np.ndarray
) -> float:
    """The AUC of the rows where `rows` is true, from `order`, the sorting permutation of all of
    `probs` (`AucComponents.order`): the subset keeps that order, so it is not sorted again."""
    return _sorted_auc(np.asarray(labels), np.asarray(probs), order[np.asarray(rows)[order]])


def _sorted_auc(labels: np.ndarray, probs: np.ndarray, order: np.ndarray) -> float:
    positive = labels[order] == 1
    if positive.all() or not positive.any():
        raise ValueError("roc_auc needs both classes in the labels")
    return _TieGroups(positive, np.asarray(probs, dtype=np.float64)[order]).auc()


class _TieGroups:
    """Class counts per group of equal scores, for rows in increasing score order."""

    def __init__(self, positive_sorted: np.ndarray, scores_sorted: np.ndarray) -> None:
        last = np.r_[scores_sorted[1:] != scores_sorted[:-1], True]
        ends = np.flatnonzero(last)
        positives_through = np.cumsum(positive_sorted, dtype=np.int64)[ends]
        negatives_through = ends + 1 - positives_through
        self.positives_in = np.diff(positives_through, prepend=0)
        self.negatives_in = np.diff(negatives_through, prepend=0)
        # Twice the count below a row of the group plus half of the group itself: integers.
        self.positives_below_twice = 2 * positives_through - self.positives_in
        self.negatives_below_twice = 2 * negatives_through - self.negatives_in
        self.ends = ends

    @property
    def of_row(self) -> np.ndarray:
        """Each sorted row's group index."""
        return np.repeat(np.arange(self.ends.size), np.diff(self.ends, prepend=-1))

    def auc(self) -> float:
        """Mann–Whitney AUC; the pair count is summed in integers, so it is exact."""
        n_pos = int(self.positives_in.sum())
        n_neg = int(self.negatives_in.sum())
        pairs_twice = int(np.dot(self.positives_in, self.negatives_below_twice))
        return pairs_twice / (2 * n_pos * n_neg)


def roc_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney), ties counted as one half."""
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=np.float64)
    return _sorted_auc(labels, probs, np.argsort(probs, kind="stable"))


def row_log_loss(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Each row's negative log-likelihood of its label (binary 1-D or multiclass (n, k) probs)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 2:
        chosen = probs[np.arange(probs.shape[0]), np.asarray(labels, dtype=np.intp)]
        return -np.log(np.clip(chosen, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS))
    clipped = np.clip(probs, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return -np.where(np.asarray(labels) == 1, np.log(clipped), np.log1p(-clipped))


def brier_score(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean squared difference between probability and label; lower is better calibrated.

    Multiclass ((n, k) probabilities): Brier's original score, the squared distance to the
    one-hot label summed over the classes (0 to 2), as scikit-learn's `scale_by_half=False`.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 2:
        rows = np.arange(probs.shape[0])
        labels = np.asarray(labels, dtype=np.intp)
        squared = np.einsum("ij,ij->i", probs, probs) - 2 * probs[rows, labels] + 1
        return float(np.mean(squared))
    return float(np.mean((probs - np.asarray(labels)) ** 2))


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


def top_label(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Multiclass calibration as a binary question: whether each row's most probable class is
    right (0/1) and the probability the model gave it."""
    probs = np.asarray(probs, dtype=np.float64)
    right = predicted_class(probs) == np.asarray(labels)
    return right.astype(np.int8), probs.max(axis=1)


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int = 10) -> float:
    """Row-weighted mean gap between predicted probability and observed rate over the bins.

    Multiclass ((n, k) probabilities): the top-label ECE, the gap between the confidence in the
    predicted class and how often it is right.
    """
    if np.ndim(probs) == 2:
        labels, probs = top_label(labels, probs)
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


def predicted_class(probs: np.ndarray) -> np.ndarray:
    """Each row's most probable class index; a tie goes to the lower index, as `predict` does."""
    return np.argmax(np.asarray(probs), axis=1)


def class_counts(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """The (classes, classes) confusion matrix: rows are true classes, columns predicted ones."""
    cells = np.asarray(labels, dtype=np.intp) * classes + np.asarray(predicted, dtype=np.intp)
    return np.bincount(cells, minlength=classes * classes).reshape(classes, classes)


def macro_f1_from_confusion(confusion: np.ndarray) -> np.ndarray:
    """Macro-averaged F1 of confusion matrices (..., k, k); vectorised over leading axes.

    The average runs over the classes present among the labels, so two models scored on the same
    rows are averaged over the same classes. When every class appears among the labels this is
    scikit-learn's `f1_score(average="macro")`.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diagonal(confusion, axis1=-2, axis2=-1)
    actual = confusion.sum(axis=-1)
    predicted = confusion.sum(axis=-2)
    denominator = actual + predicted
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    present = actual > 0
    return np.sum(f1 * present, axis=-1) / np.maximum(np.sum(present, axis=-1), 1)


@dataclass(frozen=True)
class PerClassScores:
    """Precision, recall and F1 of each class (one-vs-rest) and how many rows have that label."""

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray


def per_class_scores(labels: np.ndarray, probs: np.ndarray) -> PerClassScores:
    """Each class's precision, recall and F1 from (n, k) class probabilities; a ratio with a
    zero denominator is 0, as in scikit-learn's `precision_recall_fscore_support`."""
    probs = np.asarray(probs)
    confusion = class_counts(labels, predicted_class(probs), probs.shape[1]).astype(np.float64)
    tp = np.diag(confusion)
    actual, predicted = confusion.sum(axis=1), confusion.sum(axis=0)

    def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
        return np.divide(numerator, denominator, out=np.zeros_like(tp), where=denominator > 0)

    return PerClassScores(
        ratio(tp, predicted), ratio(tp, actual), ratio(2 * tp, actual + predicted), actual
    )


def _multiclass_metric(metric: str, labels: np.ndarray, probs: np.ndarray) -> float:
    probs = np.asarray(probs, dtype=np.float64)
    predicted = predicted_class(probs)
    if metric == "accuracy":
        return float(np.mean(predicted == np.asarray(labels)))
    if metric == "macro_f1":
        return float(macro_f1_from_confusion(class_counts(labels, predicted, probs.shape[1])))
    if metric == "log_loss":
        return float(np.mean(row_log_loss(labels, probs)))
    raise ValueError(
        f"{metric!r} is not a multiclass metric; use one of accuracy, macro_f1, log_loss"
    )


def r2_from_sums(
    squared_error: np.ndarray | float, total_squares: np.ndarray | float
) -> np.ndarray:
    """R² = 1 - SSE / SST; vectorised. Constant labels (SST = 0) score 1 when predicted exactly
    and 0 otherwise, as scikit-learn's `r2_score` does."""
    sse = np.asarray(squared_error, dtype=np.float64)
    sst = np.asarray(total_squares, dtype=np.float64)
    safe = np.where(sst > 0, sst, 1.0)
    return np.where(sst > 0, 1 - sse / safe, np.where(sse == 0, 1.0, 0.0))


def _regression_metric(metric: str, labels: np.ndarray, values: np.ndarray) -> float:
    errors = np.asarray(values, dtype=np.float64) - np.asarray(labels, dtype=np.float64)
    if metric == "rmse":
        return float(np.sqrt(np.mean(errors**2)))
    if metric == "mae":
        return float(np.mean(np.abs(errors)))
    if metric == "r2":
        centred = np.asarray(labels, dtype=np.float64) - np.mean(labels)
        return float(r2_from_sums(np.sum(errors**2), np.sum(centred**2)))
    raise ValueError(f"{metric!r} is not a regression metric; use one of rmse, mae, r2")


def metric_value(metric: str, labels: np.ndarray, predictions: np.ndarray) -> float:
    """The point estimate of `metric` on the given rows.

    Regression metrics take 1-D values; otherwise (n, k) predictions are multiclass class
    probabilities with labels as class indices, and 1-D predictions binary probabilities.
    """
    if metric in REGRESSION_METRICS:
        return _regression_metric(metric, labels, predictions)
    if np.ndim(predictions) == 2:
        return _multiclass_metric(metric, labels, predictions)
    if metric in LABEL_METRICS:
        return float(label_metric_from_counts(metric, *confusion_counts(labels, predictions)))
    if metric == "roc_auc":
        return roc_auc(labels, predictions)
    if metric == "log_loss":
        return float(np.mean(row_log_loss(labels, predictions)))
    raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")


def row_outcomes(task: str, labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """One number per row for comparing models row by row: for classification 1.0 where the
    predicted class is right (binary: probability above 0.5) and 0.0 where it is wrong; for
    regression the squared error."""
    labels = np.asarray(labels)
    if task == "regression":
        errors = np.asarray(predictions, dtype=np.float64) - labels.astype(np.float64)
        return errors**2
    if task == "multiclass":
        return (predicted_class(predictions) == labels).astype(np.float64)
    if task == "binary":
        return (predicted_positive(predictions) == (labels == 1)).astype(np.float64)
    raise ValueError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")


def paired_t_test(differences: np.ndarray) -> float:
    """Two-sided p-value of a paired t-test that the per-row differences have mean 0.

    Identical differences on every row (no spread) give 1 when they are all 0, else 0.
    """
    differences = np.asarray(differences, dtype=np.float64)
    mean = float(np.mean(differences))
    spread = float(np.std(differences, ddof=1)) if differences.size > 1 else 0.0
    if spread == 0 or not np.isfinite(spread):
        return 1.0 if mean == 0 else 0.0
    statistic = mean / (spread / np.sqrt(differences.size))
    return float(2 * stats.t.sf(abs(statistic), differences.size - 1))


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


def delong_test(
    labels: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    components: tuple[AucComponents, AucComponents] | None = None,
) -> DeLongResult:
    """DeLong's test for two correlated ROC AUCs on the same rows, in O(n log n).

    The variance of the AUC difference is that of the paired structural components of each
    class over its own size (DeLong, DeLong & Clarke-Pearson 1988); `components`, when given,
    are both models' `auc_components` on these labels, so a caller that has them does not sort
    again.
    """
    labels = np.asarray(labels)
    n_pos = int(np.count_nonzero(labels == 1))
    if n_pos < 2 or labels.size - n_pos < 2:
        raise ValueError("DeLong's test needs at least two rows of each class")
    if components is None:
        components = (auc_components(labels, champion), auc_components(labels, challenger))
    first, second = components
    variance = float(
        sum(
            np.var(b - a, ddof=1) / a.size
            for a, b in (
                (first.positives, second.positives),
                (first.negatives, second.negatives),
            )
        )
    )
    difference = second.auc - first.auc
    if variance <= 0:
        p_value = 1.0 if difference == 0 else 0.0
    else:
        p_value = float(2 * stats.norm.sf(abs(difference) / np.sqrt(variance)))
    return DeLongResult(first.auc, second.auc, variance, p_value)
