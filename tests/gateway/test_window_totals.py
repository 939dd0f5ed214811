"""The prediction log's SQL totals per window, arm and pair: hand-computed values on SQLite and
PostgreSQL, and the same numbers as a row-by-row Python computation on random logs."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.predlog import (
    CHAMPION_PAIRED,
    create_engine,
    ensure_tables,
    log_tables,
    window_totals,
)
from promotion.rollout import row_outcomes

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
TABLES = log_tables()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """The log's database on SQLite and on PostgreSQL (CI sets PROMOTION_TEST_POSTGRES_URL)."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    else:
        engine = create_engine(request.getfixturevalue("postgres_url"))
    ensure_tables(engine, TABLES)
    yield engine
    engine.dispose()


def logged(
    request_id: str,
    role: str,
    version: int,
    *,
    prediction: float | None = 0.9,
    predicted_class: str | None = None,
    latency_ms: float = 5.0,
    at: datetime = T0,
    row_index: int = 0,
    error: str | None = None,
) -> dict:
    return {
        "request_id": request_id,
        "row_index": row_index,
        "model_name": "churn",
        "version": version,
        "role": role,
        "features": {},
        "prediction": None if error else prediction,
        "predicted_class": predicted_class,
        "error": error,
        "latency_ms": latency_ms,
        "created_at": at,
    }


def label(request_id: str, value: float | str, row_index: int = 0, model: str = "churn") -> dict:
    number, name = (None, value) if isinstance(value, str) else (float(value), None)
    return {
        "model_name": model,
        "request_id": request_id,
        "row_index": row_index,
        "label": number,
        "label_class": name,
        "labeled_at": T0,
    }


def write(engine: sa.Engine, rows: list[dict], labels: list[dict] = ()) -> None:
    with engine.begin() as connection:
        connection.execute(TABLES.predictions.insert(), rows)
        if labels:
            connection.execute(TABLES.labels.insert(), list(labels))


WHOLE = [(T0, T0 + timedelta(hours=1))]


def test_binary_arms_count_requests_errors_labels_and_right_classes(any_engine: sa.Engine) -> None:
    write(
        any_engine,
        [
            logged("a", "champion", 1, prediction=0.9, latency_ms=1.0),
            logged("a", "champion", 1, prediction=0.2, latency_ms=1.0, row_index=1),
            logged("b", "champion", 1, prediction=0.6, latency_ms=3.0),
            logged("c", "champion", 1, error="boom", latency_ms=0.0),
            logged("d", "canary", 2, prediction=0.4, latency_ms=7.0),
        ],
        [label("a", 1), label("a", 1, row_index=1), label("b", 0), label("d", 0), label("x", 1)],
    )
    (window,) = window_totals(any_engine, TABLES, "churn", WHOLE)
    champion = window.arm("champion", 1)
    assert (champion.requests, champion.errors, champion.labeled, champion.correct) == (3, 1, 3, 1)
    assert (champion.outcome_sum, champion.outcome_sq_sum) == (1.0, 1.0)
    # Answered rows' latencies 1, 1, 3: numpy's p99 interpolates between 1 and 3 at 0.98.
    assert champion.p99_latency_ms == pytest.approx(float(np.percentile([1.0, 1.0, 3.0], 99)))
    canary = window.arm("canary", 2)
    assert (canary.requests, canary.labeled, canary.correct, canary.p99_latency_ms) == (
        1,
        1,
        1,
        7.0,
    )
    assert window.arm("canary", 9) is None


def test_multiclass_rows_are_right_when_the_class_is_the_label(any_engine: sa.Engine) -> None:
    write(
        any_engine,
        [
            logged("a", "champion", 1, predicted_class="cow"),
            logged("b", "champion", 1, predicted_class="cat"),
            logged("c", "champion", 1, predicted_class="3"),
            logged("a", "shadow", 2, predicted_class="dog"),
            logged("b", "shadow", 2, predicted_class="cat"),
            logged("c", "shadow", 2, predicted_class="3"),
        ],
        # A class loaded in bulk as a number reads as that class ("3").
        [label("a", "cow"), label("b", "dog"), label("c", 3.0)],
    )
    (window,) = window_totals(any_engine, TABLES, "churn", WHOLE, task="multiclass")
    champion = window.arm("champion", 1)
    assert (champion.labeled, champion.correct, champion.outcome_sum) == (3, 2, 2.0)
    pair = window.pair(("champion", 1), ("shadow", 2))
    assert (pair.compared, pair.agreed, pair.labeled) == (3, 2, 3)
    assert (pair.answered_correct, pair.paired_correct, pair.both_correct) == (2, 1, 1)
    assert (pair.difference_sum, pair.difference_sq_sum) == (1.0, 1.0)


def test_regression_adds_squared_errors_and_their_paired_differences(
    any_engine: sa.Engine,
) -> None:
    write(
        any_engine,
        [
            logged("a", "canary", 2, prediction=3.0),
            logged("b", "canary", 2, prediction=1.0),
            logged("a", CHAMPION_PAIRED, 1, prediction=5.0),
            logged("b", CHAMPION_PAIRED, 1, prediction=1.5),
        ],
        [label("a", 2.0), label("b", 1.0)],
    )
    (window,) = window_totals(any_engine, TABLES, "churn", WHOLE, task="regression")
    canary = window.arm("canary", 2)
    assert (canary.labeled, canary.correct, canary.outcome_sum, canary.outcome_sq_sum) == (
        2,
        0,
        1.0,
        1.0,
    )
    pair = window.pair(("canary", 2), (CHAMPION_PAIRED, 1))
    assert (pair.labeled, pair.answered_outcome_sum, pair.paired_outcome_sum) == (2, 1.0, 9.25)
    # Canary minus champion squared errors: (1 - 9) + (0 - 0.25).
    assert pair.difference_sum == -8.25
    assert pair.difference_sq_sum == pytest.approx(64 + 0.0625)


def test_each_row_counts_in_the_window_it_arrived_in(any_engine: sa.Engine) -> None:
    write(
        any_engine,
        [
            logged("early", "canary", 2, at=T0 - timedelta(seconds=1)),
            logged("a", "canary", 2, at=T0),
            logged("b", "canary", 2, at=T0 + timedelta(minutes=5)),
            logged("c", "canary", 2, at=T0 + timedelta(minutes=7)),
            logged("late", "canary", 2, at=T0 + timedelta(minutes=10)),
        ],
    )
    steps = [
        (T0, T0 + timedelta(minutes=5)),
        (T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)),
    ]
    first, second = window_totals(any_engine, TABLES, "churn", steps)
    assert first.arm("canary", 2).requests == 1
    assert second.arm("canary", 2).requests == 2
    assert (first.since, second.until) == (steps[0][0], steps[1][1])


def test_a_window_without_traffic_has_no_arms(any_engine: sa.Engine) -> None:
    write(any_engine, [logged("a", "champion", 1)])
    (window,) = window_totals(
        any_engine, TABLES, "churn", [(T0 + timedelta(days=1), T0 + timedelta(days=2))]
    )
    assert window.arms == () and window.pairs == ()


def test_overlapping_windows_are_refused_naming_the_window(any_engine: sa.Engine) -> None:
    steps = [(T0, T0 + timedelta(minutes=5)), (T0 + timedelta(minutes=4), T0 + timedelta(hours=1))]
    with pytest.raises(ValueError, match="window 1: starts at .* before window 0 ends"):
        window_totals(any_engine, TABLES, "churn", steps)


def test_an_existing_database_gets_the_indexes_the_totals_read_by(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    ensure_tables(engine, TABLES)
    with engine.begin() as connection:
        for index in sa.inspect(connection).get_indexes("prediction_log"):
            connection.exec_driver_sql(f'DROP INDEX "{index["name"]}"')
    ensure_tables(engine, TABLES)
    names = {index["name"] for index in sa.inspect(engine).get_indexes("prediction_log")}
    assert {index.name for index in TABLES.predictions.indexes} <= names


# The SQL totals against a row-by-row computation with `row_outcomes`.

TASK_ANSWERS = {
    "binary": st.floats(0, 1),
    "regression": st.floats(-100, 100),
    "multiclass": st.sampled_from(["cat", "dog", "cow"]),
}
TASK_LABELS = {
    "binary": st.sampled_from([0.0, 1.0]),
    "regression": st.floats(-100, 100),
    "multiclass": st.sampled_from(["cat", "dog", "cow"]),
}


@st.composite
def random_log(draw: st.DrawFn, task: str) -> tuple[list[dict], list[dict]]:
    """Requests of one to three rows answered by the champion or the canary (or failed), some
    scored again by the shadow or the champion off the request path, some rows labeled."""
    rows, labels = [], []
    for i in range(draw(st.integers(0, 25))):
        role, version = draw(st.sampled_from([("champion", 1), ("canary", 2)]))
        at = T0 + timedelta(seconds=draw(st.integers(0, 599)))
        latency = draw(st.floats(0.1, 50))
        request_id = f"r{i}"
        if draw(st.integers(0, 9)) == 0:
            rows.append(logged(request_id, role, version, error="boom", at=at, latency_ms=0.0))
            continue
        # The champion scores a copy of the canary's requests only.
        copies = [None, ("shadow", 3)] + ([(CHAMPION_PAIRED, 1)] if role == "canary" else [])
        paired = draw(st.sampled_from(copies))
        if paired is not None and draw(st.integers(0, 9)) == 0:
            # A copy that failed off the request path is one row with the error, as the gateway
            # logs it.
            rows.append(logged(request_id, *paired, error="boom", at=at, latency_ms=0.0))
            paired = None
        for index in range(draw(st.integers(1, 3))):
            for answering in [(role, version), paired]:
                if answering is None:
                    continue
                answer = draw(TASK_ANSWERS[task])
                rows.append(
                    logged(
                        request_id,
                        *answering,
                        prediction=0.5 if task == "multiclass" else answer,
                        predicted_class=answer if task == "multiclass" else None,
                        at=at,
                        latency_ms=latency,
                        row_index=index,
                    )
                )
            if draw(st.booleans()):
                labels.append(label(request_id, draw(TASK_LABELS[task]), row_index=index))
    return rows, labels


def expected_totals(rows: list[dict], labels: list[dict], task: str, window) -> tuple[dict, dict]:
    """Arms and pairs of one window, computed row by row."""
    truth = {
        (lab["request_id"], lab["row_index"]): lab["label_class"] or lab["label"] for lab in labels
    }
    inside = [r for r in rows if window[0] <= r["created_at"] < window[1]]
    answer = "predicted_class" if task == "multiclass" else "prediction"
    arms: dict = {}
    for row in inside:
        arms.setdefault((row["role"], row["version"]), []).append(row)
    expected_arms = {}
    for key, arm in arms.items():
        scored = [r for r in arm if r["error"] is None]
        known = [r for r in scored if (r["request_id"], r["row_index"]) in truth]
        outcomes = row_outcomes(
            task,
            [r[answer] for r in known],
            [truth[r["request_id"], r["row_index"]] for r in known],
        )
        latencies = [r["latency_ms"] for r in scored]
        expected_arms[key] = (
            len({r["request_id"] for r in arm}),
            len({r["request_id"] for r in arm if r["error"] is not None}),
            len(known),
            float(outcomes.sum()),
            float((outcomes**2).sum()),
            float(np.percentile(latencies, 99)) if latencies else None,
        )
    answered = {
        (r["request_id"], r["row_index"]): r
        for r in inside
        if r["role"] in ("champion", "canary") and r["error"] is None
    }
    pairs: dict = {}
    for row in inside:
        key = (row["request_id"], row["row_index"])
        if row["role"] in ("shadow", CHAMPION_PAIRED) and row["error"] is None and key in answered:
            mine = answered[key]
            group = ((mine["role"], mine["version"]), (row["role"], row["version"]))
            pairs.setdefault(group, []).append((mine[answer], row[answer], truth.get(key)))
    expected_pairs = {}
    for group, matched in pairs.items():
        known = [(a, p, t) for a, p, t in matched if t is not None]
        labels_ = [t for _, _, t in known]
        a_out = row_outcomes(task, [a for a, _, _ in known], labels_)
        p_out = row_outcomes(task, [p for _, p, _ in known], labels_)
        agreed = (
            0
            if task == "regression"
            else row_outcomes(task, [p for _, p, _ in matched], [a for a, _, _ in matched]).sum()
        )
        expected_pairs[group] = (
            len(matched),
            int(agreed),
            len(known),
            float(a_out.sum()),
            float(p_out.sum()),
            float((a_out * p_out).sum()),
            float((a_out - p_out).sum()),
            float(((a_out - p_out) ** 2).sum()),
        )
    return expected_arms, expected_pairs


def close(found: tuple, expected: tuple) -> bool:
    return all(
        (f is None and e is None)
        or (f is not None and e is not None and math.isclose(f, e, rel_tol=1e-9, abs_tol=1e-6))
        for f, e in zip(found, expected, strict=True)
    )


@pytest.fixture(scope="module")
def property_engine() -> Iterator[sa.Engine]:
    engine = create_engine("sqlite://")
    ensure_tables(engine, TABLES)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_sql_totals_equal_the_row_by_row_computation(
    property_engine: sa.Engine, task: str, data: st.DataObject
) -> None:
    rows, labels = data.draw(random_log(task))
    with property_engine.begin() as connection:
        connection.execute(TABLES.predictions.delete())
        connection.execute(TABLES.labels.delete())
    if rows:
        write(property_engine, rows, labels)
    steps = [
        (T0, T0 + timedelta(minutes=4)),
        (T0 + timedelta(minutes=4), T0 + timedelta(minutes=10)),
    ]
    for window, totals in zip(
        steps, window_totals(property_engine, TABLES, "churn", steps, task=task), strict=True
    ):
        expected_arms, expected_pairs = expected_totals(rows, labels, task, window)
        found_arms = {
            (a.role, a.version): (
                a.requests,
                a.errors,
                a.labeled,
                a.outcome_sum,
                a.outcome_sq_sum,
                a.p99_latency_ms,
            )
            for a in totals.arms
        }
        assert found_arms.keys() == expected_arms.keys()
        for key, found in found_arms.items():
            assert close(found, expected_arms[key]), (key, found, expected_arms[key])
        found_pairs = {
            ((p.answered_role, p.answered_version), (p.paired_role, p.paired_version)): (
                p.compared,
                p.agreed,
                p.labeled,
                p.answered_outcome_sum,
                p.paired_outcome_sum,
                p.both_correct if task != "regression" else 0.0,
                p.difference_sum,
                p.difference_sq_sum,
            )
            for p in totals.pairs
        }
        for key, values in expected_pairs.items():
            if task == "regression":
                expected_pairs[key] = (*values[:5], 0.0, *values[6:])
        assert found_pairs.keys() == expected_pairs.keys()
        for key, found in found_pairs.items():
            assert close(found, expected_pairs[key]), (key, found, expected_pairs[key])


def test_only_the_pairs_asked_for_are_added_up(any_engine: sa.Engine) -> None:
    write(
        any_engine,
        [
            logged("a", "canary", 2),
            logged("a", CHAMPION_PAIRED, 1),
            logged("a", "shadow", 3),
        ],
    )
    (canary_only,) = window_totals(
        any_engine, TABLES, "churn", WHOLE, pairs=[("canary", CHAMPION_PAIRED)]
    )
    assert [(p.answered_role, p.paired_role) for p in canary_only.pairs] == [
        ("canary", CHAMPION_PAIRED)
    ]
    (none,) = window_totals(any_engine, TABLES, "churn", WHOLE, pairs=())
    assert none.pairs == () and len(none.arms) == 3
