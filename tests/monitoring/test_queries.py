"""The view's SQL aggregates, on SQLite and on PostgreSQL (CI sets PROMOTION_TEST_POSTGRES_URL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.predlog import Label, create_engine, log_tables, record_labels
from monitoring import queries
from registry.validation_records import ValidationRecord, record_validation
from tests.monitoring.support import log_answers

NOW = datetime(2026, 6, 10, 12, tzinfo=UTC)
DAY = 86400


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")


def test_the_champion_metric_is_counted_per_day_from_labeled_champion_rows_only(
    database_url,
) -> None:
    yesterday, today = NOW - timedelta(days=1), NOW - timedelta(hours=1)
    log_answers(
        database_url,
        [
            ("m", "champion", yesterday, 0.9, 1.0, None),
            ("m", "champion", yesterday, 0.8, 0.0, None),
            ("m", "champion", today, 0.2, 0.0, None),
            ("m", "champion", today, 0.7, None, None),  # not labeled yet
            ("m", "canary", today, 0.9, 0.0, None),
            ("m", "champion", today, 0.0, 1.0, "timeout"),
            ("other", "champion", today, 0.9, 1.0, None),
        ],
    )
    log = queries.prediction_log(database_url)
    series = queries.champion_accuracy(
        log, "m", since=NOW - timedelta(days=7), until=NOW, bucket_s=DAY
    )
    assert sorted(series) == [
        (yesterday.timestamp() // DAY, 2, 1),
        (today.timestamp() // DAY, 1, 1),
    ]
    by_model = queries.champion_accuracy_by_model(log, since=NOW - timedelta(days=7), until=NOW)
    assert by_model == {"m": (3, 2), "other": (1, 1)}


def test_validated_windows_are_counted_per_bucket_with_those_that_passed(database_url) -> None:
    for days, passed in ((10, True), (2, True), (2, False), (1, True)):
        at = NOW - timedelta(days=days)
        record_validation(
            database_url,
            ValidationRecord(
                model_name="m",
                validated_at=at.isoformat(),
                window_start="2026-01-01",
                window_end="2026-03-01",
                rows=10,
                passed=passed,
                failed_checks=() if passed else ("rows: 10 < 500",),
            ),
        )
    since = NOW - timedelta(days=7)
    buckets = queries.validation_buckets(database_url, "m", since=since, until=NOW, bucket_s=DAY)
    assert sorted((count, ok) for _, count, ok in buckets) == [(1, 1), (2, 1)]
    assert queries.validation_totals_by_model(database_url, since=since, until=NOW) == {"m": (3, 2)}


def test_a_prediction_log_no_gateway_has_created_yet_is_told_apart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'never-written.db'}"
    assert not queries.has_log(queries.prediction_log(url))
    log_answers(url, [("m", "champion", NOW, 0.9, 1.0, None)])
    assert queries.has_log(queries.prediction_log(url))


def test_a_multiclass_answer_counts_as_correct_when_its_class_is_the_labeled_one(
    database_url,
) -> None:
    engine, tables = create_engine(database_url), log_tables()
    tables.metadata.create_all(engine)
    answers = [("setosa", "setosa"), ("virginica", "setosa"), ("versicolor", "versicolor")]
    with engine.begin() as connection:
        connection.execute(
            tables.predictions.insert(),
            [
                {
                    "request_id": f"m{i}",
                    "row_index": 0,
                    "model_name": "iris",
                    "version": 1,
                    "role": "champion",
                    "routing_key": None,
                    "features": {},
                    "prediction": 0.8,
                    "predicted_class": predicted,
                    "error": None,
                    "latency_ms": 1.0,
                    "created_at": NOW - timedelta(hours=1),
                }
                for i, (predicted, _) in enumerate(answers)
            ],
        )
    record_labels(
        engine, tables, "iris", [Label(f"m{i}", truth) for i, (_, truth) in enumerate(answers)]
    )
    engine.dispose()
    log = queries.prediction_log(database_url)
    counts = queries.champion_accuracy_by_model(log, since=NOW - timedelta(days=1), until=NOW)
    assert counts == {"iris": (3, 2)}


def test_a_regressors_live_error_is_summed_per_day_from_labeled_champion_rows_only(
    database_url,
) -> None:
    yesterday, today = NOW - timedelta(days=1), NOW - timedelta(hours=1)
    log_answers(
        database_url,
        [
            ("r", "champion", yesterday, 3.0, 1.0, None),  # error 2
            ("r", "champion", yesterday, 0.5, 1.5, None),  # error -1
            ("r", "champion", today, 10.0, 13.0, None),  # error -3
            ("r", "champion", today, 7.0, None, None),  # not labeled yet
            ("r", "canary", today, 9.0, 0.0, None),
            ("r", "champion", today, 0.0, 1.0, "timeout"),
        ],
    )
    log = queries.prediction_log(database_url)
    series = queries.champion_errors(
        log, "r", since=NOW - timedelta(days=7), until=NOW, bucket_s=DAY
    )
    assert sorted(series) == [
        (yesterday.timestamp() // DAY, 2, 3.0, 5.0, 17.0),
        (today.timestamp() // DAY, 1, 3.0, 9.0, 81.0),
    ]
    by_model = queries.champion_errors_by_model(log, since=NOW - timedelta(days=7), until=NOW)
    assert by_model == {"r": (3, 6.0, 14.0, 98.0)}
