from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.batching import (
    Copies,
    LogEntry,
    flush_due,
    log_rows,
    overflow,
    retry_delay,
    take_batch,
)


def _entry(rows: int) -> LogEntry:
    return LogEntry(
        request_id="r",
        model_name="m",
        version=1,
        role="champion",
        routing_key=None,
        features={"x": [float("nan")] * rows, "plan": ["a"] * rows},
        scores=[0.5] * rows,
        latency_ms=1.0,
        at=datetime(2026, 1, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("pending", "age", "closing", "due"),
    [
        (0, None, True, False),
        (10, 0.1, False, False),
        (10, 1.0, False, True),
        (500, 0.0, False, True),
        (1, 0.0, True, True),
    ],
)
def test_flush_when_full_old_or_closing(pending, age, closing, due) -> None:
    assert flush_due(pending, age, batch_size=500, flush_interval_s=1.0, closing=closing) is due


def test_a_batch_takes_whole_entries_up_to_the_batch_size() -> None:
    assert take_batch([_entry(2), _entry(2), _entry(2)], batch_size=3) == 2
    assert take_batch([_entry(10)], batch_size=3) == 1
    assert take_batch([_entry(1)], batch_size=3) == 1


def test_overflow_drops_the_oldest_entries_first() -> None:
    assert overflow([5, 5, 5], max_pending_rows=10) == 1
    assert overflow([5, 5], max_pending_rows=10) == 0


def test_retry_waits_double_each_time_up_to_a_cap() -> None:
    assert [retry_delay(n, 1.0, cap_s=5) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]


def test_each_scored_row_becomes_one_row_with_missing_values_as_null() -> None:
    rows = log_rows(_entry(2))
    assert [row["row_index"] for row in rows] == [0, 1]
    assert rows[0]["features"] == {"x": None, "plan": "a"}


def test_logged_features_are_each_rows_values_with_missing_numbers_as_null() -> None:
    entry = LogEntry(
        request_id="r",
        model_name="m",
        version=1,
        role="champion",
        routing_key=None,
        features={"x": [float("nan"), 3.0], "n": [2, 3], "plan": [None, "b"]},
        scores=[0.1, 0.2],
        latency_ms=1.0,
        at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    rows = log_rows(entry)
    assert [row["features"] for row in rows] == [
        {"x": None, "n": 2, "plan": None},
        {"x": 3.0, "n": 3, "plan": "b"},
    ]
    assert [row["row_index"] for row in rows] == [0, 1]
    assert all(type(row["features"]["n"]) is int for row in rows)


AT = datetime(2026, 1, 1, tzinfo=UTC)


@given(
    row_counts=st.lists(st.integers(1, 5), min_size=1, max_size=12),
    multiclass=st.booleans(),
)
def test_copies_are_logged_as_the_rows_of_one_copy_per_request(
    row_counts: list[int], multiclass: bool
) -> None:
    total = sum(row_counts)
    scores = [i / total for i in range(total)]
    classes = [f"c{i % 3}" for i in range(total)] if multiclass else None
    probabilities = [{"c0": score} for score in scores] if multiclass else None
    requests = [f"r{i}" for i in range(len(row_counts))]
    keys = [None if i % 2 else f"user-{i}" for i in range(len(row_counts))]
    copies = Copies(
        model_name="m",
        version=3,
        role="shadow",
        request_ids=requests,
        routing_keys=keys,
        ats=[AT] * len(row_counts),
        row_counts=row_counts,
        scores=scores,
        latency_ms=2.0,
        classes=classes,
        probabilities=probabilities,
    )
    one_by_one, start = [], 0
    for request_id, key, count in zip(requests, keys, row_counts, strict=True):
        end = start + count
        entry = LogEntry(
            request_id=request_id,
            model_name="m",
            version=3,
            role="shadow",
            routing_key=key,
            features=None,
            scores=scores[start:end],
            latency_ms=2.0,
            at=AT,
            classes=None if classes is None else classes[start:end],
            probabilities=None if probabilities is None else probabilities[start:end],
        )
        one_by_one += log_rows(entry)
        start = end
    assert log_rows(copies) == one_by_one
    assert copies.n_rows == total


def test_failed_copies_are_one_error_row_per_request_without_a_prediction() -> None:
    copies = Copies(
        model_name="m",
        version=3,
        role="champion_paired",
        request_ids=["a", "b"],
        routing_keys=[None, None],
        ats=[AT, AT],
        row_counts=[2, 1],
        scores=None,
        latency_ms=0.0,
        error="RuntimeError: the model call failed",
    )
    rows = log_rows(copies)
    assert [(row["request_id"], row["row_index"]) for row in rows] == [("a", 0), ("b", 0)]
    assert {row["error"] for row in rows} == {"RuntimeError: the model call failed"}
    assert {row["prediction"] for row in rows} == {None}
    assert copies.n_rows == 2


def test_copies_whose_scores_do_not_match_their_rows_are_refused_when_made() -> None:
    with pytest.raises(ValueError, match="3 scores for 2 rows"):
        Copies(
            model_name="m",
            version=3,
            role="shadow",
            request_ids=["a", "b"],
            routing_keys=[None, None],
            ats=[AT, AT],
            row_counts=[1, 1],
            scores=[0.1, 0.2, 0.3],
            latency_ms=1.0,
        )
