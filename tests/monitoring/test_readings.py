"""The pure shaping of the view: intervals, buckets, the alias timeline, outcomes, drift series."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitoring.readings import (
    MAX_POINTS,
    bucket_seconds,
    drift_by_feature,
    error_point,
    error_points,
    live_error_metric,
    metric_points,
    numbers_text,
    period_total,
    run_outcome,
    timeline,
    wilson_interval,
)
from promotion.records import AliasMove
from registry.monitor_checks import MonitorCheck


@given(
    n=st.integers(min_value=1, max_value=100_000),
    share=st.floats(min_value=0, max_value=1),
    confidence=st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_the_interval_holds_the_observed_accuracy_inside_zero_one(n, share, confidence) -> None:
    correct = round(share * n)
    low, high = wilson_interval(correct, n, confidence)
    assert 0.0 <= low <= correct / n <= high <= 1.0


@given(n=st.integers(min_value=1, max_value=10_000), correct=st.integers(min_value=0))
def test_a_higher_confidence_never_gives_a_narrower_interval(n, correct) -> None:
    correct = min(correct, n)
    low_90, high_90 = wilson_interval(correct, n, 0.90)
    low_99, high_99 = wilson_interval(correct, n, 0.99)
    assert low_99 <= low_90 + 1e-12 and high_90 <= high_99 + 1e-12


@given(span_hours=st.integers(min_value=1, max_value=24 * 365 * 3))
def test_a_chart_gets_at_most_max_points_buckets_up_to_a_year(span_hours) -> None:
    until = datetime(2026, 6, 1, tzinfo=UTC)
    size = bucket_seconds(until - timedelta(hours=span_hours), until)
    if span_hours <= 24 * 365:
        assert span_hours * 3600 / size <= MAX_POINTS


def test_buckets_without_labels_are_left_out_and_the_period_pools_the_rest() -> None:
    points = metric_points([(2.0, 50, 40), (1.0, 0, 0), (3.0, 150, 120)], 86400, 0.95)
    assert [(p.start.day, p.labeled) for p in points] == [(3, 50), (4, 150)]
    total = period_total(points, 0.95)
    assert (total.labeled, total.correct, total.value) == (200, 160, 0.8)
    assert (total.low, total.high) == wilson_interval(160, 200, 0.95)


def _move(sequence: int, alias: str, from_v, to_v, kind: str, **evidence) -> AliasMove:
    return AliasMove(
        sequence=sequence,
        alias=alias,
        from_version=from_v,
        to_version=to_v,
        kind=kind,
        at=f"2026-03-0{sequence}T10:00:00+00:00",
        actor=f"promote_m/run-{sequence}",
        reason=f"reason {sequence}",
        evidence=evidence,
    )


def test_the_timeline_is_newest_first_with_short_numbers() -> None:
    rows = timeline(
        [
            _move(1, "champion", None, 1, "promote"),
            _move(2, "champion", 1, 2, "promote", delta=0.0123456789, p_value=1.2e-7, rows=5000),
            _move(3, "champion", 2, 1, "rollback"),
        ]
    )
    assert [(r.change, r.kind) for r in rows] == [
        ("v2 → v1", "rollback"),
        ("v1 → v2", "promote"),
        ("none → v1", "promote"),
    ]
    assert rows[1].numbers == "delta=0.01235, p_value=1.2e-07, rows=5000"
    assert rows[0].at == datetime(2026, 3, 3, 10, tzinfo=UTC)


def test_numbers_say_yes_no_and_dash_for_flags_and_missing_values() -> None:
    assert numbers_text({"forced": True, "ci_low": None, "share": 0.25}) == (
        "forced=yes, ci_low=–, share=0.25"
    )


def test_numbers_recorded_as_text_are_shortened_and_other_text_is_kept() -> None:
    assert numbers_text({"auc": "0.770090", "run": "ab.cd", "version": "7"}) == (
        "auc=0.7701, run=ab.cd, version=7"
    )


def test_a_failed_run_names_its_failed_tasks_after_what_it_decided() -> None:
    assert run_outcome("failed", None, [], ["extract", "validate"]) == (
        "failed in extract, validate"
    )
    assert run_outcome("success", None, ["v3 rejected", "why: no better"], []) == (
        "v3 rejected; why: no better"
    )
    assert run_outcome("success", "promoted v2", ["v2 champion"], []) == "promoted v2; v2 champion"
    assert run_outcome("success", None, [], []) == "succeeded"


def test_drift_is_split_per_feature_oldest_first_and_checks_without_drift_are_skipped() -> None:
    def check(hour: int, psi: float | None) -> MonitorCheck:
        drift = {
            "features": {
                "plan": {"psi": psi, "p_value": 0.01, "drifted": psi is not None and psi > 0.2}
            }
        }
        return MonitorCheck(
            model_name="m",
            checked_at=f"2026-03-01T{hour:02d}:00:00+00:00",
            champion_version=1,
            outcome="quiet",
            fired=(),
            reason="",
            signals={} if psi is None else {"drift": drift},
        )

    series = drift_by_feature([check(9, 0.3), check(8, None), check(7, 0.1)])
    assert list(series) == ["plan"]
    assert [(p.at.hour, p.psi, p.drifted) for p in series["plan"]] == [
        (7, 0.1, False),
        (9, 0.3, True),
    ]


ERRORS = st.lists(st.floats(-50, 50, allow_nan=False), min_size=2, max_size=60)


def _sums(errors: list[float]) -> tuple[float, float, float]:
    return (
        sum(abs(e) for e in errors),
        sum(e * e for e in errors),
        sum(e**4 for e in errors),
    )


@given(errors=ERRORS, metric=st.sampled_from(["rmse", "mae"]))
def test_a_regressors_live_error_is_its_rmse_or_mae_inside_a_non_negative_interval(
    errors: list[float], metric: str
) -> None:
    point = error_point(datetime(2026, 6, 1, tzinfo=UTC), len(errors), _sums(errors), metric, 0.95)
    expected = (
        math.sqrt(sum(e * e for e in errors) / len(errors))
        if metric == "rmse"
        else sum(abs(e) for e in errors) / len(errors)
    )
    assert point.value == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert 0.0 <= point.low <= point.value + 1e-9 <= point.high + 2e-9
    assert point.metric == metric and point.labeled == len(errors)


@given(days=st.lists(ERRORS, min_size=1, max_size=5), metric=st.sampled_from(["rmse", "mae"]))
def test_the_period_pools_a_regressors_errors_as_if_they_were_one_bucket(
    days: list[list[float]], metric: str
) -> None:
    buckets = [(i, len(errors), *_sums(errors)) for i, errors in enumerate(days)]
    points = error_points(buckets, 86400, 0.95, metric)
    pooled = [e for errors in days for e in errors]
    whole = error_point(points[0].start, len(pooled), _sums(pooled), metric, 0.95)
    total = period_total(points, 0.95)
    assert (total.labeled, total.metric) == (whole.labeled, metric)
    assert (total.value, total.low, total.high) == pytest.approx(
        (whole.value, whole.low, whole.high), rel=1e-9, abs=1e-9
    )


def test_a_regressor_shows_the_policys_error_metric_else_rmse() -> None:
    assert [live_error_metric(m) for m in ("rmse", "mae", "r2")] == ["rmse", "mae", "rmse"]
