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

from gateway import predlog
from gateway.predlog import (
    CHAMPION_PAIRED,
    LATENCY_BUCKET_RATIO,
    LATENCY_FLOOR_MS,
    create_engine,
    ensure_tables,
    latency_bucket,
    log_tables,
    p99_from_buckets,
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
        if rows:
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


def compare(totals, rows: list[dict], labels: list[dict], task: str) -> None:
    """Each window's arms and pairs are those of the row-by-row computation."""
    expected_arms, expected_pairs = expected_totals(
        rows, labels, task, (totals.since, totals.until)
    )
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


@st.composite
def windows_of(draw: st.DrawFn) -> list[tuple[datetime, datetime]]:
    """One to three windows in order, each bound anywhere (on a minute or between), some
    touching, some with a gap between them."""
    bounds = draw(st.lists(st.integers(-30, 660), min_size=2, max_size=6, unique=True).map(sorted))
    at = [
        T0 + timedelta(seconds=b, microseconds=draw(st.sampled_from([0, 500_000]))) for b in bounds
    ]
    at.sort()
    if draw(st.booleans()):
        return list(zip(at, at[1:], strict=False))[::2]
    return list(zip(at, at[1:], strict=False))


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_sql_totals_equal_the_row_by_row_computation_after_any_writes(
    property_engine: sa.Engine, task: str, data: st.DataObject
) -> None:
    """Checked once, then rows and labels arrive, some rows and labels are deleted and some
    labels corrected (as a bulk job would, in plain SQL): the next check's totals are those
    of the rows as they are now, whatever the windows' bounds."""
    rows, labels = data.draw(random_log(task))
    with property_engine.begin() as connection:
        connection.execute(TABLES.predictions.delete())
        connection.execute(TABLES.labels.delete())
    early_rows = data.draw(st.integers(0, len(rows)))
    early_labels = data.draw(st.integers(0, len(labels)))
    write(property_engine, rows[:early_rows], labels[:early_labels])
    steps = data.draw(windows_of())
    for totals in window_totals(property_engine, TABLES, "churn", steps, task=task):
        compare(totals, rows[:early_rows], labels[:early_labels], task)
    write(property_engine, rows[early_rows:], labels[early_labels:])
    ids = sorted({row["request_id"] for row in rows})
    gone = set(data.draw(st.lists(st.sampled_from(ids), max_size=3))) if ids else set()
    unlabeled = data.draw(st.lists(st.sampled_from(labels), max_size=2)) if labels else []
    relabeled = {
        (lab["request_id"], lab["row_index"]): data.draw(TASK_LABELS[task])
        for lab in (data.draw(st.lists(st.sampled_from(labels), max_size=3)) if labels else [])
    }
    log_table, label_table = TABLES.predictions, TABLES.labels
    with property_engine.begin() as connection:
        if gone:
            connection.execute(log_table.delete().where(log_table.c.request_id.in_(gone)))
        for (request_id, row_index), value in relabeled.items():
            fields = label(request_id, value, row_index)
            connection.execute(
                label_table.update()
                .where(label_table.c.request_id == request_id, label_table.c.row_index == row_index)
                .values(label=fields["label"], label_class=fields["label_class"])
            )
        for lab in unlabeled:
            connection.execute(
                label_table.delete().where(
                    label_table.c.request_id == lab["request_id"],
                    label_table.c.row_index == lab["row_index"],
                )
            )
    rows = [row for row in rows if row["request_id"] not in gone]
    dropped = {(lab["request_id"], lab["row_index"]) for lab in unlabeled}
    labels = [
        label(lab["request_id"], relabeled[key], lab["row_index"]) if key in relabeled else lab
        for lab in labels
        if (key := (lab["request_id"], lab["row_index"])) not in dropped
    ]
    steps = data.draw(windows_of())
    for totals in window_totals(property_engine, TABLES, "churn", steps, task=task):
        compare(totals, rows, labels, task)


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


def test_on_sqlite_each_copy_is_found_by_its_requests_key_not_by_scanning_the_window(
    tmp_path: Path,
) -> None:
    # Found by time, every copy of the window was read again for each answered row: a check over
    # a few minutes of traffic took a minute.
    engine = create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    ensure_tables(engine, TABLES)
    rows = []
    for i in range(300):
        at = T0 + timedelta(seconds=i)
        rows += [logged(f"r{i}", "canary", 2, at=at), logged(f"r{i}", CHAMPION_PAIRED, 1, at=at)]
    write(engine, rows)
    statements: list[tuple[str, tuple]] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def remember(connection, cursor, statement, parameters, context, executemany) -> None:
        if "paired" in statement and not executemany:
            statements.append((statement, parameters))

    # Whole minutes come from the per-minute totals, the edges from the rows: both read pairs.
    window = (T0 + timedelta(seconds=30), T0 + timedelta(seconds=270))
    (totals,) = window_totals(
        engine, TABLES, "churn", [window], pairs=[("canary", CHAMPION_PAIRED)]
    )
    assert [pair.compared for pair in totals.pairs] == [240]
    sa.event.remove(engine, "before_cursor_execute", remember)
    plans = []
    with engine.connect() as connection:
        for statement, parameters in statements:
            found = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            plans += [detail for *_, detail in found if " paired " in f"{detail} "]
    engine.dispose()
    assert len(plans) >= 2  # the edges' rows and the refreshed minutes
    assert all("(model_name=? AND request_id=? AND row_index=?" in plan for plan in plans), plans


# Per-minute totals: the p99 from latency buckets, a database without the triggers, a writer
# committing during a refresh.


@settings(max_examples=200, deadline=None)
@given(
    latencies=st.lists(
        st.floats(LATENCY_FLOOR_MS, 60_000, allow_nan=False), min_size=1, max_size=400
    )
)
def test_the_p99_from_buckets_is_within_one_percent_of_the_exact_p99(latencies: list) -> None:
    counts: dict[int, int] = {}
    for latency in latencies:
        counts[latency_bucket(latency)] = counts.get(latency_bucket(latency), 0) + 1
    exact = float(np.percentile(latencies, 99))
    found = p99_from_buckets(counts)
    width = math.sqrt(LATENCY_BUCKET_RATIO) * (1 + 1e-9)
    assert exact / width <= found <= exact * width


def test_no_latency_has_no_p99() -> None:
    assert p99_from_buckets({}) is None and p99_from_buckets({3: 0}) is None


def test_a_busy_arm_reads_its_p99_from_the_minute_buckets_within_one_percent(
    any_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(predlog, "EXACT_P99_ROWS", 10)
    rng = np.random.default_rng(7)
    latencies = rng.lognormal(1.5, 0.6, 600)
    rows = [
        logged(f"r{i}", "champion", 1, latency_ms=float(latency), at=T0 + timedelta(seconds=20 * i))
        for i, latency in enumerate(latencies)
    ]
    write(any_engine, rows)
    # 12:00:50 to 15:10:50: the hours 13 and 14 from the hourly buckets, the minutes of 12:01 to
    # 12:59 and 15:00 to 15:09 from the minutes' buckets, the seconds around them from the rows.
    window = (T0 + timedelta(seconds=50), T0 + timedelta(hours=3, seconds=650))
    (totals,) = window_totals(any_engine, TABLES, "churn", [window])
    inside = latencies[3:573]
    assert totals.arm("champion", 1).p99_latency_ms == pytest.approx(
        float(np.percentile(inside, 99)), rel=0.01
    )


def test_a_log_written_without_the_triggers_is_added_up_in_full_at_the_next_check(
    tmp_path: Path,
) -> None:
    """As a gateway of an older release, or another tool, leaves a log: rows and labels with no
    per-minute totals of them."""
    engine = create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    ensure_tables(engine, TABLES)
    with engine.begin() as connection:
        for (name,) in connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        ).all():
            connection.exec_driver_sql(f'DROP TRIGGER "{name}"')
    write(engine, [logged("a", "champion", 1), logged("b", "champion", 1)], [label("a", 1)])
    (found,) = window_totals(engine, TABLES, "churn", WHOLE)
    champion = found.arm("champion", 1)
    assert (champion.requests, champion.labeled, champion.correct) == (2, 1, 1)
    # The triggers are back: what is written now counts too.
    write(engine, [logged("c", "champion", 1)], [label("b", 0)])
    (later,) = window_totals(engine, TABLES, "churn", WHOLE)
    assert (later.arm("champion", 1).requests, later.arm("champion", 1).labeled) == (3, 2)
    engine.dispose()


def test_rows_committed_while_a_minute_is_added_up_count_at_the_next_check(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(postgres_url)
    ensure_tables(engine, TABLES)
    write(engine, [logged("a", "champion", 1)])
    add_up = predlog._add_up_minutes

    def writer_commits_meanwhile(connection, tables, model_name, minutes) -> None:
        add_up(connection, tables, model_name, minutes)
        # Another writer commits a row of the same minute before the refresh ends.
        write(engine, [logged("b", "champion", 1, at=T0 + timedelta(seconds=5))])

    monkeypatch.setattr(predlog, "_add_up_minutes", writer_commits_meanwhile)
    (first,) = window_totals(engine, TABLES, "churn", WHOLE)
    monkeypatch.setattr(predlog, "_add_up_minutes", add_up)
    assert first.arm("champion", 1).requests == 1
    (second,) = window_totals(engine, TABLES, "churn", WHOLE)
    assert second.arm("champion", 1).requests == 2
    engine.dispose()


def test_truncated_labels_leave_the_rows_and_no_labels(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    ensure_tables(engine, TABLES)
    write(engine, [logged("a", "champion", 1)], [label("a", 1)])
    assert window_totals(engine, TABLES, "churn", WHOLE)[0].arm("champion", 1).labeled == 1
    with engine.begin() as connection:
        connection.exec_driver_sql("TRUNCATE prediction_labels")
    (after,) = window_totals(engine, TABLES, "churn", WHOLE)
    assert (after.arm("champion", 1).requests, after.arm("champion", 1).labeled) == (1, 0)
    with engine.begin() as connection:
        connection.exec_driver_sql("TRUNCATE prediction_log")
    assert window_totals(engine, TABLES, "churn", WHOLE)[0].arms == ()
    engine.dispose()
