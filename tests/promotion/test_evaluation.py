from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats
from sklearn import metrics as sk

from policies.schema import TASK_METRICS
from promotion.bootstrap import _AucKernel, _multinomial_counts, paired_bootstrap
from promotion.evaluation import (
    CalibrationGuardrail,
    EvaluationConfig,
    EvaluationConfigError,
    EvaluationResult,
    ModelFacts,
    SliceGuardrail,
    _slice_values,
    evaluate_challenger,
    signature_problems,
)
from promotion.metrics import (
    delong_test,
    expected_calibration_error,
    mcnemar_exact,
    metric_value,
)

FAST = {"resamples": 200}
# Property-test holdouts are small; the class-size floor is lowered so that every example is
# evaluated rather than refused.
SMALL = {"resamples": 200, "min_class_rows": 1}
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def correlated_pair(
    rows: int, *, champion_accuracy: float, challenger_accuracy: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and two models' probabilities that share most of their mistakes."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < 0.4).astype(int)
    champion_right = rng.random(rows) < champion_accuracy
    # The challenger keeps the champion's answer on most rows: it newly fails 3% of all rows and
    # fixes enough of the champion's mistakes to reach its own accuracy.
    loses, gains = 0.03, challenger_accuracy - champion_accuracy + 0.03
    draw = rng.random(rows)
    challenger_right = np.where(
        champion_right, draw >= loses / champion_accuracy, draw < gains / (1 - champion_accuracy)
    )
    confidence = 0.5 + 0.45 * rng.random(rows)

    def probabilities(right: np.ndarray) -> np.ndarray:
        says_positive = np.where(right, labels == 1, labels == 0)
        return np.where(says_positive, confidence, 1 - confidence)

    return labels, probabilities(champion_right), probabilities(challenger_right)


def evaluate(config: EvaluationConfig, labels, champion, challenger, **kwargs) -> EvaluationResult:
    return evaluate_challenger(
        config, labels=labels, champion=champion, challenger=challenger, **kwargs
    )


# --- metrics -------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"])
def test_metric_matches_scikit_learn(metric):
    rng = np.random.default_rng(1)
    labels = (rng.random(500) < 0.3).astype(int)
    probs = np.round(rng.random(500), 2)  # rounded so the AUC has ties
    expected = {
        "accuracy": lambda: sk.accuracy_score(labels, probs > 0.5),
        "precision": lambda: sk.precision_score(labels, probs > 0.5),
        "recall": lambda: sk.recall_score(labels, probs > 0.5),
        "f1": lambda: sk.f1_score(labels, probs > 0.5),
        "roc_auc": lambda: sk.roc_auc_score(labels, probs),
        "log_loss": lambda: sk.log_loss(labels, np.clip(probs, 1e-15, 1 - 1e-15)),
    }[metric]()
    assert metric_value(metric, labels, probs) == pytest.approx(expected, rel=1e-12)


def test_precision_without_predicted_positives_is_zero():
    assert metric_value("precision", np.array([0, 1, 1]), np.array([0.1, 0.2, 0.3])) == 0.0


def test_expected_calibration_error_is_zero_when_each_bin_matches_its_rate():
    labels = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    probs = np.array([0.25, 0.25, 0.25, 0.25, 0.75, 0.75, 0.75, 0.75])
    assert expected_calibration_error(labels, probs) == pytest.approx(0.0)


def test_expected_calibration_error_weights_bins_by_rows():
    labels = np.array([0, 0, 0, 1])
    probs = np.array([0.05, 0.05, 0.05, 0.95])  # bin 1 gap 0.05 (3 rows), bin 10 gap 0.05
    assert expected_calibration_error(labels, probs) == pytest.approx(0.05)


@pytest.mark.parametrize("champion_only, challenger_only", [(0, 7), (3, 12), (25, 31), (40, 40)])
def test_mcnemar_exact_matches_binomial_test(champion_only, challenger_only):
    expected = stats.binomtest(champion_only, champion_only + challenger_only, 0.5).pvalue
    assert mcnemar_exact(champion_only, challenger_only) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_without_disagreements_finds_no_difference():
    assert mcnemar_exact(0, 0) == 1.0


def _delong_reference(labels, champion, challenger):
    """DeLong et al. (1988) straight from the definition, with every positive–negative pair."""
    positive = labels == 1
    v10, v01 = [], []
    for probs in (champion, challenger):
        x, y = probs[positive][:, None], probs[~positive][None, :]
        psi = (x > y) + 0.5 * (x == y)
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    s10, s01 = np.cov(v10), np.cov(v01)
    variance = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / positive.sum() + (
        s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]
    ) / (~positive).sum()
    difference = v10[1].mean() - v10[0].mean()
    return variance, 2 * stats.norm.sf(abs(difference) / np.sqrt(variance))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_matches_pairwise_reference_including_ties(seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random(120) < 0.35).astype(int)
    champion = np.round(0.3 * labels + 0.7 * rng.random(120), 1)
    challenger = np.round(0.4 * labels + 0.6 * rng.random(120), 2)
    variance, p_value = _delong_reference(labels, champion, challenger)
    result = delong_test(labels, champion, challenger)
    assert result.variance == pytest.approx(variance, rel=1e-10)
    assert result.p_value == pytest.approx(p_value, rel=1e-8)
    assert result.challenger_auc == pytest.approx(sk.roc_auc_score(labels, challenger))


# --- bootstrap ----------------------------------------------------------------------------


def test_weighted_auc_equals_auc_of_the_resampled_rows():
    rng = np.random.default_rng(3)
    labels = (rng.random(300) < 0.4).astype(int)
    probs = np.round(rng.random(300), 1)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    pos_counts = _multinomial_counts(rng, pos.size)
    neg_counts = _multinomial_counts(rng, neg.size)
    weights = np.zeros(300)
    weights[pos], weights[neg] = pos_counts, neg_counts
    expected = sk.roc_auc_score(labels, probs, sample_weight=weights)
    kernel = _AucKernel(probs, pos, neg)
    assert kernel(pos_counts, neg_counts, kernel.scratch()) == pytest.approx(expected)


@pytest.mark.parametrize("metric", ["accuracy", "f1"])
def test_label_metric_bootstrap_has_the_spread_of_row_resampling(metric):
    labels, champion, challenger = correlated_pair(
        400, champion_accuracy=0.8, challenger_accuracy=0.82, seed=4
    )
    draws = paired_bootstrap(metric, labels, champion, challenger, resamples=4000, seed=5)
    fast = draws.challenger - draws.champion
    rng = np.random.default_rng(6)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    slow = []
    for _ in range(4000):
        rows = np.r_[rng.choice(pos, pos.size), rng.choice(neg, neg.size)]
        slow.append(
            metric_value(metric, labels[rows], challenger[rows])
            - metric_value(metric, labels[rows], champion[rows])
        )
    assert fast.mean() == pytest.approx(np.mean(slow), abs=0.002)
    assert fast.std() == pytest.approx(np.std(slow), rel=0.08)


def test_bootstrap_with_another_seed_draws_other_resamples():
    labels, champion, challenger = correlated_pair(
        300, champion_accuracy=0.8, challenger_accuracy=0.8, seed=7
    )
    first = paired_bootstrap("log_loss", labels, champion, challenger, resamples=100, seed=1)
    second = paired_bootstrap("log_loss", labels, champion, challenger, resamples=100, seed=2)
    assert not np.array_equal(first.challenger, second.challenger)


# --- config -------------------------------------------------------------------------------


def test_config_reports_every_invalid_field_at_once():
    with pytest.raises(EvaluationConfigError) as error:
        EvaluationConfig(
            metric="mse",
            min_improvement=-0.1,
            confidence=1.5,
            resamples=10,
            slices=(SliceGuardrail("age", "numeric", max_regression=0.01),),
        )
    message = str(error.value)
    for field in ("metric", "min_improvement", "confidence", "resamples", "slices[0].bins"):
        assert f"EvaluationConfig.{field}:" in message


def test_margin_is_rejected_in_superiority_mode():
    with pytest.raises(EvaluationConfigError, match="margin: only applies"):
        EvaluationConfig(metric="accuracy", margin=0.01)


# --- cannot_evaluate ----------------------------------------------------------------------

CONFIG = EvaluationConfig(metric="accuracy", **FAST)


@pytest.mark.parametrize(
    "labels, champion, challenger, reason",
    [
        ([], [], [], "no rows"),
        ([0, 1, np.nan], [0.2, 0.7, 0.4], [0.1, 0.8, 0.3], "labels are missing"),
        ([1, 1, 1], [0.2, 0.7, 0.4], [0.1, 0.8, 0.3], "both classes"),
        ([0, 1, 2], [0.2, 0.7, 0.4], [0.1, 0.8, 0.3], "must be 0 or 1"),
        ([0, 1, 1], [0.2, 0.7], [0.1, 0.8, 0.3], "champion predictions have 2 rows"),
        ([0, 1, 1], [0.2, 0.7, np.nan], [0.1, 0.8, 0.3], "champion predictions are NaN"),
        ([0, 1, 1], [0.2, 0.7, 0.4], [0.1, 0.8, 1.3], "challenger predictions must be"),
    ],
)
def test_unusable_inputs_cannot_be_evaluated(labels, champion, challenger, reason):
    result = evaluate(CONFIG, np.array(labels), np.array(champion), np.array(challenger))
    assert result.verdict == "cannot_evaluate"
    assert any(reason in text for text in result.reasons)
    assert result.improvement is None


def test_two_column_predict_proba_output_is_refused_with_the_fix():
    labels = np.r_[np.ones(20), np.zeros(20)]
    both_columns = np.column_stack([np.full(40, 0.7), np.full(40, 0.3)])
    result = evaluate(CONFIG, labels, both_columns, np.full(40, 0.3))
    assert result.verdict == "cannot_evaluate"
    assert "pass the positive-class column" in result.reasons[0]


def test_too_few_positives_cannot_be_evaluated():
    labels = np.r_[np.ones(3), np.zeros(500)]
    result = evaluate(CONFIG, labels, np.full(503, 0.2), np.where(labels == 1, 0.9, 0.1))
    assert result.verdict == "cannot_evaluate"
    assert result.reasons == (
        "only 3 positive rows in the holdout; at least min_class_rows=10 are needed for a "
        "meaningful interval",
    )


def test_incompatible_signature_cannot_be_evaluated():
    labels, champion, challenger = correlated_pair(
        500, champion_accuracy=0.7, challenger_accuracy=0.9, seed=1
    )
    result = evaluate(
        CONFIG,
        labels,
        champion,
        challenger,
        champion_facts=ModelFacts(input_schema=[("age", "long"), ("plan", "string")]),
        challenger_facts=ModelFacts(input_schema=[("age", "long"), ("region", "string")]),
    )
    assert result.verdict == "cannot_evaluate"
    assert "'region'" in result.reasons[0]


def test_signature_accepts_lossless_widening_and_extra_champion_columns():
    champion = [("age", "integer"), ("spend", "float"), ("plan", "string")]
    challenger = [("age", "long"), ("spend", "double")]
    assert signature_problems(champion, challenger) == []


def test_signature_rejects_narrowing():
    problems = signature_problems([("spend", "double")], [("spend", "float")])
    assert problems == [
        "column 'spend' is double for the champion but the challenger expects float"
    ]


def test_slice_column_of_wrong_length_cannot_be_evaluated():
    labels, champion, challenger = correlated_pair(
        100, champion_accuracy=0.8, challenger_accuracy=0.8, seed=1
    )
    result = evaluate(CONFIG, labels, champion, challenger, slices={"plan": np.array(["a"] * 99)})
    assert result.verdict == "cannot_evaluate"


# --- verdicts -----------------------------------------------------------------------------


def test_clearly_better_challenger_is_promoted_with_mcnemar_p_value():
    labels, champion, challenger = correlated_pair(
        5000, champion_accuracy=0.75, challenger_accuracy=0.85, seed=2
    )
    result = evaluate(
        EvaluationConfig(metric="accuracy", min_improvement=0.02), labels, champion, challenger
    )
    assert result.verdict == "promote"
    assert result.ci_low >= 0.02
    assert result.test == "mcnemar_exact" and result.p_value < 1e-10


def test_improvement_below_min_improvement_is_rejected():
    labels, champion, challenger = correlated_pair(
        5000, champion_accuracy=0.8, challenger_accuracy=0.81, seed=3
    )
    result = evaluate(
        EvaluationConfig(metric="accuracy", min_improvement=0.05), labels, champion, challenger
    )
    assert result.verdict == "reject"
    assert "not met" in result.reasons[0]


def test_slightly_worse_challenger_passes_non_inferiority_within_margin():
    labels, champion, challenger = correlated_pair(
        20000, champion_accuracy=0.8, challenger_accuracy=0.797, seed=4
    )
    config = EvaluationConfig(metric="accuracy", mode="non_inferiority", margin=0.02, **FAST)
    assert evaluate(config, labels, champion, challenger).verdict == "promote"
    strict = EvaluationConfig(metric="accuracy", mode="non_inferiority", margin=0.0, **FAST)
    assert evaluate(strict, labels, champion, challenger).verdict == "reject"


def test_lower_log_loss_counts_as_positive_improvement():
    labels, champion, challenger = correlated_pair(
        3000, champion_accuracy=0.75, challenger_accuracy=0.85, seed=5
    )
    result = evaluate(EvaluationConfig(metric="log_loss", **FAST), labels, champion, challenger)
    assert result.challenger_score < result.champion_score
    assert result.improvement == pytest.approx(result.champion_score - result.challenger_score)
    assert result.ci_low > 0 and result.verdict == "promote"
    assert result.p_value is None


def test_roc_auc_verdict_carries_delong_p_value():
    labels, champion, challenger = correlated_pair(
        3000, champion_accuracy=0.75, challenger_accuracy=0.85, seed=6
    )
    result = evaluate(EvaluationConfig(metric="roc_auc", **FAST), labels, champion, challenger)
    assert result.test == "delong"
    assert result.p_value == pytest.approx(delong_test(labels, champion, challenger).p_value)


def test_swapping_a_confident_promotion_rejects_it():
    labels, champion, challenger = correlated_pair(
        3000, champion_accuracy=0.75, challenger_accuracy=0.85, seed=7
    )
    config = EvaluationConfig(metric="roc_auc", **FAST)
    assert evaluate(config, labels, champion, challenger).verdict == "promote"
    assert evaluate(config, labels, challenger, champion).verdict == "reject"


# --- guardrails ---------------------------------------------------------------------------


def _better_everywhere_but_region_b(rows: int = 4000):
    labels, champion, challenger = correlated_pair(
        rows, champion_accuracy=0.75, challenger_accuracy=0.85, seed=8
    )
    region = np.where(np.arange(rows) % 10 == 0, "b", "a")
    # In region b the challenger answers like the champion, except that it gets every other row
    # wrong: a regression of about 35 points on a tenth of the rows.
    in_b = region == "b"
    challenger = np.where(in_b, champion, challenger)
    spoiled = in_b & (np.arange(rows) % 20 == 0)
    challenger[spoiled] = np.where(labels[spoiled] == 1, 0.1, 0.9)
    return labels, champion, challenger, region


def test_regression_on_a_slice_rejects_an_overall_improvement():
    labels, champion, challenger, region = _better_everywhere_but_region_b()
    config = EvaluationConfig(
        metric="accuracy",
        slices=(SliceGuardrail("region", "categorical", max_regression=0.02),),
        **FAST,
    )
    result = evaluate(config, labels, champion, challenger, slices={"region": region})
    assert result.verdict == "reject"
    assert result.guardrails_with("fail") == ["slice region=b"]
    assert "not met" not in result.reasons[0]


def test_slice_below_min_rows_blocks_promotion_by_default():
    labels, champion, challenger = correlated_pair(
        4000, champion_accuracy=0.75, challenger_accuracy=0.85, seed=9
    )
    plan = np.where(np.arange(4000) < 50, "rare", "common")
    guardrail = SliceGuardrail("plan", "categorical", max_regression=0.5, min_rows=100)
    config = EvaluationConfig(metric="accuracy", slices=(guardrail,), **FAST)
    result = evaluate(config, labels, champion, challenger, slices={"plan": plan})
    assert result.verdict == "reject"
    assert result.guardrails_with("insufficient") == ["slice plan=rare"]


def test_allowed_insufficient_slice_is_reported_without_blocking():
    labels, champion, challenger = correlated_pair(
        4000, champion_accuracy=0.75, challenger_accuracy=0.85, seed=9
    )
    plan = np.where(np.arange(4000) < 50, "rare", "common")
    guardrail = SliceGuardrail(
        "plan", "categorical", max_regression=0.5, min_rows=100, allow_insufficient=True
    )
    config = EvaluationConfig(metric="accuracy", slices=(guardrail,), **FAST)
    result = evaluate(config, labels, champion, challenger, slices={"plan": plan})
    assert result.verdict == "promote"
    assert result.guardrails_with("insufficient") == ["slice plan=rare"]


def test_numeric_slices_follow_the_bin_edges():
    labels, champion, challenger = correlated_pair(
        3000, champion_accuracy=0.75, challenger_accuracy=0.85, seed=10
    )
    tenure = np.tile([5.0, 50.0, 500.0], 1000)
    guardrail = SliceGuardrail("tenure", "numeric", max_regression=0.5, bins=(30, 90))
    config = EvaluationConfig(metric="accuracy", slices=(guardrail,), **FAST)
    result = evaluate(config, labels, champion, challenger, slices={"tenure": tenure})
    slices = {g.name: g.numbers["rows"] for g in result.guardrails if g.name.startswith("slice")}
    assert slices == {
        "slice tenure=[-inf, 30)": 1000,
        "slice tenure=[30, 90)": 1000,
        "slice tenure=[90, inf)": 1000,
    }


@settings(max_examples=60, deadline=None)
@given(
    picks=hnp.arrays(np.intp, st.integers(1, 3000), elements=st.integers(0, 39)),
    values=st.integers(1, 40),
    kind=st.sampled_from(["str", "object", "int"]),
)
def test_categorical_slices_group_rows_as_sorting_their_values_would(picks, values, kind):
    # Few values are grouped by comparison, many by sorting: both must give np.unique's answer.
    alphabet = [f"v{i}" for i in range(values)]
    column = np.array(alphabet, dtype=object)[picks % values]
    if kind == "object":
        column[::7] = None
    elif kind == "int":
        column = (picks % values).astype(np.int64)
    else:
        column = column.astype(str)
    guardrail = SliceGuardrail("c", "categorical", max_regression=0.1)
    index, names = _slice_values(guardrail, column)
    missing = np.array([value is None for value in column], dtype=bool)
    texts = np.where(missing, "(missing)", np.asarray(column).astype(str))
    expected_names, expected_index = np.unique(texts, return_inverse=True)
    assert names == [str(name) for name in expected_names]
    assert np.array_equal(index, expected_index)


def test_categorical_slice_with_many_values_after_few_is_grouped_completely():
    column = np.array(["a"] * 2500 + [f"late{i % 20}" for i in range(500)])
    guardrail = SliceGuardrail("c", "categorical", max_regression=0.1)
    index, names = _slice_values(guardrail, column)
    expected_names, expected_index = np.unique(column, return_inverse=True)
    assert names == list(expected_names) and len(names) == 21
    assert np.array_equal(index, expected_index)


def test_missing_slice_column_is_skipped_and_said_so():
    labels, champion, challenger = correlated_pair(
        3000, champion_accuracy=0.75, challenger_accuracy=0.85, seed=11
    )
    guardrail = SliceGuardrail("region", "categorical", max_regression=0.01)
    config = EvaluationConfig(metric="accuracy", slices=(guardrail,), **FAST)
    result = evaluate(config, labels, champion, challenger)
    assert result.verdict == "promote"
    assert "slice region" in result.guardrails_with("skipped")
    assert any("slice region: skipped" in reason for reason in result.reasons)


def test_worse_calibration_than_allowed_rejects():
    labels, champion, challenger = correlated_pair(
        3000, champion_accuracy=0.75, challenger_accuracy=0.85, seed=12
    )
    # More often right, but never more than 51% sure: a worse Brier score.
    timid = np.where(challenger > 0.5, 0.51, 0.49)
    config = EvaluationConfig(
        metric="accuracy", calibration=CalibrationGuardrail("brier", max_worsening=0.01), **FAST
    )
    result = evaluate(config, labels, champion, timid)
    assert result.verdict == "reject"
    assert result.guardrails_with("fail") == ["calibration brier"]


def test_latency_and_size_limits_use_the_challenger_measurements():
    labels, champion, challenger = correlated_pair(
        3000, champion_accuracy=0.75, challenger_accuracy=0.85, seed=13
    )
    config = EvaluationConfig(
        metric="accuracy", max_latency_ms_per_row=2.0, max_size_bytes=1_000_000, **FAST
    )
    slow_and_big = ModelFacts(latency_ms_per_row=2.5, size_bytes=2_000_000)
    result = evaluate(config, labels, champion, challenger, challenger_facts=slow_and_big)
    assert result.verdict == "reject"
    assert result.guardrails_with("fail") == ["latency", "size"]


def test_unmeasured_latency_is_skipped_not_passed():
    labels, champion, challenger = correlated_pair(
        3000, champion_accuracy=0.75, challenger_accuracy=0.85, seed=13
    )
    config = EvaluationConfig(metric="accuracy", max_latency_ms_per_row=2.0, **FAST)
    result = evaluate(config, labels, champion, challenger)
    assert result.guardrails_with("skipped") == ["signature", "latency"]
    assert "pass" not in {g.status for g in result.guardrails if g.name == "latency"}


def test_result_survives_a_json_round_trip():
    labels, champion, challenger, region = _better_everywhere_but_region_b(1000)
    config = EvaluationConfig(
        metric="roc_auc",
        slices=(SliceGuardrail("region", "categorical", max_regression=0.02),),
        **FAST,
    )
    result = evaluate(config, labels, champion, challenger, slices={"region": region})
    assert EvaluationResult.from_json_dict(json.loads(json.dumps(result.to_json_dict()))) == result


def test_decision_modules_import_without_io_frameworks():
    code = (
        "import sys, promotion.evaluation, promotion.report; "
        "print(sorted({'mlflow', 'airflow', 'slack_sdk', 'sqlalchemy', 'matplotlib', 'pandas'}"
        " & {name.split('.')[0] for name in sys.modules}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"


# --- properties ---------------------------------------------------------------------------

probabilities = st.floats(0.0, 1.0, allow_nan=False)
BINARY_METRICS = TASK_METRICS["binary"]


@st.composite
def holdouts(draw, min_rows: int = 10, max_rows: int = 120):
    """Labels with both classes and two arbitrary probability vectors (ties and 0/1 included)."""
    rows = draw(st.integers(min_rows, max_rows))
    labels = draw(hnp.arrays(np.int8, rows, elements=st.integers(0, 1)))
    assume(0 < labels.sum() < rows)
    champion = draw(hnp.arrays(np.float64, rows, elements=probabilities))
    challenger = draw(hnp.arrays(np.float64, rows, elements=probabilities))
    return labels, champion, challenger


@PROPERTY
@given(data=holdouts(), metric=st.sampled_from(BINARY_METRICS), seed=st.integers(0, 2**32 - 1))
def test_identical_predictions_are_never_promoted_under_superiority(data, metric, seed):
    labels, champion, _ = data
    config = EvaluationConfig(metric=metric, seed=seed, **SMALL)
    assert evaluate(config, labels, champion, champion.copy()).verdict == "reject"


@PROPERTY
@given(data=holdouts(min_rows=40), metric=st.sampled_from(BINARY_METRICS))
def test_swapping_champion_and_challenger_turns_promote_into_reject(data, metric):
    labels, champion, _ = data
    # A challenger that is right about every row, with some confidence.
    challenger = np.where(labels == 1, 0.9, 0.1)
    config = EvaluationConfig(metric=metric, **SMALL)
    forward = evaluate(config, labels, champion, challenger)
    assume(forward.verdict == "promote")
    assert evaluate(config, labels, challenger, champion).verdict == "reject"


@PROPERTY
@given(data=holdouts(min_rows=40), metric=st.sampled_from(BINARY_METRICS))
def test_interval_narrows_when_the_holdout_grows(data, metric):
    labels, champion, challenger = data
    config = EvaluationConfig(metric=metric, resamples=400, min_class_rows=1)
    small = evaluate(config, labels, champion, challenger)
    large = evaluate(config, *(np.tile(array, 9) for array in data))
    # Nine times the rows shrink a bootstrap interval about three-fold.
    assert large.ci_high - large.ci_low <= 0.6 * (small.ci_high - small.ci_low) + 1e-12


@PROPERTY
@given(data=holdouts(), metric=st.sampled_from(BINARY_METRICS), seed=st.integers(0, 2**32 - 1))
def test_interval_contains_the_point_estimate(data, metric, seed):
    result = evaluate(EvaluationConfig(metric=metric, seed=seed, **SMALL), *data)
    assert result.ci_low <= result.improvement <= result.ci_high


@PROPERTY
@given(data=holdouts(), metric=st.sampled_from(BINARY_METRICS), seed=st.integers(0, 2**32 - 1))
def test_same_seed_gives_the_same_result(data, metric, seed):
    config = EvaluationConfig(metric=metric, seed=seed, **SMALL)
    assert evaluate(config, *data) == evaluate(config, *data)


def _first(labels, challenger, facts=None, **config) -> EvaluationResult:
    from promotion.evaluation import evaluate_first_champion

    settings = {"metric": "roc_auc", **FAST, **config}
    return evaluate_first_champion(
        EvaluationConfig(**settings), labels=labels, challenger=challenger, challenger_facts=facts
    )


def test_first_champion_is_promoted_with_its_holdout_metrics():
    labels, _, challenger = correlated_pair(
        1000, champion_accuracy=0.6, challenger_accuracy=0.8, seed=1
    )
    result = _first(labels, challenger)
    assert result.verdict == "promote"
    assert result.challenger_score == pytest.approx(sk.roc_auc_score(labels, challenger))
    assert set(result.challenger_metrics) >= {"roc_auc", "accuracy", "brier", "ece"}
    assert result.improvement is None and result.champion_metrics == {}
    assert result.reasons[0].startswith("first champion: no champion to compare against; roc_auc")


def test_first_champion_over_the_size_limit_is_rejected():
    labels, _, challenger = correlated_pair(
        1000, champion_accuracy=0.6, challenger_accuracy=0.8, seed=2
    )
    result = _first(labels, challenger, ModelFacts(size_bytes=5_000), max_size_bytes=1_000)
    assert result.verdict == "reject"
    assert "size: challenger 5,000 bytes (allowed ≤ 1,000): fail" in result.reasons


def test_first_champion_skips_the_guardrails_that_compare_with_a_champion():
    labels, _, challenger = correlated_pair(
        1000, champion_accuracy=0.6, challenger_accuracy=0.8, seed=3
    )
    result = _first(labels, challenger, calibration=CalibrationGuardrail("ece", 0.01))
    assert result.guardrails_with("skipped") == ["signature", "calibration ece"]


def test_first_champion_with_too_few_positives_cannot_be_evaluated():
    labels = np.array([1] * 3 + [0] * 200)
    result = _first(labels, np.linspace(0, 1, labels.size))
    assert result.verdict == "cannot_evaluate"
    assert result.reasons == (
        "only 3 positive rows in the holdout; at least min_class_rows=10 are needed for a "
        "meaningful interval",
    )


# --- multiclass -----------------------------------------------------------------------------

MULTICLASS = {"task": "multiclass", **FAST}


def multiclass_pair(
    rows: int,
    *,
    champion_accuracy: float,
    challenger_accuracy: float,
    classes: int = 3,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class-index labels and two models' class probabilities that share most of their mistakes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, rows)
    champion_right = rng.random(rows) < champion_accuracy
    loses, gains = 0.03, challenger_accuracy - champion_accuracy + 0.03
    draw = rng.random(rows)
    challenger_right = np.where(
        champion_right, draw >= loses / champion_accuracy, draw < gains / (1 - champion_accuracy)
    )
    wrong_class = (labels + rng.integers(1, classes, rows)) % classes
    confidence = 0.5 + 0.45 * rng.random(rows)

    def probabilities(right: np.ndarray) -> np.ndarray:
        says = np.where(right, labels, wrong_class)
        probs = np.full((rows, classes), 0.0)
        probs += ((1 - confidence) / (classes - 1))[:, None]
        probs[np.arange(rows), says] = confidence
        return probs

    return labels, probabilities(champion_right), probabilities(challenger_right)


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1", "log_loss"])
def test_clearly_better_multiclass_challenger_is_promoted(metric):
    labels, champion, challenger = multiclass_pair(
        4000, champion_accuracy=0.7, challenger_accuracy=0.8, seed=1
    )
    result = evaluate(EvaluationConfig(metric=metric, **MULTICLASS), labels, champion, challenger)
    assert result.verdict == "promote"
    assert result.ci_low > 0
    assert result.challenger_score == pytest.approx(metric_value(metric, labels, challenger))


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1", "log_loss"])
def test_worse_multiclass_challenger_is_rejected(metric):
    labels, champion, challenger = multiclass_pair(
        4000, champion_accuracy=0.7, challenger_accuracy=0.8, seed=2
    )
    result = evaluate(EvaluationConfig(metric=metric, **MULTICLASS), labels, challenger, champion)
    assert result.verdict == "reject"
    assert result.ci_high < 0


def test_multiclass_accuracy_carries_the_mcnemar_p_value_of_correctness():
    labels, champion, challenger = multiclass_pair(
        2000, champion_accuracy=0.7, challenger_accuracy=0.75, seed=3
    )
    result = evaluate(
        EvaluationConfig(metric="accuracy", **MULTICLASS), labels, champion, challenger
    )
    champion_right = champion.argmax(axis=1) == labels
    challenger_right = challenger.argmax(axis=1) == labels
    expected = stats.binomtest(
        int(np.sum(champion_right & ~challenger_right)),
        int(np.sum(champion_right != challenger_right)),
        0.5,
    ).pvalue
    assert result.test == "mcnemar_exact"
    assert result.p_value == pytest.approx(expected, rel=1e-10)


def test_multiclass_macro_f1_has_no_significance_test():
    labels, champion, challenger = multiclass_pair(
        2000, champion_accuracy=0.7, challenger_accuracy=0.75, seed=3
    )
    result = evaluate(
        EvaluationConfig(metric="macro_f1", **MULTICLASS), labels, champion, challenger
    )
    assert result.test is None and result.p_value is None


def test_multiclass_result_holds_the_task_metrics_and_calibration():
    labels, champion, challenger = multiclass_pair(
        2000, champion_accuracy=0.7, challenger_accuracy=0.75, seed=4
    )
    result = evaluate(
        EvaluationConfig(metric="log_loss", **MULTICLASS), labels, champion, challenger
    )
    assert set(result.challenger_metrics) == {"accuracy", "macro_f1", "log_loss", "brier", "ece"}
    assert result.challenger_metrics["brier"] == pytest.approx(
        sk.brier_score_loss(labels, challenger, scale_by_half=False)
    )
    assert result.task == "multiclass"


def test_multiclass_calibration_guardrail_rejects_a_timid_challenger():
    labels, champion, challenger = multiclass_pair(
        3000, champion_accuracy=0.7, challenger_accuracy=0.8, seed=5
    )
    # The same predicted classes, but barely more sure of them than of the others.
    timid = 0.2 * challenger + 0.8 / 3
    config = EvaluationConfig(
        metric="accuracy", calibration=CalibrationGuardrail("ece", max_worsening=0.02), **MULTICLASS
    )
    result = evaluate(config, labels, champion, timid)
    assert result.guardrails_with("fail") == ["calibration ece"]
    assert result.verdict == "reject"


@pytest.mark.parametrize(
    "labels, champion, challenger, reason",
    [
        ([0, 1, 3], np.eye(3)[[0, 1, 2]], np.eye(3)[[0, 1, 2]], "class indices 0 to 2"),
        ([0, 1, 0.5], np.eye(3)[[0, 1, 2]], np.eye(3)[[0, 1, 2]], "class indices 0 to 2"),
        ([0, 1, 2], np.eye(3)[[0, 1, 2]], np.eye(4)[[0, 1, 2]], "the same classes"),
        ([0, 1, 2], np.eye(3)[[0, 1, 2]] * 2, np.eye(3)[[0, 1, 2]], "must be probabilities"),
        ([0, 1, 2], np.full((3, 3), 0.2), np.eye(3)[[0, 1, 2]], "3 champion prediction rows do "),
        ([0, 1, 2], np.eye(3)[[0, 1, 2]], [0.2, 0.5, 0.7], "(n, k) matrix of class probab"),
        ([0, 1, 2], np.eye(3)[[0, 1, 2]], np.full((3, 3), np.nan), "challenger prediction rows c"),
    ],
)
def test_unusable_multiclass_inputs_cannot_be_evaluated(labels, champion, challenger, reason):
    config = EvaluationConfig(metric="accuracy", task="multiclass", **SMALL)
    result = evaluate(config, np.array(labels), champion, challenger)
    assert result.verdict == "cannot_evaluate"
    assert any(reason in text for text in result.reasons), result.reasons


def test_multiclass_class_with_too_few_rows_is_named():
    labels = np.r_[np.zeros(50), np.ones(50), np.full(4, 2)].astype(int)
    probs = np.eye(3)[labels] * 0.8 + 0.2 / 3
    config = EvaluationConfig(metric="macro_f1", classes=("bronze", "silver", "gold"), **MULTICLASS)
    result = evaluate(config, labels, probs, probs)
    assert result.verdict == "cannot_evaluate"
    assert result.reasons == (
        "only 4 rows of class 2 ('gold') in the holdout; at least min_class_rows=10 are needed "
        "for a meaningful interval",
    )


def test_multiclass_class_absent_from_the_holdout_cannot_be_evaluated():
    labels = np.r_[np.zeros(50), np.ones(50)].astype(int)
    probs = np.tile([0.6, 0.3, 0.1], (100, 1))
    result = evaluate(EvaluationConfig(metric="accuracy", **MULTICLASS), labels, probs, probs)
    assert result.verdict == "cannot_evaluate"
    assert result.reasons[0].startswith("only 0 rows of class 2 in the holdout")


def test_named_classes_must_match_the_probability_columns():
    labels, champion, challenger = multiclass_pair(
        300, champion_accuracy=0.7, challenger_accuracy=0.8, seed=6
    )
    config = EvaluationConfig(metric="accuracy", classes=("a", "b"), **MULTICLASS)
    result = evaluate(config, labels, champion, challenger)
    assert result.verdict == "cannot_evaluate"
    assert "3 class columns but 2 classes are named: a, b" in result.reasons[0]


def test_multiclass_slice_with_one_class_is_insufficient_for_macro_f1():
    labels, champion, challenger = multiclass_pair(
        3000, champion_accuracy=0.7, challenger_accuracy=0.8, seed=7
    )
    segment = np.where(labels == 0, "only-zeros", "mixed")
    guardrail = SliceGuardrail("segment", "categorical", max_regression=0.5, min_rows=50)
    config = EvaluationConfig(metric="macro_f1", slices=(guardrail,), **MULTICLASS)
    result = evaluate(config, labels, champion, challenger, slices={"segment": segment})
    assert result.guardrails_with("insufficient") == ["slice segment=only-zeros"]
    assert result.guardrails_with("pass") == ["slice segment=mixed"]
    accuracy = EvaluationConfig(metric="accuracy", slices=(guardrail,), **MULTICLASS)
    result = evaluate(accuracy, labels, champion, challenger, slices={"segment": segment})
    assert result.guardrails_with("insufficient") == []


def test_first_multiclass_champion_is_promoted_with_its_metrics():
    from promotion.evaluation import evaluate_first_champion

    labels, _, challenger = multiclass_pair(
        1000, champion_accuracy=0.6, challenger_accuracy=0.8, seed=8
    )
    result = evaluate_first_champion(
        EvaluationConfig(metric="macro_f1", **MULTICLASS), labels=labels, challenger=challenger
    )
    assert result.verdict == "promote"
    assert result.challenger_score == pytest.approx(
        sk.f1_score(labels, challenger.argmax(axis=1), average="macro")
    )


def test_multiclass_result_survives_a_json_round_trip():
    labels, champion, challenger = multiclass_pair(
        600, champion_accuracy=0.7, challenger_accuracy=0.8, seed=9
    )
    config = EvaluationConfig(metric="accuracy", classes=("a", "b", "c"), **MULTICLASS)
    result = evaluate(config, labels, champion, challenger)
    assert EvaluationResult.from_json_dict(json.loads(json.dumps(result.to_json_dict()))) == result


# --- regression -----------------------------------------------------------------------------

REGRESSION = {"task": "regression", **FAST}


def regression_pair(rows: int, *, challenger_noise: float, seed: int = 0):
    """Targets and two models whose errors share most of their noise; the champion's noise has
    standard deviation 1, the challenger's `challenger_noise`."""
    rng = np.random.default_rng(seed)
    labels = 5 * rng.normal(size=rows) + 20
    shared = rng.normal(size=rows)
    champion = labels + shared
    own = np.sqrt(max(challenger_noise**2 - 0.81 * challenger_noise**2, 0))
    challenger = labels + 0.9 * challenger_noise * shared + own * rng.normal(size=rows)
    return labels, champion, challenger


@pytest.mark.parametrize("metric", ["rmse", "mae", "r2"])
def test_clearly_better_regression_challenger_is_promoted(metric):
    labels, champion, challenger = regression_pair(3000, challenger_noise=0.8, seed=1)
    result = evaluate(EvaluationConfig(metric=metric, **REGRESSION), labels, champion, challenger)
    assert result.verdict == "promote"
    assert result.ci_low > 0
    assert result.test == "paired_t" and result.p_value < 1e-6


@pytest.mark.parametrize("metric", ["rmse", "mae", "r2"])
def test_worse_regression_challenger_is_rejected(metric):
    labels, champion, challenger = regression_pair(3000, challenger_noise=0.8, seed=2)
    result = evaluate(EvaluationConfig(metric=metric, **REGRESSION), labels, challenger, champion)
    assert result.verdict == "reject"
    assert result.ci_high < 0


def test_lower_rmse_counts_as_positive_improvement():
    labels, champion, challenger = regression_pair(2000, challenger_noise=0.8, seed=3)
    result = evaluate(EvaluationConfig(metric="rmse", **REGRESSION), labels, champion, challenger)
    assert result.challenger_score == pytest.approx(sk.root_mean_squared_error(labels, challenger))
    assert result.improvement == pytest.approx(result.champion_score - result.challenger_score)


@pytest.mark.parametrize("metric, error", [("rmse", np.square), ("mae", np.abs), ("r2", np.square)])
def test_regression_p_value_is_a_paired_t_test_on_the_row_errors(metric, error):
    labels, champion, challenger = regression_pair(500, challenger_noise=0.95, seed=4)
    result = evaluate(EvaluationConfig(metric=metric, **REGRESSION), labels, champion, challenger)
    expected = stats.ttest_rel(error(champion - labels), error(challenger - labels)).pvalue
    assert result.p_value == pytest.approx(expected, rel=1e-8)


def test_regression_result_has_no_calibration_metrics():
    labels, champion, challenger = regression_pair(500, challenger_noise=0.8, seed=5)
    result = evaluate(EvaluationConfig(metric="mae", **REGRESSION), labels, champion, challenger)
    assert set(result.champion_metrics) == {"rmse", "mae", "r2"}


@pytest.mark.parametrize(
    "labels, champion, challenger, reason",
    [
        ([1.0, 2.0, np.inf], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], "1 labels are infinite"),
        ([1.0, 2.0, np.nan], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], "labels are missing"),
        ([1.0, 2.0, 3.0], [1.0, np.nan, 3.0], [1.0, 2.0, 3.0], "1 champion predictions are not"),
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, -np.inf], "1 challenger predictions are"),
        ([1.0, 2.0, 3.0], [1.0, 2.0], [1.0, 2.0, 3.0], "champion predictions have 2 rows"),
        ([1.0, 2.0, 3.0], np.ones((3, 2)), [1.0, 2.0, 3.0], "predicts one value per row"),
    ],
)
def test_unusable_regression_inputs_cannot_be_evaluated(labels, champion, challenger, reason):
    config = EvaluationConfig(metric="rmse", task="regression", **SMALL)
    result = evaluate(config, np.array(labels), np.array(champion), np.array(challenger))
    assert result.verdict == "cannot_evaluate"
    assert any(reason in text for text in result.reasons), result.reasons


def test_regression_holdout_below_min_class_rows_cannot_be_evaluated():
    labels, champion, challenger = regression_pair(8, challenger_noise=0.5, seed=6)
    result = evaluate(EvaluationConfig(metric="rmse", **REGRESSION), labels, champion, challenger)
    assert result.reasons == (
        "only 8 rows in the holdout; at least min_class_rows=10 are needed for a meaningful "
        "interval",
    )


def test_r2_bootstrap_of_a_holdout_with_one_outlying_label_stays_bounded():
    # Resamples without the one label of 185 have constant labels (all 0): their R² is 0 for
    # the model that errs and 1 for the exact one, never a division by rounding noise.
    labels = np.r_[np.zeros(7), 185.0, np.zeros(17)]
    draws = paired_bootstrap("r2", labels, np.ones(25), np.zeros(25), resamples=500, seed=0)
    assert np.all(np.abs(draws.champion) < 2) and np.all(np.abs(draws.challenger) < 2)
    assert np.any(draws.champion == 0.0) and np.any(draws.challenger == 1.0)


def test_r2_on_constant_labels_cannot_be_evaluated_but_rmse_can():
    labels = np.full(50, 4.0)
    champion, challenger = labels + 1.0, labels + np.linspace(-0.5, 0.5, 50)
    r2 = evaluate(EvaluationConfig(metric="r2", **REGRESSION), labels, champion, challenger)
    assert r2.verdict == "cannot_evaluate"
    assert r2.reasons == ("every label is 4; r2 is undefined when the labels do not vary",)
    rmse = evaluate(EvaluationConfig(metric="rmse", **REGRESSION), labels, champion, challenger)
    assert rmse.verdict == "promote"


def test_regression_slice_guardrail_needs_only_rows_except_r2_needs_spread():
    labels, champion, challenger = regression_pair(3000, challenger_noise=0.8, seed=7)
    labels[:300] = 20.0
    segment = np.where(np.arange(3000) < 300, "flat", "varied")
    guardrail = SliceGuardrail("segment", "categorical", max_regression=0.5, min_rows=100)
    for metric, insufficient in (("rmse", []), ("r2", ["slice segment=flat"])):
        config = EvaluationConfig(metric=metric, slices=(guardrail,), **REGRESSION)
        result = evaluate(config, labels, champion, challenger, slices={"segment": segment})
        assert result.guardrails_with("insufficient") == insufficient
        assert "positives" not in result.guardrails[-1].numbers


def test_regression_slice_that_regresses_rejects():
    labels, champion, challenger = regression_pair(3000, challenger_noise=0.8, seed=8)
    segment = np.where(np.arange(3000) % 10 == 0, "b", "a")
    challenger = np.where(segment == "b", labels + 3.0, challenger)
    guardrail = SliceGuardrail("segment", "categorical", max_regression=0.1)
    config = EvaluationConfig(metric="mae", slices=(guardrail,), **REGRESSION)
    result = evaluate(config, labels, champion, challenger, slices={"segment": segment})
    assert result.guardrails_with("fail") == ["slice segment=b"]
    assert result.verdict == "reject"


def test_first_regression_champion_is_promoted_with_its_metrics():
    from promotion.evaluation import evaluate_first_champion

    labels, _, challenger = regression_pair(500, challenger_noise=0.8, seed=9)
    result = evaluate_first_champion(
        EvaluationConfig(metric="r2", **REGRESSION), labels=labels, challenger=challenger
    )
    assert result.verdict == "promote"
    assert result.challenger_score == pytest.approx(sk.r2_score(labels, challenger))
    assert set(result.challenger_metrics) == {"rmse", "mae", "r2"}


# --- config per task ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "task, metric", [("binary", "rmse"), ("regression", "roc_auc"), ("multiclass", "f1")]
)
def test_metric_of_another_task_names_the_metric_field(task, metric):
    with pytest.raises(EvaluationConfigError) as error:
        EvaluationConfig(metric=metric, task=task)
    expected = ", ".join(TASK_METRICS[task])
    assert str(error.value) == (
        f"EvaluationConfig.metric: {metric!r} does not measure a {task} model; "
        f"use one of {expected}"
    )


def test_calibration_on_a_regression_model_names_the_calibration_field():
    with pytest.raises(EvaluationConfigError, match=r"EvaluationConfig\.calibration: only applies"):
        EvaluationConfig(
            metric="rmse", task="regression", calibration=CalibrationGuardrail("brier", 0.01)
        )


def test_multiclass_calibration_is_accepted():
    config = EvaluationConfig(
        metric="log_loss", task="multiclass", calibration=CalibrationGuardrail("brier", 0.01)
    )
    assert config.calibration is not None


def test_unknown_task_and_misplaced_classes_are_named():
    with pytest.raises(EvaluationConfigError) as error:
        EvaluationConfig(metric="accuracy", task="ranking")
    assert "EvaluationConfig.task: must be one of binary, multiclass, regression" in str(
        error.value
    )
    with pytest.raises(EvaluationConfigError, match=r"EvaluationConfig\.classes: only names"):
        EvaluationConfig(metric="accuracy", classes=("no", "yes"))
    with pytest.raises(EvaluationConfigError, match="'a' is listed twice"):
        EvaluationConfig(metric="accuracy", task="multiclass", classes=("a", "b", "a"))


# --- properties per task --------------------------------------------------------------------

MULTICLASS_SMALL = {"task": "multiclass", **SMALL}
REGRESSION_SMALL = {"task": "regression", **SMALL}


@st.composite
def multiclass_holdouts(draw, min_rows: int = 12, max_rows: int = 90):
    """Labels with every one of k classes present and two arbitrary probability matrices."""
    k = draw(st.integers(3, 4))
    rows = draw(st.integers(min_rows, max_rows))
    labels = draw(hnp.arrays(np.intp, rows, elements=st.integers(0, k - 1)))
    assume(np.unique(labels).size == k)
    weights = st.floats(0.0, 1.0, allow_nan=False)
    matrices = [draw(hnp.arrays(np.float64, (rows, k), elements=weights)) for _ in range(2)]
    probs = []
    for matrix in matrices:
        matrix = matrix + 1e-3  # no all-zero row
        probs.append(matrix / matrix.sum(axis=1, keepdims=True))
    return labels, probs[0], probs[1]


@st.composite
def regression_holdouts(draw, min_rows: int = 10, max_rows: int = 120):
    """Varying targets and two arbitrary prediction vectors."""
    rows = draw(st.integers(min_rows, max_rows))
    values = st.floats(-1e3, 1e3, allow_nan=False)
    labels = draw(hnp.arrays(np.float64, rows, elements=values))
    assume(np.ptp(labels) > 1e-3)
    champion = draw(hnp.arrays(np.float64, rows, elements=values))
    challenger = draw(hnp.arrays(np.float64, rows, elements=values))
    return labels, champion, challenger


TASK_CASES = [
    ("multiclass", multiclass_holdouts(), MULTICLASS_SMALL),
    ("regression", regression_holdouts(), REGRESSION_SMALL),
]


@pytest.mark.parametrize("task, holdout, settings_", TASK_CASES)
def test_identical_models_are_never_promoted_under_superiority_per_task(task, holdout, settings_):
    @PROPERTY
    @given(data=holdout, metric=st.sampled_from(TASK_METRICS[task]), seed=st.integers(0, 2**32))
    def check(data, metric, seed):
        labels, champion, _ = data
        config = EvaluationConfig(metric=metric, seed=seed, **settings_)
        assert evaluate(config, labels, champion, champion.copy()).verdict == "reject"

    check()


@pytest.mark.parametrize("task, holdout, settings_", TASK_CASES)
def test_interval_contains_the_point_estimate_per_task(task, holdout, settings_):
    @PROPERTY
    @given(data=holdout, metric=st.sampled_from(TASK_METRICS[task]), seed=st.integers(0, 2**32))
    def check(data, metric, seed):
        result = evaluate(EvaluationConfig(metric=metric, seed=seed, **settings_), *data)
        assert result.verdict != "cannot_evaluate", result.reasons
        assert result.ci_low <= result.improvement <= result.ci_high

    check()


@pytest.mark.parametrize(
    "task, holdout, settings_, metrics",
    [
        ("multiclass", multiclass_holdouts(), MULTICLASS_SMALL, ["log_loss"]),
        ("regression", regression_holdouts(), REGRESSION_SMALL, ["rmse", "mae", "r2"]),
    ],
)
def test_swapping_champion_and_challenger_negates_the_interval(task, holdout, settings_, metrics):
    # Exact for metrics that are sums over rows: the same seed draws the same row counts. The
    # multiclass label metrics draw over (champion, challenger) cells, whose order a swap changes.
    @PROPERTY
    @given(data=holdout, metric=st.sampled_from(metrics), seed=st.integers(0, 2**32))
    def check(data, metric, seed):
        labels, champion, challenger = data
        config = EvaluationConfig(metric=metric, seed=seed, **settings_)
        forward = evaluate(config, labels, champion, challenger)
        backward = evaluate(config, labels, challenger, champion)
        close = {"rel": 1e-9, "abs": 1e-9}  # a quantile of negated draws may differ in rounding
        assert backward.improvement == pytest.approx(-forward.improvement, **close)
        assert backward.ci_low == pytest.approx(-forward.ci_high, **close)
        assert backward.ci_high == pytest.approx(-forward.ci_low, **close)
        assert backward.p_value == pytest.approx(forward.p_value)

    check()


@PROPERTY
@given(data=multiclass_holdouts(min_rows=30), metric=st.sampled_from(["accuracy", "macro_f1"]))
def test_swapping_a_multiclass_promotion_rejects_it(data, metric):
    labels, champion, _ = data
    perfect = 0.9 * np.eye(champion.shape[1])[labels] + 0.1 / champion.shape[1]
    config = EvaluationConfig(metric=metric, **MULTICLASS_SMALL)
    forward = evaluate(config, labels, champion, perfect)
    assume(forward.verdict == "promote")
    backward = evaluate(config, labels, perfect, champion)
    assert backward.verdict == "reject"
    assert backward.improvement == pytest.approx(-forward.improvement)


@pytest.mark.parametrize("task, holdout, settings_", TASK_CASES)
def test_same_seed_gives_the_same_result_per_task(task, holdout, settings_):
    @PROPERTY
    @given(data=holdout, metric=st.sampled_from(TASK_METRICS[task]), seed=st.integers(0, 2**32))
    def check(data, metric, seed):
        config = EvaluationConfig(metric=metric, seed=seed, **settings_)
        assert evaluate(config, *data) == evaluate(config, *data)

    check()


@pytest.mark.parametrize(
    "task, holdout, metrics",
    [
        ("multiclass", multiclass_holdouts(), TASK_METRICS["multiclass"]),
        # Not r2: on a dozen rows with nearly constant labels, R² is a ratio over a vanishing
        # total whose resamples do not shrink like those of a mean.
        ("regression", regression_holdouts(), ["rmse", "mae"]),
    ],
)
def test_interval_narrows_when_the_holdout_grows_per_task(task, holdout, metrics):
    @PROPERTY
    @given(data=holdout, metric=st.sampled_from(metrics))
    def check(data, metric):
        config = EvaluationConfig(metric=metric, task=task, resamples=400, min_class_rows=1)
        small = evaluate(config, *data)
        large = evaluate(config, *(np.concatenate([array] * 9) for array in data))
        # Nine times the rows shrink a bootstrap interval about three-fold.
        assert large.ci_high - large.ci_low <= 0.6 * (small.ci_high - small.ci_low) + 1e-9

    check()
