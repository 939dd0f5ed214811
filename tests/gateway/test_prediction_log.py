from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.batching import LogEntry
from gateway.predlog import (
    Label,
    LabelConflict,
    PredictionLogWriter,
    answered_rows,
    arm_windows,
    create_engine,
    ensure_tables,
    log_tables,
    record_labels,
    window_totals,
    write_entries,
)
from tests.gateway.fakes import wait_until


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    return create_engine(f"sqlite:///{tmp_path / 'log.db'}")


def _entry(request_id: str, role: str = "champion", version: int = 1, score: float = 0.8):
    return LogEntry(
        request_id=request_id,
        model_name="churn",
        version=version,
        role=role,
        routing_key=None,
        features={"x": [1.0]},
        scores=[score],
        latency_ms=0.5,
        at=datetime.now(UTC),
    )


def _writer(engine: sa.Engine, **overrides) -> PredictionLogWriter:
    settings = {"batch_size": 1000, "flush_interval_s": 60.0, "max_pending_rows": 10_000}
    return PredictionLogWriter(engine, log_tables(), **(settings | overrides))


def _shadow_pairs(engine: sa.Engine, task: str = "binary"):
    """The pairs of the shadow with the answered rows over the whole log, read by the SQL totals."""
    ever = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    (window,) = window_totals(engine, log_tables(), "churn", [ever], task=task)
    return window.pairs


def _count(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text("SELECT count(*) FROM prediction_log")).scalar_one()


# The writer builds and inserts rows in a thread of the gateway or in a child process of it.
BOTH_WRITERS = pytest.mark.parametrize("in_process", [True, False], ids=["thread", "process"])


def test_a_reader_in_the_middle_of_a_read_does_not_hold_up_the_writer(engine: sa.Engine) -> None:
    # A rollout check or the monitoring view reading the log while the gateway writes to it.
    ensure_tables(engine, log_tables())
    write_entries(engine, log_tables().predictions, [_entry("before")], {})
    with create_engine(str(engine.url)).connect() as reader:
        reader.exec_driver_sql("BEGIN")
        assert reader.exec_driver_sql("SELECT count(*) FROM prediction_log").scalar_one() == 1
        started = time.monotonic()
        write_entries(engine, log_tables().predictions, [_entry("during")], {})
        assert time.monotonic() - started < 5  # it would wait the busy timeout (30 s) and fail
        # The reader goes on reading the log as it was when its read began.
        assert reader.exec_driver_sql("SELECT count(*) FROM prediction_log").scalar_one() == 1
    assert _count(engine) == 2


@BOTH_WRITERS
def test_close_writes_rows_still_waiting_for_their_batch(
    engine: sa.Engine, in_process: bool
) -> None:
    writer = _writer(engine, in_process=in_process)
    writer.start()
    for i in range(25):
        writer.submit(_entry(f"r{i}"))
    assert _count(engine) == 0
    writer.close()
    assert _count(engine) == 25


@BOTH_WRITERS
def test_a_full_batch_is_written_without_waiting_for_the_interval(
    engine: sa.Engine, in_process: bool
) -> None:
    writer = _writer(engine, batch_size=10, in_process=in_process)
    writer.start()
    for i in range(10):
        writer.submit(_entry(f"r{i}"))
    wait_until(lambda: _count(engine) == 10)
    writer.close()


@BOTH_WRITERS
def test_rows_survive_a_database_outage_and_are_written_once(
    tmp_path: Path, in_process: bool
) -> None:
    missing_dir = tmp_path / "later"
    engine = create_engine(f"sqlite:///{missing_dir / 'log.db'}")
    writer = _writer(engine, batch_size=1, flush_interval_s=0.05, in_process=in_process)
    missing_dir.mkdir()
    writer.start()  # creates the tables, then the directory goes away
    engine.dispose()  # the last connection closed writes the write-ahead file back
    (missing_dir / "log.db").rename(tmp_path / "aside.db")
    missing_dir.rmdir()
    for i in range(3):
        writer.submit(_entry(f"r{i}"))
    wait_until(lambda: writer.failed_writes > 0)
    missing_dir.mkdir()
    (tmp_path / "aside.db").rename(missing_dir / "log.db")
    writer.close()
    with engine.connect() as connection:
        ids = connection.execute(sa.text("SELECT request_id FROM prediction_log")).scalars().all()
    assert sorted(ids) == ["r0", "r1", "r2"]


def test_a_killed_writer_process_is_replaced_and_no_row_is_lost_or_doubled(
    engine: sa.Engine,
) -> None:
    writer = _writer(engine, batch_size=5, flush_interval_s=0.05, in_process=False)
    writer.start()
    for i in range(10):
        writer.submit(_entry(f"r{i}"))
    wait_until(lambda: _count(engine) == 10)
    first = writer._child._process
    os.kill(first.pid, signal.SIGKILL)
    first.join(5)
    for i in range(10, 30):
        writer.submit(_entry(f"r{i}"))
    writer.close()
    with engine.connect() as connection:
        ids = connection.execute(sa.text("SELECT request_id FROM prediction_log")).scalars().all()
    assert sorted(ids) == sorted(f"r{i}" for i in range(30))
    assert writer.failed_writes >= 1 and writer.rows_dropped == 0


def test_labels_join_predictions_by_request_id_per_arm(engine: sa.Engine) -> None:
    tables = log_tables()
    writer = _writer(engine)
    writer.start()
    writer.submit(_entry("a", score=0.9))
    writer.submit(_entry("a", role="shadow", version=3, score=0.4))
    writer.submit(_entry("b", role="canary", version=2, score=0.2))
    writer.submit(_entry("c", score=0.4))
    writer.close()
    record_labels(engine, tables, "churn", [Label("a", 1.0), Label("b", 1.0)])
    record_labels(engine, tables, "churn", [Label("b", 0.0, overwrite=True)])  # a correction
    arms = {(arm.role, arm.version): arm for arm in arm_windows(engine, tables, "churn")}
    champion, canary, shadow = arms[("champion", 1)], arms[("canary", 2)], arms[("shadow", 3)]
    assert (champion.requests, champion.labeled, champion.correct) == (2, 1, 1)
    assert champion.scores.tolist() == [0.9]
    assert (canary.labeled, canary.correct) == (1, 1)
    assert (shadow.labeled, shadow.correct) == (1, 0)


def test_a_failed_request_counts_as_an_error_of_its_arm(engine: sa.Engine) -> None:
    writer = _writer(engine)
    writer.start()
    writer.submit(_entry("a", role="canary", version=2))
    writer.submit(
        replace(
            _entry("b", role="canary", version=2), features=None, scores=None, error="cannot score"
        )
    )
    writer.close()
    (canary,) = arm_windows(engine, log_tables(), "churn")
    assert (canary.requests, canary.errors) == (2, 1)


def test_the_log_tells_an_answered_request_from_a_failed_one_and_a_copy(engine: sa.Engine) -> None:
    tables = log_tables()
    ensure_tables(engine, tables)
    two_rows = replace(_entry("answered"), features={"x": [1.0, 2.0]}, scores=[0.8, 0.3])
    failed = replace(_entry("failed"), features=None, scores=None, error="cannot score")
    copy_only = _entry("copied", role="shadow", version=3)
    write_entries(engine, tables.predictions, [two_rows, failed, copy_only], {})
    found = answered_rows(engine, tables, "churn", ["answered", "failed", "copied", "unknown"])
    assert found == {"answered": 2, "failed": 0}


def test_shadow_pairs_compare_the_shadow_with_the_answer_on_the_same_rows(
    engine: sa.Engine,
) -> None:
    tables = log_tables()
    writer = _writer(engine)
    writer.start()
    for request_id, answered, shadowed in (("a", 0.9, 0.8), ("b", 0.9, 0.1), ("c", 0.2, 0.3)):
        writer.submit(_entry(request_id, score=answered))
        writer.submit(_entry(request_id, role="shadow", version=3, score=shadowed))
    writer.close()
    record_labels(engine, tables, "churn", [Label("a", 1.0), Label("b", 0.0)])
    (pairs,) = _shadow_pairs(engine)
    assert (pairs.compared, pairs.agreed, pairs.labeled) == (3, 2, 2)
    assert (pairs.answered_correct, pairs.paired_correct, pairs.both_correct) == (1, 2, 1)


def test_labels_of_another_model_are_not_joined(engine: sa.Engine) -> None:
    tables = log_tables()
    writer = _writer(engine)
    writer.start()
    writer.submit(_entry("a"))
    writer.close()
    record_labels(engine, tables, "fraud", [Label("a", 1.0)])
    (arm,) = arm_windows(engine, tables, "churn")
    assert arm.labeled == 0


def test_the_first_label_stands_and_a_different_one_is_refused_whole(engine: sa.Engine) -> None:
    tables = log_tables()
    tables.metadata.create_all(engine)
    record_labels(engine, tables, "churn", [Label("a", 1.0)])
    with pytest.raises(LabelConflict, match=r"a\[0\]"):
        record_labels(engine, tables, "churn", [Label("b", 1.0), Label("a", 0.0)])
    again = record_labels(engine, tables, "churn", [Label("a", 1.0)])
    assert (again.stored, again.unchanged) == (0, 1)
    with engine.connect() as connection:
        labels = dict(
            connection.execute(sa.text("SELECT request_id, label FROM prediction_labels")).all()
        )
    assert labels == {"a": 1.0}  # b of the refused call was not stored either


def test_a_correction_is_an_explicit_recorded_overwrite(engine: sa.Engine) -> None:
    tables = log_tables()
    tables.metadata.create_all(engine)
    record_labels(engine, tables, "churn", [Label("a", 1.0)])
    done = record_labels(engine, tables, "churn", [Label("a", 0.0, overwrite=True)], by="tok1")
    assert done.corrected == 1
    with engine.connect() as connection:
        label = connection.execute(sa.text("SELECT label FROM prediction_labels")).scalar_one()
        correction = connection.execute(
            sa.text("SELECT previous_label, label, corrected_by FROM prediction_label_corrections")
        ).one()
    assert label == 0.0 and tuple(correction) == (1.0, 0.0, "tok1")


@pytest.fixture(params=["sqlite", "postgresql"])
def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> sa.Engine:
    """The log's database on SQLite and on PostgreSQL (CI sets PROMOTION_TEST_POSTGRES_URL)."""
    if request.param == "sqlite":
        return create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    return create_engine(request.getfixturevalue("postgres_url"))


def _older_tables(engine: sa.Engine) -> None:
    """The tables as a gateway before per-task labels created them, with one labeled row."""
    metadata = sa.MetaData()
    sa.Table(
        "prediction_log",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("row_index", sa.Integer, nullable=False),
        sa.Column("model_name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("routing_key", sa.String(256)),
        sa.Column("features", sa.JSON, nullable=False),
        sa.Column("prediction", sa.Float),
        sa.Column("error", sa.String(500)),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("model_name", "request_id", "row_index", "role"),
        sa.Index("ix_prediction_log_model_time", "model_name", "created_at"),
    )
    sa.Table(
        "prediction_labels",
        metadata,
        sa.Column("model_name", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("row_index", sa.Integer, primary_key=True, default=0),
        sa.Column("label", sa.Float, nullable=False),
        sa.Column("labeled_at", sa.DateTime(timezone=True), nullable=False),
    )
    sa.Table(
        "prediction_label_corrections",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("model_name", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("row_index", sa.Integer, nullable=False),
        sa.Column("previous_label", sa.Float, nullable=False),
        sa.Column("label", sa.Float, nullable=False),
        sa.Column("corrected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("corrected_by", sa.String(64)),
    )
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO prediction_log (request_id, row_index, model_name, version, role, "
                "features, prediction, latency_ms, created_at) "
                "VALUES ('old', 0, 'churn', 1, 'champion', '{}', 0.9, 1.0, :at)"
            ),
            {"at": datetime.now(UTC)},
        )
        connection.execute(
            sa.text(
                "INSERT INTO prediction_labels (model_name, request_id, row_index, label, "
                "labeled_at) VALUES ('churn', 'old', 0, 1.0, :at)"
            ),
            {"at": datetime.now(UTC)},
        )


def _multiclass_entry(request_id: str, predicted: str, role: str = "champion", version: int = 1):
    probabilities = {"cat": 0.1, "dog": 0.1, predicted: 0.8}
    return replace(
        _entry(request_id, role=role, version=version, score=0.8),
        classes=[predicted],
        probabilities=[probabilities],
    )


def test_an_older_database_gets_the_new_columns_and_keeps_its_rows(any_engine: sa.Engine) -> None:
    _older_tables(any_engine)
    tables = log_tables()
    writer = _writer(any_engine)
    writer.start()
    writer.submit(_multiclass_entry("new", "cow"))
    writer.close()
    record_labels(any_engine, tables, "churn", [Label("new", "cow")])
    record_labels(any_engine, tables, "churn", [Label("new", "dog", overwrite=True)])
    (arm,) = arm_windows(any_engine, tables, "churn", task="multiclass")
    assert (arm.requests, arm.labeled, arm.correct) == (2, 2, 0)
    assert sorted(arm.labels.tolist()) == ["1", "dog"]  # the old numeric label reads as a class
    (binary,) = arm_windows(any_engine, tables, "churn")
    assert (binary.labeled, binary.correct) == (1, 1)  # the old row, as it was
    with any_engine.connect() as connection:
        correction = connection.execute(
            sa.text(
                "SELECT previous_label, previous_label_class, label, label_class "
                "FROM prediction_label_corrections"
            )
        ).one()
    assert tuple(correction) == (None, "cow", None, "dog")


def test_bringing_the_tables_up_to_date_twice_changes_nothing(any_engine: sa.Engine) -> None:
    _older_tables(any_engine)
    ensure_tables(any_engine, log_tables())
    ensure_tables(any_engine, log_tables())
    with any_engine.connect() as connection:
        labels = connection.execute(sa.text("SELECT request_id, label FROM prediction_labels"))
        assert labels.all() == [("old", 1.0)]


def test_multiclass_arms_count_a_row_right_when_the_class_is_the_label(engine: sa.Engine) -> None:
    tables = log_tables()
    writer = _writer(engine)
    writer.start()
    writer.submit(_multiclass_entry("a", "cow"))
    writer.submit(_multiclass_entry("a", "dog", role="shadow", version=2))
    writer.submit(_multiclass_entry("b", "cat"))
    writer.submit(_multiclass_entry("b", "cat", role="shadow", version=2))
    writer.close()
    record_labels(engine, tables, "churn", [Label("a", "cow"), Label("b", "dog")])
    arms = {arm.role: arm for arm in arm_windows(engine, tables, "churn", task="multiclass")}
    assert (arms["champion"].labeled, arms["champion"].correct) == (2, 1)
    assert arms["champion"].classes.tolist() == ["cow", "cat"]
    assert arms["champion"].probabilities[0] == {"cat": 0.1, "dog": 0.1, "cow": 0.8}
    (pairs,) = _shadow_pairs(engine, "multiclass")
    assert (pairs.compared, pairs.agreed, pairs.answered_correct, pairs.paired_correct) == (
        2,
        1,
        1,
        0,
    )


def test_regression_arms_add_squared_errors_and_pair_them_with_the_shadow(
    engine: sa.Engine,
) -> None:
    tables = log_tables()
    writer = _writer(engine)
    writer.start()
    for request_id, answered, shadowed in (("a", 3.0, 5.0), ("b", 1.0, 1.5)):
        writer.submit(_entry(request_id, score=answered))
        writer.submit(_entry(request_id, role="shadow", version=2, score=shadowed))
    writer.close()
    record_labels(engine, tables, "churn", [Label("a", 2.0), Label("b", 1.0)])
    arms = {arm.role: arm for arm in arm_windows(engine, tables, "churn", task="regression")}
    champion = arms["champion"]
    assert (champion.labeled, champion.correct) == (2, 0)
    assert (champion.outcome_sum, champion.outcome_sq_sum) == (1.0, 1.0)
    assert arms["shadow"].outcome_sum == 9.25
    (pairs,) = _shadow_pairs(engine, "regression")
    assert (pairs.labeled, pairs.difference_sum) == (2, -8.25)
    assert pairs.difference_sq_sum == pytest.approx(64 + 0.0625)


def test_a_label_keeps_its_kind_a_number_or_a_class_name(engine: sa.Engine) -> None:
    tables = log_tables()
    ensure_tables(engine, tables)
    record_labels(engine, tables, "churn", [Label("a", 2.5), Label("b", "cat")])
    again = record_labels(engine, tables, "churn", [Label("a", 2.5), Label("b", "cat")])
    assert again.unchanged == 2
    with pytest.raises(LabelConflict):
        record_labels(engine, tables, "churn", [Label("b", "dog")])
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT request_id, label, label_class FROM prediction_labels ORDER BY 1")
        ).all()
    assert rows == [("a", 2.5, None), ("b", None, "cat")]


def test_the_writer_process_loads_neither_pandas_nor_scipy() -> None:
    """The log's writer process imports this module to write rows: every serving process has
    one, so what it loads is memory a gateway pays once more per worker."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, gateway.predlog; print(sorted({'pandas', 'scipy'} & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert loaded == "[]"


def test_rows_read_back_as_they_were_logged_whichever_way_they_were_inserted(
    any_engine: sa.Engine,
) -> None:
    """SQLite's rows go in through the driver, PostgreSQL's through SQLAlchemy: both read back
    with the values of the entry (JSON features, class probabilities, the arrival time)."""
    tables = log_tables()
    ensure_tables(any_engine, tables)
    at = datetime(2026, 5, 4, 12, 30, 15, 123456, tzinfo=UTC)
    entries = [
        LogEntry(
            "a",
            "churn",
            3,
            "champion",
            "user-7",
            {"x": [1.5], "plan": ["pro"]},
            [0.25],
            2.5,
            at,
            classes=["cat"],
            probabilities=[{"cat": 0.25, "dog": 0.75}],
        ),
        LogEntry("b", "churn", 3, "shadow", None, {}, [0.5], 1.0, at),
        LogEntry("c", "churn", 3, "canary", None, None, None, 0.0, at, error="boom"),
    ]
    assert write_entries(any_engine, tables.predictions, entries, {}) == 0
    log = tables.predictions
    with any_engine.connect() as connection:
        rows = {r.request_id: r for r in connection.execute(sa.select(log)).all()}
    first = rows["a"]
    assert (first.version, first.role, first.routing_key) == (3, "champion", "user-7")
    assert first.features == {"x": 1.5, "plan": "pro"}
    assert (first.prediction, first.predicted_class) == (0.25, "cat")
    assert first.probabilities == {"cat": 0.25, "dog": 0.75}
    assert first.created_at.replace(tzinfo=None) == at.replace(tzinfo=None)
    assert rows["b"].features == {} and rows["b"].probabilities is None
    assert (rows["c"].error, rows["c"].prediction) == ("boom", None)
