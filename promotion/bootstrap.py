"""Paired bootstrap of a metric for two models scored on the same rows, for every task.

Each resample draws row multiplicities once and evaluates both models on them, so the spread of
the difference reflects the rows the models disagree on, not the (shared) difficulty of the rows.

Classification resamples are stratified by label: each class is resampled separately, keeping
the holdout's class counts fixed. The holdout's class balance is a property of the time window,
not of the models, and stratifying keeps every resample's AUC and macro-F1 defined. Regression
resamples the rows plainly: there are no classes to hold fixed.

`promotion.intervals` decides when an analytic interval replaces this bootstrap (large holdouts,
for the metrics whose resamples cost O(rows) each).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from promotion.metrics import (
    LABEL_METRICS,
    METRICS,
    REGRESSION_METRICS,
    label_metric_from_counts,
    macro_f1_from_confusion,
    predicted_class,
    predicted_positive,
    r2_from_sums,
    row_log_loss,
)

# Relative size below which a difference of two sums is rounding noise rather than a value.
_CANCELLATION = 1e-10
# Resamples of multiclass confusion matrices are built in chunks of at most this many cells, so
# memory stays bounded whatever the number of classes.
_CHUNK_CELLS = 4_000_000


class Kernel(Protocol):
    """A model's metric under resampled row counts (positives' counts, negatives' counts)."""

    def scratch(self) -> tuple[np.ndarray, ...]: ...

    def __call__(
        self, pos_counts: np.ndarray, neg_counts: np.ndarray, scratch: tuple[np.ndarray, ...]
    ) -> float: ...


@dataclass(frozen=True)
class PairedDraws:
    """The metric of each model on each resample; row `i` of both arrays used the same rows."""

    champion: np.ndarray
    challenger: np.ndarray


def paired_bootstrap(
    metric: str,
    labels: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    *,
    resamples: int,
    seed: int,
) -> PairedDraws:
    """Draw `resamples` paired bootstrap values of `metric` for both models, reproducibly.

    Predictions are shaped as `metric_value` takes them: regression values, (n, k) multiclass
    probabilities with class-index labels, or binary positive-class probabilities. Inputs must
    already be validated: equal lengths, finite values, every class present.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    rng = np.random.default_rng(seed)
    if metric in REGRESSION_METRICS:
        return _regression_draws(metric, labels, champion, challenger, rng, resamples)
    if np.ndim(champion) == 2:
        return _multiclass_draws(metric, labels, champion, challenger, rng, resamples)
    labels = np.asarray(labels)
    positive = labels == 1
    classes = (np.flatnonzero(positive), np.flatnonzero(~positive))
    if metric in LABEL_METRICS:
        draw = _LabelMetricDraws(metric, classes, champion, challenger)
    else:
        # Row counts are exchangeable, so they may be drawn directly in the champion's score
        # order: the champion's AUC then needs no reordering of each resample's counts.
        classes = tuple(rows[np.argsort(champion[rows], kind="stable")] for rows in classes)
        if metric == "roc_auc":
            kernels = (_AucKernel(champion, *classes), _AucKernel(challenger, *classes))
        else:
            kernels = (
                _MeanKernel(row_log_loss(labels, champion), *classes),
                _MeanKernel(row_log_loss(labels, challenger), *classes),
            )
        draw = _WeightedDraws(kernels, classes[0].size, classes[1].size)
    draws = draw(rng, resamples)
    return PairedDraws(draws[0], draws[1])


def _regression_draws(
    metric: str,
    labels: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    rng: np.random.Generator,
    resamples: int,
) -> PairedDraws:
    labels = np.asarray(labels, dtype=np.float64)
    errors = [np.asarray(model, dtype=np.float64) - labels for model in (champion, challenger)]
    rows = labels.size
    if metric == "mae":
        sums = _resampled_sums(rng, [np.vstack([np.abs(error) for error in errors])], resamples)
        return PairedDraws(sums[:, 0] / rows, sums[:, 1] / rows)
    squared = [error**2 for error in errors]
    if metric == "rmse":
        sums = _resampled_sums(rng, [np.vstack(squared)], resamples)
        return PairedDraws(np.sqrt(sums[:, 0] / rows), np.sqrt(sums[:, 1] / rows))
    # R² needs each resample's own total sum of squares: from the sums of the (centred) label
    # and its square, SST = sum(y²) - sum(y)² / n. That difference cancels to rounding noise,
    # not 0, in a resample whose labels are all equal; such a resample's SST is taken as 0 (R²
    # then follows scikit-learn's convention) instead of dividing by the noise.
    centred = labels - labels.mean()
    sums = _resampled_sums(rng, [np.vstack([*squared, centred, centred**2])], resamples)
    total = sums[:, 3] - sums[:, 2] ** 2 / rows
    total = np.where(total > _CANCELLATION * sums[:, 3], total, 0.0)
    return PairedDraws(r2_from_sums(sums[:, 0], total), r2_from_sums(sums[:, 1], total))


def _multiclass_draws(
    metric: str,
    labels: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    rng: np.random.Generator,
    resamples: int,
) -> PairedDraws:
    labels = np.asarray(labels, dtype=np.intp)
    classes = np.asarray(champion).shape[1]
    strata = [np.flatnonzero(labels == c) for c in range(classes)]
    strata = [rows for rows in strata if rows.size]
    if metric == "log_loss":
        losses = np.vstack([row_log_loss(labels, champion), row_log_loss(labels, challenger)])
        sums = _resampled_sums(rng, [losses[:, rows] for rows in strata], resamples)
        return PairedDraws(sums[:, 0] / labels.size, sums[:, 1] / labels.size)
    if metric == "accuracy":

        def score(confusion: np.ndarray) -> np.ndarray:
            return np.trace(confusion, axis1=1, axis2=2) / labels.size

    elif metric == "macro_f1":
        score = macro_f1_from_confusion
    else:
        raise ValueError(f"{metric!r} is not a multiclass metric; use accuracy, macro_f1, log_loss")
    draws = _MulticlassLabelDraws(labels, strata, champion, challenger)(rng, resamples, score)
    return PairedDraws(draws[0], draws[1])


def _resampled_sums(
    rng: np.random.Generator, strata: list[np.ndarray], resamples: int
) -> np.ndarray:
    """Per resample, the count-weighted sums of each row quantity: `strata` holds one
    (quantities, rows) array per stratum, each stratum resampled on its own."""
    buffers = [np.empty(values.shape[1], dtype=np.uint16) for values in strata]
    sums = np.zeros((resamples, strata[0].shape[0]))
    for r in range(resamples):
        for values, counts in zip(strata, buffers, strict=True):
            _multinomial_counts(rng, values.shape[1], counts)
            # einsum's own loop: a mixed float/int np.dot goes through a slow BLAS path.
            sums[r] += np.einsum("ji,i->j", values, counts)
    return sums


class _MulticlassLabelDraws:
    # As for binary label metrics: within a true class, a row matters only through the classes
    # the champion and the challenger predict for it, so resampling a class's rows is one
    # multinomial draw over the (champion, challenger) pairs seen in that class.

    def __init__(
        self,
        labels: np.ndarray,
        strata: list[np.ndarray],
        champion: np.ndarray,
        challenger: np.ndarray,
    ) -> None:
        self.classes = np.asarray(champion).shape[1]
        champion_says, challenger_says = predicted_class(champion), predicted_class(challenger)
        self.strata = []
        for rows in strata:
            pairs = champion_says[rows] * self.classes + challenger_says[rows]
            cells, counts = np.unique(pairs, return_counts=True)
            self.strata.append(
                (
                    int(labels[rows[0]]),
                    rows.size,
                    counts / rows.size,
                    np.eye(self.classes)[cells // self.classes],
                    np.eye(self.classes)[cells % self.classes],
                )
            )

    def __call__(
        self,
        rng: np.random.Generator,
        size: int,
        score: Callable[[np.ndarray], np.ndarray],
    ) -> np.ndarray:
        """Both models' `score` of `size` resampled confusion matrices, as a (2, size) array."""
        k = self.classes
        widest = max(one_hot.shape[0] for *_, one_hot in self.strata)
        chunk = max(1, _CHUNK_CELLS // max(k * k, widest))
        draws = np.empty((2, size))
        for start in range(0, size, chunk):
            stop = min(size, start + chunk)
            confusions = np.zeros((2, stop - start, k, k))
            for label, rows, frequencies, champion_hot, challenger_hot in self.strata:
                counts = rng.multinomial(rows, frequencies, size=stop - start)
                confusions[0, :, label] = counts @ champion_hot
                confusions[1, :, label] = counts @ challenger_hot
            draws[:, start:stop] = score(confusions[0]), score(confusions[1])
        return draws


def _multinomial_counts(
    rng: np.random.Generator, n: int, out: np.ndarray | None = None
) -> np.ndarray:
    """How often each of `n` rows is drawn when drawing `n` rows with replacement."""
    # uint16 keeps the arrays that are gathered in random order small enough to stay in cache;
    # a row drawn 65,536 times in one resample is beyond any probability that matters.
    counts = np.empty(n, dtype=np.uint16) if out is None else out
    counts.fill(0)
    draws = rng.integers(0, n, size=n, dtype=np.int32 if n < 2**31 else np.int64)
    np.add.at(counts, draws, np.uint16(1))
    return counts


class _WeightedDraws:
    """Draws row counts per class and evaluates both models' kernels on the same counts."""

    def __init__(self, kernels: tuple[Kernel, Kernel], n_pos: int, n_neg: int) -> None:
        self.kernels = kernels
        self.n_pos = n_pos
        self.n_neg = n_neg

    def __call__(self, rng: np.random.Generator, size: int) -> np.ndarray:
        # Buffers are reused across resamples: at a million rows, fresh arrays for every
        # resample cost more in page faults than the arithmetic does.
        pos_counts = np.empty(self.n_pos, dtype=np.uint16)
        neg_counts = np.empty(self.n_neg, dtype=np.uint16)
        scratches = [kernel.scratch() for kernel in self.kernels]
        draws = np.empty((2, size))
        for r in range(size):
            _multinomial_counts(rng, self.n_pos, pos_counts)
            _multinomial_counts(rng, self.n_neg, neg_counts)
            for model, (kernel, scratch) in enumerate(zip(self.kernels, scratches, strict=True)):
                draws[model, r] = kernel(pos_counts, neg_counts, scratch)
        return draws


class _LabelMetricDraws:
    # A label metric depends on a row only through (label, champion says positive, challenger
    # says positive): 2 x 4 cells. Resampling rows within a class is exactly a multinomial draw
    # over its 4 cells, so each resample costs O(1) whatever the number of rows.

    def __init__(
        self,
        metric: str,
        classes: tuple[np.ndarray, np.ndarray],
        champion: np.ndarray,
        challenger: np.ndarray,
    ) -> None:
        self.metric = metric
        self.sizes = [rows.size for rows in classes]
        self.frequencies = []
        for rows in classes:
            cell = 2 * predicted_positive(champion[rows]) + predicted_positive(challenger[rows])
            self.frequencies.append(np.bincount(cell, minlength=4) / rows.size)

    def __call__(self, rng: np.random.Generator, size: int) -> np.ndarray:
        predicted = []
        for rows, frequencies in zip(self.sizes, self.frequencies, strict=True):
            counts = rng.multinomial(rows, frequencies, size=size)
            predicted.append((counts[:, 2] + counts[:, 3], counts[:, 1] + counts[:, 3]))
        (champ_tp, chall_tp), (champ_fp, chall_fp) = predicted
        n_pos, n_neg = self.sizes
        return np.vstack(
            [
                label_metric_from_counts(
                    self.metric, champ_tp, champ_fp, n_pos - champ_tp, n_neg - champ_fp
                ),
                label_metric_from_counts(
                    self.metric, chall_tp, chall_fp, n_pos - chall_tp, n_neg - chall_fp
                ),
            ]
        )


class _AucKernel:
    """Weighted Mann–Whitney AUC of one model; sorts once, then O(n) per set of row weights."""

    def __init__(self, probs: np.ndarray, pos_rows: np.ndarray, neg_rows: np.ndarray) -> None:
        pos_probs, neg_probs = probs[pos_rows], probs[neg_rows]
        self.pos_order = _order_unless_sorted(pos_probs)
        self.neg_order = _order_unless_sorted(neg_probs)
        sorted_pos = pos_probs if self.pos_order is None else pos_probs[self.pos_order]
        sorted_neg = neg_probs if self.neg_order is None else neg_probs[self.neg_order]
        # For each positive, the number of negatives strictly below it and below-or-tied with it:
        # a tie counts one half, as the (lo + hi) / 2 average below gives.
        self.below = np.searchsorted(sorted_neg, sorted_pos, side="left")
        self.below_or_tied = np.searchsorted(sorted_neg, sorted_pos, side="right")
        self.n_pos, self.n_neg = pos_rows.size, neg_rows.size
        self.pairs_twice = 2 * self.n_pos * self.n_neg

    def scratch(self) -> tuple[np.ndarray, ...]:
        """Buffers one thread reuses across calls."""
        n_pos, n_neg = self.n_pos, self.n_neg
        return (
            np.empty(n_pos, dtype=np.uint16),
            np.empty(n_neg, dtype=np.uint16),
            np.zeros(n_neg + 1, dtype=np.int64),
            np.empty(n_pos, dtype=np.int64),
            np.empty(n_pos, dtype=np.int64),
        )

    def __call__(
        self, pos_counts: np.ndarray, neg_counts: np.ndarray, scratch: tuple[np.ndarray, ...]
    ) -> float:
        pos_sorted, neg_sorted, neg_cumulative, below, below_or_tied = scratch
        if self.pos_order is not None:
            pos_counts = np.take(pos_counts, self.pos_order, out=pos_sorted, mode="clip")
        if self.neg_order is not None:
            neg_counts = np.take(neg_counts, self.neg_order, out=neg_sorted, mode="clip")
        np.cumsum(neg_counts, out=neg_cumulative[1:])
        np.take(neg_cumulative, self.below, out=below, mode="clip")
        np.take(neg_cumulative, self.below_or_tied, out=below_or_tied, mode="clip")
        below += below_or_tied
        # Integer arithmetic keeps the pair count exact.
        return float(np.einsum("i,i->", pos_counts, below)) / self.pairs_twice


def _order_unless_sorted(values: np.ndarray) -> np.ndarray | None:
    """The sorting permutation of `values`, or None when they are already in order."""
    if values.size < 2 or bool(np.all(values[1:] >= values[:-1])):
        return None
    return np.argsort(values, kind="stable")


class _MeanKernel:
    """Weighted mean of a per-row quantity (e.g. log loss) under resampled row counts."""

    def __init__(self, values: np.ndarray, pos_rows: np.ndarray, neg_rows: np.ndarray) -> None:
        self.pos_values = values[pos_rows]
        self.neg_values = values[neg_rows]
        self.rows = pos_rows.size + neg_rows.size

    def scratch(self) -> tuple[np.ndarray, ...]:
        """No buffers needed: the sums allocate nothing row-sized."""
        return ()

    def __call__(
        self, pos_counts: np.ndarray, neg_counts: np.ndarray, scratch: tuple[np.ndarray, ...]
    ) -> float:
        # einsum's own loop: a mixed float/int np.dot goes through a slow BLAS path.
        total = np.einsum("i,i->", self.pos_values, pos_counts) + np.einsum(
            "i,i->", self.neg_values, neg_counts
        )
        return float(total) / self.rows
