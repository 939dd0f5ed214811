"""Confidence interval of a challenger's paired improvement: analytic on large holdouts where the
normal approximation is as exact as the bootstrap, the paired bootstrap everywhere else.

Both paths estimate the same thing: the spread of the improvement when each class's rows (all
rows, for regression) are resampled with the class sizes held fixed. The analytic path linearises
the improvement into one number per row (its influence): DeLong's structural components for AUC,
the per-row loss difference for log loss and MAE, the delta method for RMSE and R². The
class-stratified variance of those numbers is the bootstrap's variance to first order, and the
interval is the estimate ± z·SE.

When it is used. The bootstrap's cost grows with rows × resamples for these metrics (1,000 AUC
resamples of a million rows take seconds); the label metrics (accuracy, precision, recall, F1,
macro-F1) resample a handful of confusion cells in O(1) whatever the size, so they always keep
the exact bootstrap. The analytic path is taken only when both hold:

- every class (regression: the holdout) has at least `ANALYTIC_MIN_ROWS` rows, so the
  linearisation's remainder is negligible;
- the one-term Edgeworth correction of the normal quantile, |skewness| · (z² − 1) / 6 in standard
  errors, is at most `MAX_SKEW_SHIFT`. The skewness is the improvement's own (the per-row
  influences' third cumulant over the class sizes), so heavy-tailed losses — a log loss with a
  few confident mistakes — stay on the bootstrap until the holdout is large enough to tame them.

`MAX_SKEW_SHIFT` = 0.05 SE is below the Monte Carlo error of a 1,000-resample percentile bound
itself (≈ 0.085 SE at the 2.5% quantile: sqrt(q(1 − q) / R) / φ(z)), so where the analytic
interval is used it is no further from the exact resampling distribution than another seed of
the bootstrap would be; `tests/promotion/test_analytic_intervals.py` checks the two against each
other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from promotion.bootstrap import paired_bootstrap
from promotion.metrics import (
    AucComponents,
    auc_components,
    row_log_loss,
    signed_improvement,
)

IntervalMethod = Literal["bootstrap", "delong", "normal"]
Choice = Literal["auto", "bootstrap", "analytic"]

# Rows in the smallest class (regression: the holdout) from which the analytic path may be used.
ANALYTIC_MIN_ROWS = 10_000
# Largest Edgeworth shift of an interval end, in standard errors, accepted from the normal path.
MAX_SKEW_SHIFT = 0.05
ANALYTIC_METRICS: dict[str, frozenset[str]] = {
    "binary": frozenset({"roc_auc", "log_loss"}),
    "multiclass": frozenset({"log_loss"}),
    "regression": frozenset({"rmse", "mae", "r2"}),
}


@dataclass(frozen=True)
class PairedInterval:
    """A two-sided interval of the signed improvement (positive = challenger better), how it was
    computed, and the bootstrap resamples it took (0 for an analytic interval)."""

    low: float
    high: float
    method: IntervalMethod
    resamples: int


def improvement_interval(
    task: str,
    metric: str,
    labels: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    *,
    improvement: float,
    confidence: float,
    resamples: int,
    seed: int,
    choice: Choice = "auto",
    aucs: tuple[AucComponents, AucComponents] | None = None,
) -> PairedInterval:
    """The `confidence` interval of the challenger's `improvement` in `metric` over the champion
    (`signed_improvement` of the two models' metric values).

    `choice` "auto" takes the analytic path where the module docstring says it is exact enough,
    else the paired bootstrap (`resamples` draws from `seed`); "bootstrap" and "analytic" force
    one path (analytic only for `ANALYTIC_METRICS`), for comparing the two. `aucs` are both
    models' `auc_components`, when the caller already has them. Inputs must be validated.
    """
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    analytic = metric in ANALYTIC_METRICS.get(task, frozenset())
    if choice == "analytic" and not analytic:
        raise ValueError(f"no analytic interval for {task} {metric}")
    large = _smallest_group(task, labels) >= ANALYTIC_MIN_ROWS
    if analytic and (choice == "analytic" or (choice == "auto" and large)):
        influence = _influences(task, metric, labels, champion, challenger, aucs)
        if influence is None and choice == "analytic":
            raise ValueError(f"no analytic interval for {task} {metric} on these predictions")
        if influence is not None:
            variance, shift = _variance_and_skew_shift(influence, z)
            if choice == "analytic" or shift <= MAX_SKEW_SHIFT:
                half = z * float(np.sqrt(variance))
                method: IntervalMethod = "delong" if metric == "roc_auc" else "normal"
                return PairedInterval(improvement - half, improvement + half, method, 0)
    draws = paired_bootstrap(metric, labels, champion, challenger, resamples=resamples, seed=seed)
    differences = signed_improvement(metric, draws.champion, draws.challenger)
    alpha = 1 - confidence
    low, high = (float(q) for q in np.quantile(differences, [alpha / 2, 1 - alpha / 2]))
    # A skewed bootstrap distribution on few rows can leave the point estimate outside the
    # percentile interval; widening to include it only ever makes promotion harder.
    return PairedInterval(min(low, improvement), max(high, improvement), "bootstrap", resamples)


def _smallest_group(task: str, labels: np.ndarray) -> int:
    """Rows of the smallest class the bootstrap holds fixed (regression: all rows)."""
    if task == "regression":
        return int(np.size(labels))
    counts = np.bincount(np.asarray(labels, dtype=np.intp))
    return int(counts[counts > 0].min())


def _influences(
    task: str,
    metric: str,
    labels: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    aucs: tuple[AucComponents, AucComponents] | None,
) -> list[np.ndarray] | None:
    """Per class (regression: one group), each row's influence on the challenger-minus-champion
    metric difference: the difference moves, to first order, by the sum over the classes of the
    mean change of their influences. None where the linearisation does not exist."""
    if metric == "roc_auc":
        first, second = aucs or (
            auc_components(labels, champion),
            auc_components(labels, challenger),
        )
        return [
            second.positives - first.positives,
            second.negatives - first.negatives,
        ]
    if metric == "log_loss":
        difference = row_log_loss(labels, challenger) - row_log_loss(labels, champion)
        labels = np.asarray(labels)
        groups = [labels == value for value in np.unique(labels)]
        return [difference[rows] * (np.count_nonzero(rows) / labels.size) for rows in groups]
    labels = np.asarray(labels, dtype=np.float64)
    errors = [np.asarray(model, dtype=np.float64) - labels for model in (champion, challenger)]
    if metric == "mae":
        return [np.abs(errors[1]) - np.abs(errors[0])]
    squared = [error**2 for error in errors]
    if metric == "rmse":
        roots = [float(np.sqrt(np.mean(values))) for values in squared]
        if min(roots) == 0:
            return None
        return [squared[1] / (2 * roots[1]) - squared[0] / (2 * roots[0])]
    if metric == "r2":
        # R² difference = (SSE_champion − SSE_challenger) / SST, a ratio of two means; the mean
        # label's own movement changes SST only to second order.
        spread = (labels - labels.mean()) ** 2
        total = float(np.mean(spread))
        if total == 0:
            return None
        gain = squared[0] - squared[1]
        return [gain / total - float(np.mean(gain)) * spread / total**2]
    return None


def _variance_and_skew_shift(influence: Sequence[np.ndarray], z: float) -> tuple[float, float]:
    """The stratified variance of the improvement and the Edgeworth shift of a normal interval
    end at `z`, in standard errors."""
    variance = 0.0
    third = 0.0
    for part in influence:
        centred = part - part.mean()
        squared = centred * centred
        rows = part.size
        variance += float(squared.sum()) / max(rows - 1, 1) / rows
        third += float(np.dot(squared, centred)) / rows**3
    if variance <= 0:
        return 0.0, 0.0
    skewness = third / variance**1.5
    return variance, abs(skewness) * (z * z - 1) / 6
