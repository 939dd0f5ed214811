"""The analytic interval (large holdouts) against the paired bootstrap it replaces there."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

import promotion.intervals as intervals
from promotion.evaluation import (
    EvaluationConfig,
    EvaluationResult,
    SliceGuardrail,
    evaluate_challenger,
)
from promotion.intervals import ANALYTIC_MIN_ROWS, improvement_interval
from promotion.metrics import delong_test, metric_value, signed_improvement
from promotion.report import evaluation_tags

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Endpoints may differ by this share of the interval's half-width. A 2,000-resample percentile
# bound has a Monte Carlo standard error of ~0.03 half-widths, so this is ~3 of them; the normal
# approximation's own error on these holdouts is far smaller.
ENDPOINT_TOLERANCE = 0.1


def binary_holdout(rows: int, seed: int, gain: float = 0.3) -> tuple[np.ndarray, ...]:
    """Labels (40% positive) and two correlated models; `gain` is the challenger's extra signal."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < 0.4).astype(int)
    shared = rng.normal(size=rows)
    signal = labels - 0.4
    champion = 1 / (1 + np.exp(-(1.2 * signal + shared + 0.6 * rng.normal(size=rows))))
    challenger = 1 / (1 + np.exp(-((1.2 + gain) * signal + shared + 0.6 * rng.normal(size=rows))))
    return labels, np.round(champion, 3), np.round(challenger, 3)


def multiclass_holdout(rows: int, seed: int, k: int = 3) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, rows)
    truth = np.eye(k)[labels]
    shared = rng.normal(size=(rows, k))
    probs = []
    for strength in (1.0, 1.3):
        logits = strength * truth + shared + 0.5 * rng.normal(size=(rows, k))
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs.append(exp / exp.sum(axis=1, keepdims=True))
    return labels, probs[0], probs[1]


def regression_holdout(rows: int, seed: int, gain: float = 0.1) -> tuple[np.ndarray, ...]:
    """Targets and two models sharing an error term; the challenger's own errors are
    heavy-tailed (Student t, 5 degrees of freedom, unit variance), `gain` shrinks its share."""
    rng = np.random.default_rng(seed)
    labels = rng.normal(10, 3, rows)
    shared = rng.normal(size=rows)
    champion = labels + shared + 0.8 * rng.normal(size=rows)
    own = rng.standard_t(5, size=rows) * np.sqrt(3 / 5)
    challenger = labels + (1 - gain) * shared + 0.8 * own
    return labels, champion, challenger


CASES = [
    ("binary", "roc_auc", binary_holdout(30_000, seed=1)),
    ("binary", "log_loss", binary_holdout(30_000, seed=2)),
    ("multiclass", "log_loss", multiclass_holdout(36_000, seed=3)),
    ("regression", "rmse", regression_holdout(12_000, seed=4)),
    ("regression", "mae", regression_holdout(12_000, seed=5)),
    ("regression", "r2", regression_holdout(12_000, seed=6)),
]


def interval(task, metric, labels, champion, challenger, choice, resamples=1000, seed=0):
    improvement = signed_improvement(
        metric, metric_value(metric, labels, champion), metric_value(metric, labels, challenger)
    )
    return improvement, improvement_interval(
        task,
        metric,
        labels,
        champion,
        challenger,
        improvement=improvement,
        confidence=0.95,
        resamples=resamples,
        seed=seed,
        choice=choice,
    )


@pytest.mark.parametrize("task, metric, holdout", CASES, ids=[f"{t}-{m}" for t, m, _ in CASES])
def test_analytic_endpoints_match_the_bootstrap_where_both_apply(task, metric, holdout):
    improvement, analytic = interval(task, metric, *holdout, choice="auto")
    _, bootstrap = interval(task, metric, *holdout, choice="bootstrap", resamples=2000)
    assert analytic.method in ("delong", "normal") and analytic.resamples == 0
    half_width = (analytic.high - analytic.low) / 2
    assert half_width > 0
    assert bootstrap.low == pytest.approx(analytic.low, abs=ENDPOINT_TOLERANCE * half_width)
    assert bootstrap.high == pytest.approx(analytic.high, abs=ENDPOINT_TOLERANCE * half_width)


def test_small_holdouts_keep_the_bootstrap():
    labels, champion, challenger = binary_holdout(2 * ANALYTIC_MIN_ROWS, seed=7)
    _, result = interval("binary", "roc_auc", labels, champion, challenger, choice="auto")
    # 40% of 2 × ANALYTIC_MIN_ROWS positives: below the floor.
    assert (result.method, result.resamples) == ("bootstrap", 1000)


def test_label_metrics_keep_the_bootstrap_at_any_size():
    labels, champion, challenger = binary_holdout(60_000, seed=8)
    _, result = interval("binary", "accuracy", labels, champion, challenger, choice="auto")
    assert result.method == "bootstrap"
    with pytest.raises(ValueError, match="no analytic interval for binary accuracy"):
        interval("binary", "accuracy", labels, champion, challenger, choice="analytic")


def test_a_heavy_tailed_log_loss_stays_on_the_bootstrap_until_the_skew_is_small():
    labels, champion, challenger = binary_holdout(30_000, seed=9)
    # A handful of confident mistakes: per-row log-loss differences of ~34.5 among ones near 0.
    champion = champion.copy()
    champion[np.flatnonzero(labels == 1)[:15]] = 0.0
    _, result = interval("binary", "log_loss", labels, champion, challenger, choice="auto")
    assert result.method == "bootstrap"
    _, balanced = interval("binary", "log_loss", *binary_holdout(30_000, seed=9), choice="auto")
    assert balanced.method == "normal"


def test_delong_interval_excludes_zero_exactly_when_delongs_test_rejects():
    for seed, gain in enumerate([0.0, 0.02, 0.04, 0.08, 0.3]):
        labels, champion, challenger = binary_holdout(30_000, seed=20 + seed, gain=gain)
        _, result = interval("binary", "roc_auc", labels, champion, challenger, choice="auto")
        p_value = delong_test(labels, champion, challenger).p_value
        assert (result.low > 0 or result.high < 0) == (p_value < 0.05)


# --- decisions on seeded cases ---------------------------------------------------------------

DECISION_GAINS = {
    ("binary", "roc_auc"): [-0.05, -0.02, 0.0, 0.02, 0.04, 0.06, 0.08, 0.12, 0.2, 0.3],
    ("binary", "log_loss"): [-0.05, 0.0, 0.03, 0.06, 0.1],
    ("regression", "rmse"): [-0.05, 0.0, 0.03, 0.06, 0.1],
}
DECISION_CASES = [
    (task, metric, (binary_holdout if task == "binary" else regression_holdout)(8_000, seed, gain))
    for (task, metric), gains in DECISION_GAINS.items()
    for seed, gain in enumerate(gains, start=100)
]


def test_analytic_and_bootstrap_decide_alike_on_seeded_cases():
    """Superiority over 0 (lower bound > 0) and non-inferiority at a margin of 0.002 decided
    both ways; a case whose bootstrap bound is within the endpoint tolerance of the requirement
    is a coin flip of the resampling and is counted, not compared."""
    borderline = compared = promoted = 0
    for task, metric, holdout in DECISION_CASES:
        _, analytic = interval(task, metric, *holdout, choice="analytic")
        _, bootstrap = interval(task, metric, *holdout, choice="bootstrap", seed=11)
        half_width = (analytic.high - analytic.low) / 2
        for bound in (0.0, -0.002):
            if abs(bootstrap.low - bound) <= ENDPOINT_TOLERANCE * half_width:
                borderline += 1
                continue
            compared += 1
            promoted += bootstrap.low > bound
            assert (analytic.low > bound) == (bootstrap.low > bound), (task, metric, bound)
    assert compared >= 35 and borderline <= 5
    assert 0 < promoted < compared


def test_evaluation_on_a_large_holdout_decides_as_the_bootstrap_would(monkeypatch):
    labels, champion, challenger = binary_holdout(30_000, seed=12, gain=0.05)
    region = np.where(np.arange(labels.size) % 3 == 0, "north", "south")
    config = EvaluationConfig(
        metric="roc_auc",
        min_improvement=0.001,
        slices=(SliceGuardrail("region", "categorical", max_regression=0.01),),
    )

    def run():
        return evaluate_challenger(
            config,
            labels=labels,
            champion=champion,
            challenger=challenger,
            slices={"region": region},
        )

    fast = run()
    monkeypatch.setattr(intervals, "ANALYTIC_MIN_ROWS", 10**9)
    slow = run()
    assert (fast.interval, fast.resamples, slow.interval, slow.resamples) == (
        "delong",
        0,
        "bootstrap",
        1000,
    )
    assert fast.verdict == slow.verdict == "promote"
    assert fast.guardrails == slow.guardrails
    half_width = (fast.ci_high - fast.ci_low) / 2
    assert slow.ci_low == pytest.approx(fast.ci_low, abs=2 * ENDPOINT_TOLERANCE * half_width)
    assert EvaluationResult.from_json_dict(fast.to_json_dict()) == fast
    assert evaluation_tags(fast)["eval.interval"] == "delong"
    assert evaluation_tags(slow)["eval.interval"] == "bootstrap"


# --- properties of the analytic path ---------------------------------------------------------


@st.composite
def binary_scores(draw):
    rows = draw(st.integers(8, 80))
    labels = draw(hnp.arrays(np.int64, rows, elements=st.integers(0, 1)))
    assume(2 <= labels.sum() <= rows - 2)
    probs = st.floats(0.0, 1.0, allow_nan=False).map(lambda p: round(p, 2))
    return (
        labels,
        draw(hnp.arrays(np.float64, rows, elements=probs)),
        draw(hnp.arrays(np.float64, rows, elements=probs)),
    )


@st.composite
def regression_values(draw):
    rows = draw(st.integers(5, 80))
    values = st.floats(-1e3, 1e3, allow_nan=False)
    labels = draw(hnp.arrays(np.float64, rows, elements=values))
    assume(np.ptp(labels) > 1e-3)
    champion = draw(hnp.arrays(np.float64, rows, elements=values))
    challenger = draw(hnp.arrays(np.float64, rows, elements=values))
    assume(np.all(champion != labels) and np.all(challenger != labels))
    return labels, champion, challenger


ANALYTIC_PROPERTY_CASES = [
    ("binary", ["roc_auc", "log_loss"], binary_scores()),
    ("regression", ["rmse", "mae", "r2"], regression_values()),
]


@pytest.mark.parametrize("task, metrics, holdouts", ANALYTIC_PROPERTY_CASES)
def test_analytic_interval_is_centred_on_the_estimate(task, metrics, holdouts):
    @PROPERTY
    @given(data=holdouts, metric=st.sampled_from(metrics))
    def check(data, metric):
        improvement, result = interval(task, metric, *data, choice="analytic")
        assert result.low <= improvement <= result.high
        assert (result.low + result.high) / 2 == pytest.approx(improvement, abs=1e-12)

    check()


@pytest.mark.parametrize("task, metrics, holdouts", ANALYTIC_PROPERTY_CASES)
def test_analytic_interval_of_identical_models_is_zero(task, metrics, holdouts):
    @PROPERTY
    @given(data=holdouts, metric=st.sampled_from(metrics))
    def check(data, metric):
        labels, champion, _ = data
        _, result = interval(task, metric, labels, champion, champion.copy(), choice="analytic")
        assert (result.low, result.high) == (0.0, 0.0)

    check()


@pytest.mark.parametrize("task, metrics, holdouts", ANALYTIC_PROPERTY_CASES)
def test_swapping_the_models_negates_the_analytic_interval(task, metrics, holdouts):
    @PROPERTY
    @given(data=holdouts, metric=st.sampled_from(metrics))
    def check(data, metric):
        labels, champion, challenger = data
        _, forward = interval(task, metric, labels, champion, challenger, choice="analytic")
        _, backward = interval(task, metric, labels, challenger, champion, choice="analytic")
        scale = max(1.0, abs(forward.low), abs(forward.high))
        assert backward.low == pytest.approx(-forward.high, abs=1e-9 * scale)
        assert backward.high == pytest.approx(-forward.low, abs=1e-9 * scale)

    check()


@PROPERTY
@given(data=binary_scores())
def test_delong_interval_has_the_variance_of_delongs_test(data):
    labels, champion, challenger = data
    improvement, result = interval("binary", "roc_auc", labels, champion, challenger, "analytic")
    variance = delong_test(labels, champion, challenger).variance
    z = stats.norm.ppf(0.975)
    assert result.high - improvement == pytest.approx(z * np.sqrt(variance), abs=1e-12)
