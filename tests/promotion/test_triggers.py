"""Retraining triggers: the performance interval rule, data volume, and the gate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promotion.triggers import (
    Gate,
    PerformanceRule,
    data_volume_signal,
    decide,
    metric_interval,
    performance_signal,
)

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
GATE = Gate(cooldown=timedelta(hours=6), max_per_day=2)


def rule(**changes) -> PerformanceRule:
    fields = {"metric": "accuracy", "floor": None, "max_drop": 0.02, "min_labeled": 100}
    return PerformanceRule(**{**fields, "confidence": 0.95, **changes})


def served(accuracy: float, rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores of a classifier whose answers are right with the given probability."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=rows)
    right = rng.random(rows) < accuracy
    scores = np.where(right == (labels == 1), 0.8, 0.2)
    return labels, scores


def test_a_champion_as_good_as_at_promotion_does_not_fire() -> None:
    signal = performance_signal(rule(), *served(0.85, 2000), promoted_level=0.85)
    assert not signal.fired
    assert signal.lower < 0.85 < signal.upper
    assert "not wholly below the promoted level 0.8500 − 0.02" in signal.reason


def test_a_clear_drop_fires_with_the_whole_interval_below_the_bound() -> None:
    signal = performance_signal(rule(), *served(0.75, 2000), promoted_level=0.85)
    assert signal.fired and signal.upper < 0.83
    assert signal.reason.startswith("accuracy 0.7")


def test_a_point_estimate_below_the_bound_with_a_wide_interval_does_not_fire() -> None:
    labels = np.ones(120)
    scores = np.r_[np.full(96, 0.9), np.full(24, 0.1)]  # 96 of 120 right: 0.80
    signal = performance_signal(rule(min_labeled=10), labels, scores, promoted_level=0.85)
    assert signal.value < 0.83 and signal.upper >= 0.83
    assert not signal.fired


def test_the_floor_alone_is_a_bound_without_a_promoted_level() -> None:
    signal = performance_signal(rule(max_drop=None, floor=0.9), *served(0.75, 1000), None)
    assert signal.fired and "the floor 0.9000" in signal.reason


def test_without_a_floor_or_a_promoted_level_nothing_can_fire() -> None:
    signal = performance_signal(rule(), *served(0.1, 1000), promoted_level=None)
    assert not signal.fired
    assert signal.reason == "no floor, and no promoted level to drop from"


def test_too_few_labels_never_fire() -> None:
    signal = performance_signal(rule(min_labeled=500), *served(0.0, 499), promoted_level=0.9)
    assert (signal.fired, signal.value) == (False, None)
    assert signal.reason == "499 labeled rows, fewer than min_labeled 500"


def test_log_loss_fires_when_the_interval_is_above_the_ceiling() -> None:
    labels, _ = served(0.5, 2000)
    bad = np.where(labels == 1, 0.3, 0.7)
    signal = performance_signal(rule(metric="log_loss", max_drop=0.1), labels, bad, 0.4)
    assert signal.fired and signal.lower > 0.5
    assert "above the promoted level 0.4000 + 0.1" in signal.reason


def test_roc_auc_with_one_class_cannot_be_measured_and_does_not_fire() -> None:
    signal = performance_signal(rule(metric="roc_auc"), np.ones(200), np.full(200, 0.3), 0.9)
    assert not signal.fired
    assert signal.reason.startswith("roc_auc cannot be measured")


@pytest.mark.parametrize("metric", ["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"])
def test_every_metric_has_an_interval_around_its_value(metric: str) -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 800)
    scores = np.clip(labels * 0.3 + rng.random(800) * 0.7, 0.01, 0.99)
    value, lower, upper = metric_interval(metric, labels, scores, 0.95)
    assert lower <= value <= upper
    assert upper - lower < 0.2


@settings(max_examples=60, deadline=None)
@given(
    hits=st.integers(0, 400),
    misses=st.integers(0, 400),
    confidence=st.floats(0.6, 0.99),
    level=st.floats(0.0, 1.0),
)
def test_accuracy_fires_only_when_the_upper_end_is_below_the_bound(
    hits, misses, confidence, level
) -> None:
    labels = np.r_[np.ones(hits), np.zeros(misses)]
    scores = np.r_[np.full(hits, 0.9), np.full(misses, 0.9)]
    signal = performance_signal(rule(confidence=confidence, min_labeled=1), labels, scores, level)
    if hits + misses == 0:
        assert not signal.fired
        return
    assert 0 <= signal.lower <= signal.value <= signal.upper <= 1
    assert signal.fired == (signal.upper < level - 0.02)
    # Fired means the point estimate is below the bound too: a dip alone is never enough.
    assert not signal.fired or signal.value < level - 0.02


def test_data_volume_fires_at_the_threshold() -> None:
    assert not data_volume_signal(499, 500, "2026-11-01T00:00:00").fired
    fired = data_volume_signal(500, 500, "2026-11-01T00:00:00")
    assert fired.fired
    assert fired.reason == "500 new labeled rows since 2026-11-01T00:00:00, reach 500"


def test_a_held_signal_fires_when_the_gate_is_open() -> None:
    decision = decide(["drift"], {"drift": "drift in plan"}, NOW, [], [], GATE)
    assert (decision.fire, decision.held, decision.reason) == (
        True,
        ("drift",),
        "drift: drift in plan",
    )


def test_nothing_fires_while_a_run_of_the_model_is_active() -> None:
    decision = decide(["performance"], {"performance": "low"}, NOW, [], ["train_churn"], GATE)
    assert not decision.fire
    assert "train_churn running" in decision.reason


def test_the_cooldown_holds_after_a_triggered_training() -> None:
    last = NOW - timedelta(hours=5)
    decision = decide(["performance"], {"performance": "low"}, NOW, [last], [], GATE)
    assert not decision.fire
    assert "cooldown until 2026-12-01T13:00:00+00:00" in decision.reason
    assert decide(
        ["performance"], {"performance": "low"}, NOW + timedelta(hours=1), [last], [], GATE
    ).fire


def test_the_daily_cap_holds_even_past_the_cooldown() -> None:
    fires = [NOW - timedelta(hours=20), NOW - timedelta(hours=10)]
    decision = decide(["data_volume"], {"data_volume": "many"}, NOW, fires, [], GATE)
    assert not decision.fire and "max_per_day 2" in decision.reason


def test_no_signal_held_explains_each_one() -> None:
    decision = decide([], {"drift": "no drift", "data_volume": "12 new rows"}, NOW, [], [], GATE)
    assert decision == decision.__class__(False, (), "no trigger held: no drift; 12 new rows")


@settings(max_examples=100, deadline=None)
@given(
    checks=st.lists(st.integers(0, 72 * 60), min_size=1, max_size=60, unique=True),
    cooldown_hours=st.integers(0, 12),
    max_per_day=st.integers(1, 4),
)
def test_an_incident_that_lasts_fires_no_more_than_the_gate_allows(
    checks, cooldown_hours, max_per_day
) -> None:
    gate = Gate(timedelta(hours=cooldown_hours), max_per_day)
    fires: list[datetime] = []
    for minute in sorted(checks):
        now = NOW + timedelta(minutes=minute)
        if decide(["performance"], {"performance": "low"}, now, fires, [], gate).fire:
            fires.append(now)
    assert fires, "a held signal with an open gate fires at the first check"
    assert all(b - a >= gate.cooldown for a, b in zip(fires, fires[1:], strict=False))
    for moment in fires:
        window = [f for f in fires if timedelta(0) <= moment - f < timedelta(days=1)]
        assert len(window) <= max_per_day


def regressor(rmse: float, rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and values of a regressor with normal residuals of the given spread."""
    rng = np.random.default_rng(seed)
    labels = rng.normal(50, 10, rows)
    return labels, labels + rng.normal(0, rmse, rows)


def classes(accuracy: float, rows: int, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels (column indices) and probabilities of a k-class classifier right with the given
    probability (0.6 on its answer, the rest spread)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, rows)
    answer = np.where(rng.random(rows) < accuracy, labels, (labels + rng.integers(1, k, rows)) % k)
    probabilities = np.full((rows, k), 0.4 / (k - 1))
    probabilities[np.arange(rows), answer] = 0.6
    return labels, probabilities


@pytest.mark.parametrize("metric", ["rmse", "mae", "r2"])
def test_a_regression_metric_interval_holds_its_value(metric: str) -> None:
    value, lower, upper = metric_interval(metric, *regressor(2.0, 1000), 0.95)
    assert lower < value < upper
    expected = {"rmse": 2.0, "mae": 2.0 * (2 / np.pi) ** 0.5, "r2": 1 - 4 / 100}[metric]
    assert lower < expected < upper


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1", "log_loss"])
def test_a_multiclass_metric_interval_holds_its_value(metric: str) -> None:
    value, lower, upper = metric_interval(metric, *classes(0.8, 3000), 0.95)
    assert lower < value < upper
    expected = {
        "accuracy": 0.8,
        "macro_f1": 0.8,
        "log_loss": -(0.8 * np.log(0.6) + 0.2 * np.log(0.2)),
    }
    assert lower < expected[metric] < upper


def test_a_regressor_whose_errors_grew_fires_on_rmse_above_the_ceiling() -> None:
    signal = performance_signal(
        rule(metric="rmse", max_drop=0.5), *regressor(3.0, 1000), promoted_level=2.0
    )
    assert signal.fired and signal.lower > 2.5
    assert "above the promoted level 2.0000 + 0.5" in signal.reason


def test_a_regressor_as_good_as_at_promotion_does_not_fire_on_r2() -> None:
    signal = performance_signal(
        rule(metric="r2", max_drop=0.05), *regressor(2.0, 1000), promoted_level=0.96
    )
    assert not signal.fired and signal.lower < 0.96 < signal.upper


def test_a_multiclass_champion_below_its_floor_fires_on_macro_f1() -> None:
    signal = performance_signal(
        rule(metric="macro_f1", floor=0.75, max_drop=None), *classes(0.6, 2000), promoted_level=None
    )
    assert signal.fired and signal.upper < 0.75


def test_r2_of_constant_labels_cannot_be_measured_and_does_not_fire() -> None:
    signal = performance_signal(
        rule(metric="r2", min_labeled=10), np.ones(50), np.ones(50), promoted_level=0.9
    )
    assert not signal.fired and signal.value is None
    assert "r2 cannot be measured: r2 needs labels that vary" in signal.reason


@settings(max_examples=100, deadline=None)
@given(rows=st.integers(min_value=2, max_value=400), seed=st.integers(0, 10_000))
def test_a_regression_interval_is_ordered_and_rmse_is_never_negative(rows: int, seed: int) -> None:
    labels, values = regressor(1.0, rows, seed)
    for metric in ("rmse", "mae"):
        value, lower, upper = metric_interval(metric, labels, values, 0.9)
        assert 0 <= lower <= value <= upper


@settings(max_examples=100, deadline=None)
@given(rows=st.integers(min_value=1, max_value=400), seed=st.integers(0, 10_000))
def test_multiclass_accuracy_interval_stays_within_zero_and_one(rows: int, seed: int) -> None:
    value, lower, upper = metric_interval("accuracy", *classes(0.7, rows, seed=seed), 0.95)
    assert 0 <= lower <= value <= upper <= 1
