from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats
from sklearn import metrics as sk

from promotion.bootstrap import paired_bootstrap
from promotion.metrics import (
    auc_components,
    auc_of_rows,
    brier_score,
    expected_calibration_error,
    metric_value,
    paired_t_test,
    row_log_loss,
    row_outcomes,
)


def multiclass_rows(rows: int = 600, classes: int = 4, seed: int = 0):
    """Class-index labels and two models' class probabilities, some rows with tied maxima."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, rows)
    champion = rng.dirichlet(np.ones(classes), rows)
    challenger = 0.5 * champion + 0.5 * np.eye(classes)[labels] * rng.random((rows, 1))
    challenger /= challenger.sum(axis=1, keepdims=True)
    champion[:20] = 1 / classes  # a tie goes to the first class, as predict does
    return labels, champion, challenger


def regression_rows(rows: int = 500, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = 3 * rng.normal(size=rows) + 10
    champion = labels + rng.normal(size=rows)
    challenger = labels + 0.8 * (champion - labels) + 0.3 * rng.normal(size=rows)
    return labels, champion, challenger


# --- multiclass -----------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1", "log_loss"])
def test_multiclass_metric_matches_scikit_learn(metric):
    labels, probs, _ = multiclass_rows()
    expected = {
        "accuracy": lambda: sk.accuracy_score(labels, probs.argmax(axis=1)),
        "macro_f1": lambda: sk.f1_score(labels, probs.argmax(axis=1), average="macro"),
        "log_loss": lambda: sk.log_loss(labels, probs),
    }[metric]()
    assert metric_value(metric, labels, probs) == pytest.approx(expected, rel=1e-12)


def test_macro_f1_averages_over_the_classes_among_the_labels():
    # Class 2 appears only as a (wrong) prediction: both models are averaged over classes 0, 1.
    labels = np.array([0, 0, 1, 1])
    probs = np.eye(3)[[0, 2, 1, 1]]
    present = sk.f1_score(labels, probs.argmax(axis=1), average="macro", labels=[0, 1])
    assert metric_value("macro_f1", labels, probs) == pytest.approx(present)


def test_multiclass_brier_is_the_sum_over_classes_as_scikit_learn_unscaled():
    labels, probs, _ = multiclass_rows()
    expected = sk.brier_score_loss(labels, probs, scale_by_half=False)
    assert brier_score(labels, probs) == pytest.approx(expected, rel=1e-12)


def test_top_label_calibration_error_compares_confidence_with_hit_rate():
    # Every row is 0.7 sure of its predicted class, which is right on 7 of 10 rows.
    labels = np.array([0] * 7 + [1] * 3)
    probs = np.tile([0.7, 0.2, 0.1], (10, 1))
    assert expected_calibration_error(labels, probs) == pytest.approx(0.0)
    assert expected_calibration_error(np.zeros(10, dtype=int), probs) == pytest.approx(0.3)


def test_multiclass_row_log_loss_is_minus_log_of_the_true_class_probability():
    labels = np.array([2, 0])
    probs = np.array([[0.1, 0.1, 0.8], [0.5, 0.25, 0.25]])
    assert row_log_loss(labels, probs) == pytest.approx(-np.log([0.8, 0.5]))


# --- regression -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "metric, reference",
    [
        ("rmse", sk.root_mean_squared_error),
        ("mae", sk.mean_absolute_error),
        ("r2", sk.r2_score),
    ],
)
def test_regression_metric_matches_scikit_learn(metric, reference):
    labels, values, _ = regression_rows()
    assert metric_value(metric, labels, values) == pytest.approx(reference(labels, values))


@pytest.mark.parametrize("values, expected", [([3.0, 3.0], 1.0), ([3.0, 4.0], 0.0)])
def test_r2_of_constant_labels_follows_scikit_learn(values, expected):
    labels = np.array([3.0, 3.0])
    assert metric_value("r2", labels, np.array(values)) == expected
    assert sk.r2_score(labels, values) == expected


# --- row outcomes and tests -----------------------------------------------------------------


def test_row_outcomes_of_classification_are_correctness():
    assert row_outcomes("binary", np.array([1, 0, 1]), np.array([0.9, 0.6, 0.5])).tolist() == [
        1.0,
        0.0,
        0.0,
    ]
    labels = np.array([0, 2])
    probs = np.array([[0.6, 0.3, 0.1], [0.5, 0.2, 0.3]])
    assert row_outcomes("multiclass", labels, probs).tolist() == [1.0, 0.0]


def test_row_outcomes_of_regression_are_squared_errors():
    outcomes = row_outcomes("regression", np.array([1.0, 2.0]), np.array([1.5, 0.0]))
    assert outcomes.tolist() == [0.25, 4.0]


def test_row_outcomes_refuse_an_unknown_task():
    with pytest.raises(ValueError, match="unknown task 'ranking'"):
        row_outcomes("ranking", np.array([1]), np.array([1.0]))


def test_paired_t_test_matches_scipy():
    rng = np.random.default_rng(5)
    champion, challenger = rng.normal(size=200), rng.normal(0.2, size=200)
    expected = stats.ttest_rel(champion, challenger).pvalue
    assert paired_t_test(champion - challenger) == pytest.approx(expected, rel=1e-10)


def test_paired_t_test_without_spread_is_decided_by_the_mean():
    assert paired_t_test(np.zeros(10)) == 1.0
    assert paired_t_test(np.full(10, 0.5)) == 0.0


# --- bootstrap ------------------------------------------------------------------------------


def _slow_differences(metric, labels, champion, challenger, strata, resamples=1500, seed=3):
    """Metric differences on explicitly resampled rows, each stratum resampled on its own."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(resamples):
        rows = np.concatenate([rng.choice(stratum, stratum.size) for stratum in strata])
        out.append(
            metric_value(metric, labels[rows], challenger[rows])
            - metric_value(metric, labels[rows], champion[rows])
        )
    return np.array(out)


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1", "log_loss"])
def test_multiclass_bootstrap_has_the_spread_of_class_stratified_row_resampling(metric):
    labels, champion, challenger = multiclass_rows(rows=400)
    draws = paired_bootstrap(metric, labels, champion, challenger, resamples=3000, seed=1)
    fast = draws.challenger - draws.champion
    strata = [np.flatnonzero(labels == c) for c in range(4)]
    slow = _slow_differences(metric, labels, champion, challenger, strata)
    assert fast.mean() == pytest.approx(slow.mean(), abs=0.15 * slow.std())
    assert fast.std() == pytest.approx(slow.std(), rel=0.1)


def test_multiclass_bootstrap_keeps_each_class_count():
    labels, champion, _ = multiclass_rows(rows=300)
    # A model that always answers class 0 is right on exactly the class-0 rows: its resampled
    # accuracy is constant only if every resample keeps the holdout's class counts.
    always_zero = np.tile([1.0, 0.0, 0.0, 0.0], (300, 1))
    draws = paired_bootstrap("accuracy", labels, champion, always_zero, resamples=200, seed=0)
    assert np.all(draws.challenger == np.mean(labels == 0))
    assert draws.champion.std() > 0


@pytest.mark.parametrize("metric", ["rmse", "mae", "r2"])
def test_regression_bootstrap_has_the_spread_of_row_resampling(metric):
    labels, champion, challenger = regression_rows(rows=400)
    draws = paired_bootstrap(metric, labels, champion, challenger, resamples=3000, seed=1)
    fast = draws.challenger - draws.champion
    slow = _slow_differences(metric, labels, champion, challenger, [np.arange(400)])
    assert fast.mean() == pytest.approx(slow.mean(), abs=0.15 * slow.std())
    assert fast.std() == pytest.approx(slow.std(), rel=0.1)


def test_regression_bootstrap_values_are_the_metric_of_some_resample():
    labels, champion, challenger = regression_rows(rows=50)
    draws = paired_bootstrap("r2", labels, champion, challenger, resamples=100, seed=0)
    assert np.all(draws.champion <= 1) and np.all(draws.challenger <= 1)
    assert draws.champion.std() > 0


# --- AUC from one sort ----------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    data=st.integers(4, 60).flatmap(
        lambda rows: st.tuples(
            hnp.arrays(np.int64, rows, elements=st.integers(0, 1)),
            hnp.arrays(np.float64, rows, elements=st.sampled_from([0.0, 0.2, 0.5, 0.7, 1.0])),
            hnp.arrays(np.bool_, rows),
        )
    )
)
def test_auc_of_a_subset_from_the_holdouts_sort_is_the_subsets_own_auc(data):
    labels, probs, rows = data
    assume(len(set(labels[rows])) == 2)
    order = auc_components(labels, probs).order
    expected = sk.roc_auc_score(labels[rows], probs[rows])
    assert auc_of_rows(labels, probs, order, rows) == pytest.approx(expected, abs=1e-12)
    assert metric_value("roc_auc", labels[rows], probs[rows]) == pytest.approx(expected, abs=1e-12)


def test_auc_components_average_to_the_auc_in_both_classes():
    rng = np.random.default_rng(4)
    labels = (rng.random(500) < 0.3).astype(int)
    probs = np.round(rng.random(500), 1)  # many ties
    components = auc_components(labels, probs)
    expected = sk.roc_auc_score(labels, probs)
    assert components.auc == pytest.approx(expected, abs=1e-12)
    assert components.positives.mean() == pytest.approx(expected, abs=1e-12)
    assert components.negatives.mean() == pytest.approx(expected, abs=1e-12)
    assert components.positives.size == labels.sum()
