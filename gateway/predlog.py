"""The prediction log and its labels in SQL: the schema, the batch writer, feedback, and the
readers the gateway and the workflow's workers share (`window_totals`: per-window totals added
up by the database, which the rollout reads; `arm_windows`: an arm's labeled rows, for metrics a
count cannot give).

Tables (names fixed, schema configurable):

- `prediction_log`: one row per scored row, answered (`champion`, `canary`) or not (`shadow`,
  and `champion_paired`: the champion's score of a canary's request, the canary's paired
  evidence); a request that failed on its arm is one row with `error` set and no prediction.
  A request's input values (`features`) are kept once, on its answered rows; the copies have none.
- `prediction_labels`: ground truth by (model_name, request_id, row_index); written by the feedback
  endpoint or loaded in bulk by any job, and joined to the log by request id. The first label of a
  row stands; `prediction_label_corrections` records each deliberate overwrite.
- Per-minute totals of both (`prediction_log_minute_*`, `prediction_log_hour_latencies`), kept by
  `refresh_minutes` for the minutes triggers marked as changed (`prediction_log_changed_minutes`).

Per task: `prediction` is the positive-class probability (binary), the value (regression) or the
probability of the predicted class (multiclass, with `predicted_class` and every class's
`probabilities`). A label is a number in `label` (binary 0/1, regression any finite number) or a
class name in `label_class` (multiclass). Tables written before a column existed get it at start
(`ensure_tables`), so a database of an older gateway keeps its rows and keeps working.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import signal
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import sqlalchemy as sa
from sqlalchemy.sql.expression import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from gateway.batching import (
    ERROR_LENGTH,
    LOG_COLUMNS,
    Copies,
    FeatureMask,
    LogEntry,
    flush_due,
    log_values,
    overflow,
    retry_delay,
    row_dict,
    take_batch,
)
from gateway.payload import shown

logger = logging.getLogger(__name__)

ANSWERING_ROLES = ("champion", "canary")
# The champion's scores of the canary's requests, never returned: the canary's paired evidence.
CHAMPION_PAIRED = "champion_paired"
# Rows scored off the request path and the answered rows they pair with (same request and row):
# (answered role, paired role).
PAIRINGS = (("champion", "shadow"), ("canary", "shadow"), ("canary", CHAMPION_PAIRED))
TASKS = ("binary", "multiclass", "regression")
# The longest class name a multiclass label or answer may have (the log's column).
CLASS_LENGTH = 256


@dataclass(frozen=True)
class LogTables:
    """The log's tables, bound to one metadata (and schema)."""

    metadata: sa.MetaData
    predictions: sa.Table
    labels: sa.Table
    corrections: sa.Table
    refresh_requests: sa.Table
    changed_minutes: sa.Table
    minute_arms: sa.Table
    minute_pairs: sa.Table
    minute_latencies: sa.Table
    hour_latencies: sa.Table


def log_tables(db_schema: str | None = None) -> LogTables:
    """Table definitions of the prediction log and its labels in `db_schema`."""
    metadata = sa.MetaData(schema=db_schema)
    predictions = sa.Table(
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
        sa.Column("predicted_class", sa.String(CLASS_LENGTH)),
        sa.Column("probabilities", sa.JSON),
        sa.Column("error", sa.String(ERROR_LENGTH)),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("model_name", "request_id", "row_index", "role"),
        sa.Index("ix_prediction_log_model_time", "model_name", "created_at"),
        # One role's rows of a window (the pairs, an arm's latencies) without the other roles';
        # on PostgreSQL an arm's p99 is read from this index alone (index-only scan).
        sa.Index(
            "ix_prediction_log_model_role_time",
            "model_name",
            "role",
            "created_at",
            postgresql_include=["version", "latency_ms", "error"],
        ),
    )
    labels = sa.Table(
        "prediction_labels",
        metadata,
        sa.Column("model_name", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("row_index", sa.Integer, primary_key=True, default=0),
        sa.Column("label", sa.Float),
        sa.Column("label_class", sa.String(CLASS_LENGTH)),
        sa.Column("labeled_at", sa.DateTime(timezone=True), nullable=False),
    )
    corrections = sa.Table(
        "prediction_label_corrections",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("model_name", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("row_index", sa.Integer, nullable=False),
        sa.Column("previous_label", sa.Float),
        sa.Column("label", sa.Float),
        sa.Column("previous_label_class", sa.String(CLASS_LENGTH)),
        sa.Column("label_class", sa.String(CLASS_LENGTH)),
        sa.Column("corrected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("corrected_by", sa.String(64)),
    )
    # How the gateway's workers tell each other to refresh a model at once (a webhook or an
    # admin call reaches one of them): a counter per model, raised by the one that was told.
    refresh_requests = sa.Table(
        "gateway_refresh_requests",
        metadata,
        sa.Column("model_name", sa.String(64), primary_key=True),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    )
    # Per-minute totals of the log (see `refresh_minutes`): the minutes whose rows or labels
    # changed since their totals were added up, marked by triggers; each arm's and each pair's
    # sums per minute; each arm's answered latencies per minute, counted in buckets.
    changed_minutes = _keyed(
        metadata,
        "prediction_log_changed_minutes",
        [("model_name", MODEL), ("minute", TIME)],
        sa.Column("changes", sa.BigInteger, nullable=False),
    )
    minute_arms = _keyed(
        metadata,
        "prediction_log_minute_arms",
        [("model_name", MODEL), ("minute", TIME), ("role", ROLE), ("version", sa.Integer)],
        *[_measure_column(name) for name in ARM_MEASURES],
    )
    minute_pairs = _keyed(
        metadata,
        "prediction_log_minute_pairs",
        [
            ("model_name", MODEL),
            ("minute", TIME),
            ("answered_role", ROLE),
            ("answered_version", sa.Integer),
            ("paired_role", ROLE),
            ("paired_version", sa.Integer),
        ],
        *[_measure_column(name) for name in PAIR_MEASURES],
    )
    # Latency counts per minute, and per hour (added up from the minutes'): a day's p99 reads
    # 24 hours' buckets and the minutes of its first and last hour, not 1,440 minutes'.
    minute_latencies, hour_latencies = (
        _keyed(
            metadata,
            f"prediction_log_{span}_latencies",
            [
                ("model_name", MODEL),
                ("role", ROLE),
                ("version", sa.Integer),
                (span, TIME),
                ("bucket", sa.Integer),
            ],
            sa.Column("rows", sa.BigInteger, nullable=False),
        )
        for span in ("minute", "hour")
    )
    return LogTables(
        metadata=metadata,
        predictions=predictions,
        labels=labels,
        corrections=corrections,
        refresh_requests=refresh_requests,
        changed_minutes=changed_minutes,
        minute_arms=minute_arms,
        minute_pairs=minute_pairs,
        minute_latencies=minute_latencies,
        hour_latencies=hour_latencies,
    )


# What the per-minute totals add up, task by task (`_arm_measures`, `_pair_measures`): counts,
# and the float sums of squared errors.
ARM_MEASURES = (
    "requests",
    "errors",
    "answered_rows",
    "labeled_number",
    "labeled_class",
    "binary_correct",
    "class_correct",
    "squared_error_sum",
    "squared_error_sq_sum",
)
PAIR_MEASURES = (
    "compared",
    "agreed_binary",
    "agreed_class",
    "labeled_number",
    "labeled_class",
    "binary_answered",
    "binary_paired",
    "binary_both",
    "class_answered",
    "class_paired",
    "class_both",
    "squared_error_answered",
    "squared_error_paired",
    "squared_error_difference",
    "squared_error_difference_sq",
)


MODEL, ROLE, TIME = sa.String(64), sa.String(16), sa.DateTime(timezone=True)


def _keyed(
    metadata: sa.MetaData, name: str, key: list[tuple[str, sa.types.TypeEngine]], *rest: sa.Column
) -> sa.Table:
    """A table whose primary key is `key` (its columns in that order), then `rest`."""
    return sa.Table(
        name, metadata, *[sa.Column(n, kind, primary_key=True) for n, kind in key], *rest
    )


def _measure_column(name: str) -> sa.Column:
    kind = sa.Float if name.startswith("squared_error") else sa.BigInteger
    return sa.Column(name, kind, nullable=False)


def ensure_tables(engine: sa.Engine, tables: LogTables) -> None:
    """Create the tables, and bring tables an older gateway created up to date: add the columns
    they lack and let a label column that used to be required be empty (a multiclass label is a
    class name, not a number). Existing rows are kept; a table already current is not touched."""
    tables.metadata.create_all(engine)
    for table in tables.metadata.sorted_tables:
        with engine.connect() as connection:
            found = {
                column["name"]: column
                for column in sa.inspect(connection).get_columns(table.name, schema=table.schema)
            }
        missing = [column for column in table.columns if column.name not in found]
        relaxed = [
            column.name
            for column in table.columns
            if column.nullable
            and not column.primary_key
            and column.name in found
            and not found[column.name]["nullable"]
        ]
        if not missing and not relaxed:
            continue
        if relaxed and engine.dialect.name == "sqlite":
            _rebuild_sqlite_table(engine, table, list(found))
            continue
        name = _qualified(engine, table)
        with engine.begin() as connection:
            for column in missing:
                kind = column.type.compile(dialect=engine.dialect)
                connection.exec_driver_sql(
                    f"ALTER TABLE {name} ADD COLUMN {_quoted(engine, column.name)} {kind}"
                )
            for column_name in relaxed:
                connection.exec_driver_sql(
                    f"ALTER TABLE {name} ALTER COLUMN {_quoted(engine, column_name)} DROP NOT NULL"
                )
        logger.info(
            "prediction log: brought %s up to date (added %s; now optional: %s)",
            table.name,
            ", ".join(c.name for c in missing) or "nothing",
            ", ".join(relaxed) or "nothing",
        )
    _ensure_indexes(engine, tables)
    _ensure_triggers(engine, tables)


def _ensure_indexes(engine: sa.Engine, tables: LogTables) -> None:
    """Create the indexes the readers need that a table created by an older gateway lacks."""
    for table in tables.metadata.sorted_tables:
        with engine.connect() as connection:
            found = {
                index["name"]
                for index in sa.inspect(connection).get_indexes(table.name, schema=table.schema)
            }
        for index in table.indexes:
            if index.name in found:
                continue
            with engine.begin() as connection:
                index.create(connection)
            logger.info("prediction log: created index %s on %s", index.name, table.name)


def _rebuild_sqlite_table(engine: sa.Engine, table: sa.Table, existing: list[str]) -> None:
    # SQLite cannot drop a NOT NULL constraint: the table is copied into a current one, in one
    # transaction, so a failure leaves the old table as it was.
    aside = f"{table.name}_before_upgrade"
    kept = ", ".join(_quoted(engine, name) for name in existing if name in table.columns)
    with engine.connect() as connection:
        connection.exec_driver_sql("BEGIN")
        try:
            connection.exec_driver_sql(
                f"ALTER TABLE {_quoted(engine, table.name)} RENAME TO {_quoted(engine, aside)}"
            )
            table.create(connection)
            connection.exec_driver_sql(
                f"INSERT INTO {_quoted(engine, table.name)} ({kept}) "
                f"SELECT {kept} FROM {_quoted(engine, aside)}"
            )
            connection.exec_driver_sql(f"DROP TABLE {_quoted(engine, aside)}")
        except BaseException:
            connection.exec_driver_sql("ROLLBACK")
            raise
        connection.exec_driver_sql("COMMIT")
    logger.info("prediction log: rebuilt %s with the current columns", table.name)


def _quoted(engine: sa.Engine, name: str) -> str:
    return engine.dialect.identifier_preparer.quote(name)


def _qualified(engine: sa.Engine, table: sa.Table) -> str:
    name = _quoted(engine, table.name)
    return name if table.schema is None else f"{_quoted(engine, table.schema)}.{name}"


# The triggers that mark which minutes of a model changed: on every write to the log (a row's
# own minute) and to the labels (the minutes of the rows a label scores), whoever writes, the
# gateway or a bulk load. On PostgreSQL one statement-level trigger per statement and event,
# reading the statement's rows from its transition table; on SQLite one per row. A mark is
# upserted (its `changes` raised) rather than left alone when present, so that a refresh that
# read the mark before a writer committed does not remove it (see `_refresh_chunk`).
_MARKED_TABLES = ("prediction_log", "prediction_labels")
_EVENTS = ("insert", "delete", "update_old", "update_new", "truncate")


def _trigger_name(table: str, event: str) -> str:
    return f"{table}_mark_minutes_{event}"


def ensure_minute_totals(engine: sa.Engine, tables: LogTables) -> None:
    """Create the per-minute totals' tables and triggers where they are missing (a log whose
    tables a gateway of an older release, or another tool, created): a check reads the totals
    only once every write is marked. Cheap when they are there."""
    tables.metadata.create_all(engine, tables=[*_rollups(tables), tables.changed_minutes])
    _ensure_triggers(engine, tables)


def _ensure_triggers(engine: sa.Engine, tables: LogTables) -> None:
    """Create the triggers that mark changed minutes when any is missing. Creating them marks
    every minute of the log as changed (rows written without them are in no total), so the
    next check adds up the whole log once."""
    expected = {_trigger_name(table, event) for table in _MARKED_TABLES for event in _EVENTS}
    if engine.dialect.name == "sqlite":
        expected = {name for name in expected if not name.endswith(("update_old", "truncate"))}
    with engine.connect() as connection:
        if expected <= _existing_triggers(connection, tables):
            return
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Gateway workers starting together create them once.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('prediction_log'))"))
            if expected <= _existing_triggers(connection, tables):
                return
            _create_postgresql_triggers(connection, tables)
        else:
            _create_sqlite_triggers(connection, tables)
        for rollup in _rollups(tables):
            connection.execute(rollup.delete())
        connection.execute(tables.changed_minutes.delete())
        log = tables.predictions
        minute = _minute_of(log.c.created_at, engine.dialect.name)
        connection.execute(
            tables.changed_minutes.insert().from_select(
                ["model_name", "minute", "changes"],
                sa.select(log.c.model_name, minute, sa.literal(1)).distinct(),
            )
        )
    logger.info("prediction log: created the triggers that keep per-minute totals")


def _existing_triggers(connection: sa.Connection, tables: LogTables) -> set[str]:
    if connection.dialect.name == "postgresql":
        rows = connection.execute(
            sa.text(
                "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname IN ('prediction_log', 'prediction_labels') "
                "AND n.nspname = coalesce(:schema, current_schema())"
            ),
            {"schema": tables.metadata.schema},
        )
    else:
        schema = tables.metadata.schema
        master = "sqlite_master" if schema is None else f'"{schema}".sqlite_master'
        rows = connection.exec_driver_sql(f"SELECT name FROM {master} WHERE type = 'trigger'")
    return {name for (name,) in rows}


def _rollups(tables: LogTables) -> tuple[sa.Table, ...]:
    return (tables.minute_arms, tables.minute_pairs, tables.minute_latencies, tables.hour_latencies)


def _hour_of(column: sa.ColumnElement, dialect: str) -> sa.ColumnElement:
    """The hour a time falls in (see `_minute_of`)."""
    return _truncated(column, dialect, "hour")


def _minute_of(column: sa.ColumnElement, dialect: str) -> sa.ColumnElement:
    """The minute a time falls in, as the log's dialect stores a time (SQLite: the text
    SQLAlchemy writes, 'YYYY-MM-DD HH:MM:SS.ffffff')."""
    return _truncated(column, dialect, "minute")


def _truncated(column: sa.ColumnElement, dialect: str, unit: str) -> sa.ColumnElement:
    if dialect == "postgresql":
        return sa.func.date_trunc(unit, column)
    kept, zeros = (5, ":00.000000") if unit == "minute" else (2, ":00:00.000000")
    return (
        sa.func.substr(column, 1, 10)
        .op("||")(" ")
        .op("||")(sa.func.substr(column, 12, kept))
        .op("||")(zeros)
    )


def _sqlite_minute(column: str) -> str:
    return f"substr({column}, 1, 10) || ' ' || substr({column}, 12, 5) || ':00.000000'"


def _create_sqlite_triggers(connection: sa.Connection, tables: LogTables) -> None:
    schema = tables.metadata.schema
    prefix = "" if schema is None else f'"{schema}".'
    upsert = "ON CONFLICT (model_name, minute) DO UPDATE SET changes = changes + 1"
    marks = tables.changed_minutes.name

    def mark_row(side: str) -> str:
        return (
            f"INSERT INTO {marks} (model_name, minute, changes) VALUES "
            f"({side}.model_name, {_sqlite_minute(f'{side}.created_at')}, 1) {upsert};"
        )

    def mark_labeled(side: str) -> str:
        return (
            f"INSERT INTO {marks} (model_name, minute, changes) "
            f"SELECT model_name, {_sqlite_minute('created_at')}, 1 FROM prediction_log "
            f"WHERE model_name = {side}.model_name AND request_id = {side}.request_id "
            f"AND row_index = {side}.row_index {upsert};"
        )

    for table, mark in (("prediction_log", mark_row), ("prediction_labels", mark_labeled)):
        for event, body in (
            ("insert", mark("NEW")),
            ("delete", mark("OLD")),
            ("update_new", mark("OLD") + " " + mark("NEW")),
        ):
            when = event.split("_")[0].upper()
            connection.exec_driver_sql(
                f"CREATE TRIGGER IF NOT EXISTS {prefix}{_trigger_name(table, event)} "
                f"AFTER {when} ON {table} FOR EACH ROW BEGIN {body} END"
            )


def _create_postgresql_triggers(connection: sa.Connection, tables: LogTables) -> None:
    schema = tables.metadata.schema
    prefix = "" if schema is None else f'"{schema}".'
    marks = f"{prefix}{tables.changed_minutes.name}"
    upsert = "ON CONFLICT (model_name, minute) DO UPDATE SET changes = m.changes + 1"
    # Marks are taken in (model, minute) order by every writer, so two never wait on each other.
    changed = {
        "prediction_log": "SELECT DISTINCT model_name, date_trunc('minute', created_at) AS minute "
        "FROM changed_rows",
        "prediction_labels": "SELECT DISTINCT l.model_name, date_trunc('minute', l.created_at) "
        f"AS minute FROM changed_rows c JOIN {prefix}prediction_log l "
        "ON l.model_name = c.model_name AND l.request_id = c.request_id "
        "AND l.row_index = c.row_index",
    }
    for table, select in changed.items():
        function = f"{prefix}{table}_mark_minutes"
        connection.exec_driver_sql(
            f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN INSERT INTO {marks} AS m (model_name, minute, changes) "
            f"SELECT model_name, minute, 1 FROM ({select}) AS changed ORDER BY 1, 2 {upsert}; "
            "RETURN NULL; END $$"
        )
        for event, when, side in (
            ("insert", "INSERT", "NEW"),
            ("delete", "DELETE", "OLD"),
            ("update_old", "UPDATE", "OLD"),
            ("update_new", "UPDATE", "NEW"),
        ):
            name = _trigger_name(table, event)
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON {prefix}{table}")
            connection.exec_driver_sql(
                f"CREATE TRIGGER {name} AFTER {when} ON {prefix}{table} "
                f"REFERENCING {side} TABLE AS changed_rows FOR EACH STATEMENT "
                f"EXECUTE FUNCTION {function}()"
            )
    # TRUNCATE fires no row or statement trigger of its own rows: an emptied log leaves no
    # totals, emptied labels leave every minute of the log to add up again.
    rollups = [f"{prefix}{table.name}" for table in (*_rollups(tables), tables.changed_minutes)]
    on_truncate = {
        "prediction_log": " ".join(f"DELETE FROM {name};" for name in rollups),
        "prediction_labels": f"INSERT INTO {marks} AS m (model_name, minute, changes) "
        f"SELECT DISTINCT model_name, date_trunc('minute', created_at), 1 "
        f"FROM {prefix}prediction_log ORDER BY 1, 2 {upsert};",
    }
    for table, body in on_truncate.items():
        function, name = f"{prefix}{table}_truncated", _trigger_name(table, "truncate")
        connection.exec_driver_sql(
            f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {body} RETURN NULL; END $$"
        )
        connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON {prefix}{table}")
        connection.exec_driver_sql(
            f"CREATE TRIGGER {name} AFTER TRUNCATE ON {prefix}{table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )


def database_url(url: str) -> sa.URL:
    """The URL with the project's PostgreSQL driver (psycopg2) when none is named.

    SQLAlchemy 2.1 reads a bare `postgresql://` as psycopg 3, which the project does not install.
    """
    parsed = sa.make_url(url)
    if parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg2")
    return parsed


def create_engine(url: str) -> sa.Engine:
    """An engine for the log database. SQLite waits on a busy file rather than failing, and
    keeps its log in write-ahead mode: a commit appends to one file instead of copying pages to a
    rollback journal first (a quarter of a log write's cost), and a reader (a rollout check, the
    monitoring view) never waits for the gateway's writer, nor it for them."""
    parsed = database_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, pool_pre_ping=True)
    engine = sa.create_engine(parsed, connect_args={"timeout": 30})
    sa.event.listen(engine, "connect", _write_ahead)
    return engine


def _write_ahead(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # A no-op on a file already in that mode (the mode is kept in the file); SQLite ignores it
    # for an in-memory database. A file that another connection is writing to cannot switch
    # now: it stays as it is, and a later connection switches it.
    try:
        dbapi_connection.execute("PRAGMA journal_mode=WAL").fetchall()
    except sqlite3.OperationalError as error:
        logger.debug("prediction log: not in write-ahead mode yet (%s)", error)


class PredictionLogWriter:
    """Collects log entries from request threads and writes them in batches from one thread,
    masking each model's features as `masks` say (the masking runs off the request path).

    `submit` only appends to a queue, so a slow or unreachable database never slows an answer; a
    failed write is retried with backoff and its rows kept (up to `max_pending_rows`, then the
    oldest are dropped and counted). `close` writes everything still pending.

    With `in_process=False` the rows are built and inserted by a child process (`LogProcess`):
    that work then never holds the interpreter lock the request path needs. A batch leaves the
    queue only once the child reports it committed; a child that dies is started again and the
    batch written again (rows already there are kept once).
    """

    def __init__(
        self,
        engine: sa.Engine,
        tables: LogTables,
        *,
        batch_size: int,
        flush_interval_s: float,
        max_pending_rows: int,
        masks: dict[str, FeatureMask] | None = None,
        in_process: bool = True,
    ) -> None:
        self._engine = engine
        self._masks = masks or {}
        self._tables = tables
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._max_pending_rows = max_pending_rows
        self._pending: deque[tuple[float, LogEntry | Copies]] = deque()
        self._pending_rows = 0
        self._wake = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._child = (
            None if in_process else LogProcess(engine, tables.metadata.schema, self._masks)
        )
        self.rows_written = 0
        self.rows_dropped = 0
        self.failed_writes = 0

    def start(self) -> None:
        """Create the tables (or bring older ones up to date) and start the writer thread."""
        ensure_tables(self._engine, self._tables)
        if self._child is not None:
            self._child.start()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def submit(self, entry: LogEntry | Copies) -> None:
        """Queue one scored request (or a batch of copies) for writing; never blocks on the database."""
        with self._wake:
            self._pending.append((time.monotonic(), entry))
            self._pending_rows += entry.n_rows
            if self._pending_rows >= self._batch_size:
                self._wake.notify()

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    def close(self, timeout_s: float = 30.0) -> None:
        """Write every pending row (trying for at most `timeout_s`) and stop the thread."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._child is not None:
            self._child.stop()
        if self._pending_rows:
            logger.error("prediction log: %d rows not written at shutdown", self._pending_rows)

    def _run(self) -> None:
        failures = 0
        while True:
            with self._wake:
                while not self._due():
                    if self._closing:
                        return
                    self._wake.wait(self._wait_s())
                count = take_batch([entry for _, entry in self._pending], self._batch_size)
                batch = [self._pending[i][1] for i in range(count)]
                closing = self._closing
            try:
                self._write(batch)
            except sa.exc.SQLAlchemyError as error:
                failures += 1
                self.failed_writes += 1
                logger.warning("prediction log: write failed (%s); retrying", error)
                if closing and failures >= 3:
                    return
                self._drop_overflow()
                time.sleep(retry_delay(failures, self._flush_interval_s))
                continue
            failures = 0
            with self._wake:
                for _ in range(count):
                    _, entry = self._pending.popleft()
                    self._pending_rows -= entry.n_rows
                self.rows_written += sum(entry.n_rows for entry in batch)

    def _due(self) -> bool:
        oldest = time.monotonic() - self._pending[0][0] if self._pending else None
        return flush_due(
            self._pending_rows,
            oldest,
            batch_size=self._batch_size,
            flush_interval_s=self._flush_interval_s,
            closing=self._closing,
        )

    def _wait_s(self) -> float:
        if not self._pending:
            return self._flush_interval_s
        return max(0.001, self._flush_interval_s - (time.monotonic() - self._pending[0][0]))

    def _drop_overflow(self) -> None:
        with self._wake:
            dropped = overflow([entry.n_rows for _, entry in self._pending], self._max_pending_rows)
            rows = 0
            for _ in range(dropped):
                _, entry = self._pending.popleft()
                rows += entry.n_rows
            self._pending_rows -= rows
            self.rows_dropped += rows
        if dropped:
            logger.error("prediction log: dropped %d rows while the database is down", rows)

    def _write(self, batch: list[LogEntry | Copies]) -> None:
        if self._child is not None:
            self.rows_dropped += self._child.write(batch)
            return
        self.rows_dropped += write_entries(
            self._engine, self._tables.predictions, batch, self._masks
        )


def write_entries(
    engine: sa.Engine,
    table: sa.Table,
    batch: Iterable[LogEntry | Copies],
    masks: dict[str, FeatureMask],
) -> int:
    """Insert the batch's rows in one transaction; the number of rows the database refused as
    such (dropped, each logged). Raises SQLAlchemyError when the write should be retried."""
    rows = [row for entry in batch for row in log_values(entry, masks.get(entry.model_name))]
    try:
        with engine.begin() as connection:
            _insert_rows(connection, table, rows)
        return 0
    except (sa.exc.IntegrityError, sa.exc.DataError):
        # A batch whose commit succeeded but whose acknowledgement was lost comes back here on
        # retry: write row by row so the rows already there are kept once, not twice. A row the
        # database refuses as such (DataError) is dropped and counted, so it cannot hold back
        # every row behind it.
        dropped = 0
        for values in rows:
            row = row_dict(values)
            try:
                with engine.begin() as connection:
                    connection.execute(table.insert(), [row])
            except sa.exc.IntegrityError:
                continue
            except sa.exc.DataError as error:
                dropped += 1
                logger.error(
                    "prediction log: dropped a row of request %s the database refuses: %s",
                    shown(row["request_id"]),
                    shown(str(error), 200),
                )
        return dropped


class LogProcess:
    """A child process that builds and inserts the log's rows for `PredictionLogWriter`: one
    batch at a time over a pipe, answered with the rows it dropped or the error to retry on."""

    def __init__(
        self, engine: sa.Engine, db_schema: str | None, masks: dict[str, FeatureMask]
    ) -> None:
        self._url = engine.url.render_as_string(hide_password=False)
        self._schema = db_schema
        self._masks = masks
        self._process: multiprocessing.process.BaseProcess | None = None
        self._pipe: multiprocessing.connection.Connection | None = None

    def start(self) -> None:
        """Start the child (spawned: it shares no threads or connections with this process)."""
        context = multiprocessing.get_context("spawn")
        mine, theirs = context.Pipe()
        self._process = context.Process(
            target=_serve_writes,
            args=(theirs, self._url, self._schema, self._masks),
            name="prediction-log-writer",
            daemon=True,
        )
        self._process.start()
        theirs.close()
        self._pipe = mine

    def write(self, batch: list[LogEntry | Copies]) -> int:
        """Have the child write the batch; the rows it dropped. Raises SQLAlchemyError (to be
        retried) when the write failed or the child died, after starting a new child."""
        try:
            self._pipe.send(batch)
            while not self._pipe.poll(1.0):
                if not self._process.is_alive():
                    raise EOFError("the writer process exited")
            outcome, detail = self._pipe.recv()
        except (EOFError, OSError) as error:
            logger.error("prediction log: writer process lost (%s); starting another", error)
            self._replace()
            raise sa.exc.OperationalError("writing through the writer process", {}, error) from None
        if outcome == "failed":
            raise sa.exc.OperationalError(
                "writing through the writer process", {}, RuntimeError(detail)
            )
        return int(detail)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the child after the batch it is writing."""
        if self._process is None:
            return
        try:
            self._pipe.send(None)
        except OSError:
            pass
        self._process.join(timeout_s)
        if self._process.is_alive():
            self._process.terminate()
        self._pipe.close()
        self._process = None

    def _replace(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.terminate()
        if self._pipe is not None:
            self._pipe.close()
        self.start()


def _insert_rows(connection: sa.Connection, table: sa.Table, rows: list[tuple]) -> None:
    """Insert log rows, each the values of `LOG_COLUMNS` (every column but the id). On SQLite
    the statement is the driver's own, each value converted by its column type's own bind
    processor, as SQLAlchemy would store it: SQLAlchemy's per-row parameter handling cost more
    than SQLite's insert."""
    if connection.dialect.name != "sqlite" or not rows:
        connection.execute(table.insert(), [row_dict(values) for values in rows])
        return
    dialect = connection.dialect
    converting = [
        # A number's conversion is cheaper than looking it up.
        (position, convert if isinstance(column.type, sa.Float) else _remembering(convert))
        for position, column in enumerate(table.c[name] for name in LOG_COLUMNS)
        if (convert := column.type.dialect_impl(dialect).bind_processor(dialect))
    ]
    statement = (
        f"INSERT INTO {_qualified(connection.engine, table)} "
        f"({', '.join(_quoted(connection.engine, name) for name in LOG_COLUMNS)}) "
        f"VALUES ({', '.join('?' for _ in LOG_COLUMNS)})"
    )
    parameters = []
    for values in rows:
        bound = list(values)
        for position, convert in converting:
            bound[position] = convert(bound[position])
        parameters.append(tuple(bound))
    connection.exec_driver_sql(statement, parameters)


_EMPTY = object()


def _remembering(convert: Callable[[object], object]) -> Callable[[object], object]:
    """`convert`, answering a value it converted before (a request's time, shared by its rows
    and its copies' rows; no probabilities; a copy's empty features) without converting again."""
    answers: dict = {}

    def converted(value: object) -> object:
        if type(value) is dict:
            if value:
                return convert(value)
            key = _EMPTY
        else:
            # Equal is not enough: 1 == True, and times equal in another zone are written apart.
            key = (type(value), value, getattr(value, "tzinfo", None))
        try:
            return answers[key]
        except KeyError:
            answers[key] = answer = convert(value)
            return answer
        except TypeError:  # unhashable
            return convert(value)

    return converted


def _serve_writes(
    pipe: multiprocessing.connection.Connection,
    url: str,
    db_schema: str | None,
    masks: dict[str, FeatureMask],
) -> None:
    """The writer process: write each batch received, answer ("written", dropped rows) or
    ("failed", error text); stop on None or when the parent goes away. A signal to the process
    group (Ctrl-C, a container's stop) is the parent's to handle: it then sends what is pending
    and stops this process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    engine, table = create_engine(url), log_tables(db_schema).predictions
    try:
        while True:
            try:
                batch = pipe.recv()
            except (EOFError, OSError):
                return
            if batch is None:
                return
            try:
                pipe.send(("written", write_entries(engine, table, batch, masks)))
            except sa.exc.SQLAlchemyError as error:
                pipe.send(("failed", shown(str(error), 500)))
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Label:
    """The ground truth of one logged row: a number (binary, regression) or a class name
    (multiclass); `overwrite` marks a deliberate correction."""

    request_id: str
    label: float | str
    row_index: int = 0
    overwrite: bool = False


@dataclass(frozen=True)
class LabelsStored:
    """What a call to `record_labels` did."""

    stored: int
    unchanged: int
    corrected: int


class LabelConflict(ValueError):
    """Rows already labeled otherwise, without `overwrite`; nothing of the call was stored."""

    def __init__(self, rows: list[tuple[str, int]]) -> None:
        self.rows = rows
        shown = ", ".join(f"{request_id}[{row}]" for request_id, row in rows[:5])
        more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
        super().__init__(
            f"{len(rows)} row(s) already labeled with another value: {shown}{more}; the first "
            'label stands, send "overwrite": true to correct one (the correction is recorded)'
        )


def record_labels(
    engine: sa.Engine,
    tables: LogTables,
    model_name: str,
    labels: list[Label],
    *,
    by: str | None = None,
    now: datetime | None = None,
) -> LabelsStored:
    """Store labels: the first label of a row stands; a label sent again unchanged is a no-op; a
    different one is a LabelConflict unless it says `overwrite`, and then the old and new values,
    when and by whom are kept in `prediction_label_corrections`. All of the call or none of it.
    """
    at = now or datetime.now(UTC)
    # A concurrent first label of the same row makes the insert fail; the retry then sees it.
    attempts = 3
    while True:
        try:
            with engine.begin() as connection:
                return _store_labels(connection, tables, model_name, labels, by, at)
        except sa.exc.IntegrityError:
            attempts -= 1
            if not attempts:
                raise


def _store_labels(
    connection: sa.Connection,
    tables: LogTables,
    model_name: str,
    labels: list[Label],
    by: str | None,
    at: datetime,
) -> LabelsStored:
    table = tables.labels
    existing: dict[tuple[str, int], float | str] = {}
    ids = sorted({label.request_id for label in labels})
    for start in range(0, len(ids), 500):
        found = connection.execute(
            sa.select(
                table.c.request_id, table.c.row_index, table.c.label, table.c.label_class
            ).where(
                table.c.model_name == model_name, table.c.request_id.in_(ids[start : start + 500])
            )
        )
        existing.update({(r.request_id, r.row_index): _label_of(r) for r in found})
    new, corrections, conflicts, unchanged = [], [], [], 0
    for label in {(label.request_id, label.row_index): label for label in labels}.values():
        key = (label.request_id, label.row_index)
        if key not in existing:
            new.append(label)
        elif existing[key] == label.label:
            unchanged += 1
        elif label.overwrite:
            corrections.append((label, existing[key]))
        else:
            conflicts.append(key)
    if conflicts:
        raise LabelConflict(conflicts)
    if new:
        connection.execute(
            table.insert(),
            [
                {
                    "model_name": model_name,
                    "request_id": label.request_id,
                    "row_index": label.row_index,
                    **_label_columns(label.label),
                    "labeled_at": at,
                }
                for label in new
            ],
        )
    for label, _ in corrections:
        connection.execute(
            table.update()
            .where(
                table.c.model_name == model_name,
                table.c.request_id == label.request_id,
                table.c.row_index == label.row_index,
            )
            .values(**_label_columns(label.label), labeled_at=at)
        )
    if corrections:
        connection.execute(
            tables.corrections.insert(),
            [
                {
                    "model_name": model_name,
                    "request_id": label.request_id,
                    "row_index": label.row_index,
                    **{f"previous_{k}": v for k, v in _label_columns(previous).items()},
                    **_label_columns(label.label),
                    "corrected_at": at,
                    "corrected_by": by,
                }
                for label, previous in corrections
            ],
        )
    return LabelsStored(stored=len(new), unchanged=unchanged, corrected=len(corrections))


def _label_columns(label: float | str) -> dict[str, float | str | None]:
    """A label as the labels table stores it: a number in `label`, a class name in `label_class`."""
    if isinstance(label, str):
        return {"label": None, "label_class": label}
    return {"label": float(label), "label_class": None}


def _label_of(row: sa.Row) -> float | str | None:
    return row.label_class if row.label_class is not None else row.label


def answered_rows(
    engine: sa.Engine, tables: LogTables, model_name: str, request_ids: list[str]
) -> dict[str, int]:
    """For each id the log holds as answered (champion or canary), its row count: 0 when it
    failed (its row holds the error), so a label for it is refused as failed wherever it was
    answered."""
    log = tables.predictions
    answered: dict[str, int] = {}
    with engine.connect() as connection:
        for start in range(0, len(request_ids), 500):
            rows = connection.execute(
                sa.select(log.c.request_id, _count(log.c.error.is_(None)))
                .where(
                    log.c.model_name == model_name,
                    log.c.request_id.in_(request_ids[start : start + 500]),
                    log.c.role.in_(ANSWERING_ROLES),
                )
                .group_by(log.c.request_id)
            )
            answered.update({request_id: count for request_id, count in rows})
    return answered


def request_logged(engine: sa.Engine, tables: LogTables, model_name: str, request_id: str) -> bool:
    """Whether the log holds any row (answered, failed or shadow) of this request id."""
    log = tables.predictions
    with engine.connect() as connection:
        found = connection.execute(
            sa.select(log.c.id)
            .where(log.c.model_name == model_name, log.c.request_id == request_id)
            .limit(1)
        ).first()
    return found is not None


@dataclass(frozen=True)
class ArmWindow:
    """One arm (role and version) of a model over a time window: traffic, health and labels.

    The count fields carry the names of `promotion.rollout.ArmStats`. Each labeled row has one
    outcome (`promotion.rollout.row_outcomes`): 1 or 0 for a right or wrong class, the squared
    error for regression; `correct` counts the right classes, `outcome_sum` and `outcome_sq_sum`
    add the outcomes and their squares. `scores` and `labels` are the labeled rows themselves
    (for multiclass, `labels` are class names, `classes` the predicted ones and `probabilities`
    each row's logged class probabilities), for metrics a count cannot give.
    """

    role: str
    version: int
    requests: int
    errors: int
    labeled: int
    correct: int
    p99_latency_ms: float | None
    scores: np.ndarray
    labels: np.ndarray
    outcome_sum: float = 0.0
    outcome_sq_sum: float = 0.0
    classes: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    probabilities: tuple[dict[str, float] | None, ...] = ()


def _window_rows(
    engine: sa.Engine,
    tables: LogTables,
    model_name: str,
    since: datetime | None,
    until: datetime | None,
) -> list[sa.Row]:
    log, labels = tables.predictions, tables.labels
    joined = log.outerjoin(labels, _labels_of(log, labels))
    query = (
        sa.select(
            log.c.request_id,
            log.c.row_index,
            log.c.role,
            log.c.version,
            log.c.prediction,
            log.c.predicted_class,
            log.c.probabilities,
            log.c.latency_ms,
            log.c.error,
            labels.c.label,
            labels.c.label_class,
        )
        .select_from(joined)
        .where(log.c.model_name == model_name)
        .order_by(log.c.id)
    )
    if since is not None:
        query = query.where(log.c.created_at >= since)
    if until is not None:
        query = query.where(log.c.created_at < until)
    with engine.connect() as connection:
        return connection.execute(query).all()


@dataclass(frozen=True)
class LabeledRequest:
    """One labeled row the gateway answered: when, the features it logged (as logged: hashed or
    unlogged features are absent or masked) and its label as the task compares it."""

    created_at: datetime
    features: dict | None
    label: float | str


def labeled_requests(
    engine: sa.Engine,
    tables: LogTables,
    model_name: str,
    *,
    since: datetime,
    until: datetime,
    task: str,
    limit: int,
) -> list[LabeledRequest]:
    """The newest labeled rows answered by `champion` or `canary` without error in
    [since, until), at most `limit`, newest first: the recent live data a rollback scores."""
    log, labels = tables.predictions, tables.labels
    joined = log.join(labels, _labels_of(log, labels))
    query = (
        sa.select(log.c.created_at, log.c.features, labels.c.label, labels.c.label_class)
        .select_from(joined)
        .where(
            log.c.model_name == model_name,
            log.c.role.in_(ANSWERING_ROLES),
            log.c.error.is_(None),
            log.c.created_at >= since,
            log.c.created_at < until,
            sa.or_(labels.c.label.is_not(None), labels.c.label_class.is_not(None)),
        )
        .order_by(log.c.created_at.desc(), log.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        LabeledRequest(row.created_at, row.features, truth)
        for row in rows
        if (truth := _truth(row, task)) is not None
    ]


def _truth(row: sa.Row, task: str) -> float | str | None:
    """The row's label as its task compares it: a class name for multiclass, else a number."""
    if task != "multiclass":
        return row.label
    if row.label_class is not None:
        return row.label_class
    if row.label is None:
        return None
    # A class loaded in bulk as a number: written the way an integer class is answered.
    return str(int(row.label)) if float(row.label).is_integer() else str(row.label)


def _answer(row: sa.Row, task: str) -> float | str:
    """What the row predicted, as `row_outcomes` compares it."""
    return row.predicted_class if task == "multiclass" else row.prediction


def arm_windows(
    engine: sa.Engine,
    tables: LogTables,
    model_name: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    task: str = "binary",
) -> list[ArmWindow]:
    """Per arm, what it answered in [since, until) and how it fared against the labels known.

    Shadow rows share the request id of the answered row, so one label scores both arms: that is
    what lets a rollout compare a shadow with the champion on the same traffic.
    """
    # Imported here: the log's writer process imports this module and reads nothing.
    from promotion.rollout import row_outcomes

    grouped: dict[tuple[str, int], list] = {}
    for row in _window_rows(engine, tables, model_name, since, until):
        grouped.setdefault((row.role, row.version), []).append(row)
    windows = []
    for (role, version), rows in sorted(grouped.items()):
        labeled = [r for r in rows if r.error is None and _truth(r, task) is not None]
        truth = [_truth(r, task) for r in labeled]
        outcomes = row_outcomes(task, [_answer(r, task) for r in labeled], truth)
        latencies = [r.latency_ms for r in rows if r.error is None]
        windows.append(
            ArmWindow(
                role=role,
                version=version,
                requests=len({r.request_id for r in rows}),
                errors=len({r.request_id for r in rows if r.error is not None}),
                labeled=len(labeled),
                correct=0 if task == "regression" else int(outcomes.sum()),
                p99_latency_ms=float(np.percentile(latencies, 99)) if latencies else None,
                scores=np.asarray([r.prediction for r in labeled], dtype=float),
                labels=np.asarray(truth, dtype=object if task == "multiclass" else float),
                outcome_sum=float(outcomes.sum()),
                outcome_sq_sum=float((outcomes * outcomes).sum()),
                classes=np.asarray([r.predicted_class for r in labeled], dtype=object),
                probabilities=tuple(r.probabilities for r in labeled),
            )
        )
    return windows


@dataclass(frozen=True)
class ArmTotals:
    """One arm (role and version) of a model over one window, added up by the database.

    The fields carry the names of `promotion.rollout.ArmStats`: `requests` and `errors` count
    requests (a request is counted by its first row), `labeled` the answered rows with a label,
    `correct` those a classifier got right, `outcome_sum` and `outcome_sq_sum` add the labeled
    rows' outcomes (`promotion.rollout.row_outcomes`) and their squares; `p99_latency_ms` is over
    the rows answered without an error.
    """

    role: str
    version: int
    requests: int
    errors: int
    labeled: int
    correct: int
    outcome_sum: float
    outcome_sq_sum: float
    p99_latency_ms: float | None


@dataclass(frozen=True)
class PairTotals:
    """Rows scored off the request path (`paired_role`: shadow or champion_paired) joined to the
    answered rows of the same request and row, over one window.

    `compared` pairs, `agreed` of them with the same class (classification); over the `labeled`
    pairs, each side's right classes and outcome sums, `both_correct`, and `difference_sum`:
    the answered row's outcome minus the paired one's, added (for regression: squared errors),
    with `difference_sq_sum` the sum of its squares.
    """

    answered_role: str
    answered_version: int
    paired_role: str
    paired_version: int
    compared: int
    agreed: int
    labeled: int
    answered_correct: int
    paired_correct: int
    both_correct: int
    answered_outcome_sum: float
    paired_outcome_sum: float
    difference_sum: float
    difference_sq_sum: float


@dataclass(frozen=True)
class WindowTotals:
    """Every arm and every pair of a model in one window [since, until)."""

    since: datetime
    until: datetime
    arms: tuple[ArmTotals, ...] = ()
    pairs: tuple[PairTotals, ...] = ()

    def arm(self, role: str, version: int) -> ArmTotals | None:
        """The arm of that role and version, None when it logged nothing in the window."""
        return next((a for a in self.arms if (a.role, a.version) == (role, version)), None)

    def pair(self, answered: tuple[str, int], paired: tuple[str, int]) -> PairTotals | None:
        """The pairs of the answered (role, version) with the paired (role, version), if any."""
        return next(
            (
                p
                for p in self.pairs
                if (p.answered_role, p.answered_version) == answered
                and (p.paired_role, p.paired_version) == paired
            ),
            None,
        )


def window_totals(
    engine: sa.Engine,
    tables: LogTables,
    model_name: str,
    windows: Sequence[tuple[datetime, datetime]],
    *,
    task: str = "binary",
    pairs: Sequence[tuple[str, str]] = PAIRINGS,
) -> list[WindowTotals]:
    """Per window (e.g. one per rollout step, in order and not overlapping), each arm's totals and
    (with `pairs`) each pair's, added up by the database: no logged row is brought into Python,
    so a check costs the same memory whatever the traffic.

    `pairs` names the (answered role, paired role) pairs of `PAIRINGS` to add up, e.g. only
    `[("canary", "champion_paired")]` for a canary; none for `()`.

    The whole minutes of a window are read from the per-minute totals (`refresh_minutes` first
    brings the minutes that changed up to date), the seconds before its first whole minute and
    after its last from the rows, so a check's cost follows the minutes in its windows and the
    rows changed since the last check, not the rows in the windows. Outcomes are CASE
    expressions per task, as `promotion.rollout.row_outcomes` computes them.

    The p99 latency is exact (numpy's default, linear between the two closest ranks) up to
    `EXACT_P99_ROWS` answered rows of an arm in a window, read from the two rows ranked around
    it; above, it is read from the per-minute latency counts (`p99_from_buckets`): within 1 %.
    """
    _check_windows(windows)
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; use {', '.join(TASKS)}")
    unknown = [pair for pair in pairs if tuple(pair) not in PAIRINGS]
    if unknown:
        raise ValueError(f"unknown pairs {unknown}; use pairs of {list(PAIRINGS)}")
    if not windows:
        return []
    ensure_minute_totals(engine, tables)
    refresh_minutes(engine, tables, model_name, windows[0][0], windows[-1][1])
    wholes, edges = _split_windows(windows)
    with engine.connect() as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            # One snapshot for the totals and the rows at the edges; no JIT, which costs seconds
            # compiling these short queries and saves nothing.
            connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            connection.exec_driver_sql("SET LOCAL jit = off")
            # The edges' few rows look up their labels by key, not by hashing all the labels.
            connection.exec_driver_sql("SET LOCAL enable_hashjoin = off")
            connection.exec_driver_sql("SET LOCAL enable_mergejoin = off")
        arms = _merged(
            len(windows),
            _rolled_arms(connection, tables, model_name, wholes),
            _raw_arms(connection, tables, model_name, edges),
        )
        found_pairs = (
            _merged(
                len(windows),
                _rolled_pairs(connection, tables, model_name, wholes, pairs),
                _raw_pairs(connection, tables, model_name, edges, pairs),
            )
            if pairs
            else [{} for _ in windows]
        )
        return [
            WindowTotals(
                since,
                until,
                tuple(
                    _arm_totals(
                        task,
                        key,
                        measures,
                        _p99_latency(
                            connection,
                            tables,
                            model_name,
                            key,
                            (since, until),
                            wholes,
                            edges,
                            step,
                            int(measures["answered_rows"]),
                        ),
                    )
                    for key, measures in sorted(arms[step].items())
                ),
                tuple(
                    _pair_totals(task, key, measures)
                    for key, measures in sorted(found_pairs[step].items())
                ),
            )
            for step, (since, until) in enumerate(windows)
        ]


def _check_windows(windows: Sequence[tuple[datetime, datetime]]) -> None:
    for step, (since, until) in enumerate(windows):
        if since > until:
            raise ValueError(f"window {step}: starts at {since} after it ends at {until}")
        if step and since < windows[step - 1][1]:
            raise ValueError(f"window {step}: starts at {since}, before window {step - 1} ends")


# Parts of the windows: (window index, since, until).
_Parts = list[tuple[int, datetime, datetime]]


def _minute_floor(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def _minute_ceil(at: datetime) -> datetime:
    floor = _minute_floor(at)
    return floor if floor == at else floor + MINUTE


def _split_windows(windows: Sequence[tuple[datetime, datetime]]) -> tuple[_Parts, _Parts]:
    """Each window's whole minutes (one part at most) and the seconds outside them (the edges,
    read from the rows), in time order."""
    wholes: _Parts = []
    edges: _Parts = []
    for step, (since, until) in enumerate(windows):
        first, last = _minute_ceil(since), _minute_floor(until)
        if first >= last:
            if since < until:
                edges.append((step, since, until))
            continue
        wholes.append((step, first, last))
        edges.extend((step, a, b) for a, b in ((since, first), (last, until)) if a < b)
    edges.sort(key=lambda part: part[1])
    return wholes, edges


Measures = dict[str, float]


def _merged(count: int, *found: dict[int, dict[tuple, Measures]]) -> list[dict[tuple, Measures]]:
    """Per window, each group's measures added up over the window's parts."""
    merged: list[dict[tuple, Measures]] = [{} for _ in range(count)]
    for parts in found:
        for step, groups in parts.items():
            for key, measures in groups.items():
                into = merged[step].setdefault(key, dict.fromkeys(measures, 0))
                for name, value in measures.items():
                    into[name] += value
    return merged


def _arm_totals(task: str, key: tuple, m: Measures, p99: float | None) -> ArmTotals:
    role, version = key
    if task == "regression":
        labeled, outcome, outcome_sq = (
            m["labeled_number"],
            m["squared_error_sum"],
            m["squared_error_sq_sum"],
        )
    else:
        labeled = m["labeled_number" if task == "binary" else "labeled_class"]
        outcome = outcome_sq = m["binary_correct" if task == "binary" else "class_correct"]
    return ArmTotals(
        role=role,
        version=version,
        requests=int(m["requests"]),
        errors=int(m["errors"]),
        labeled=int(labeled),
        correct=0 if task == "regression" else int(outcome),
        outcome_sum=float(outcome),
        outcome_sq_sum=float(outcome_sq),
        p99_latency_ms=p99,
    )


def _pair_totals(task: str, key: tuple, m: Measures) -> PairTotals:
    if task == "regression":
        outcomes = {
            "agreed": 0,
            "labeled": int(m["labeled_number"]),
            "answered_correct": 0,
            "paired_correct": 0,
            "both_correct": 0,
            "answered_outcome_sum": float(m["squared_error_answered"]),
            "paired_outcome_sum": float(m["squared_error_paired"]),
            "difference_sum": float(m["squared_error_difference"]),
            "difference_sq_sum": float(m["squared_error_difference_sq"]),
        }
    else:
        kind = "binary" if task == "binary" else "class"
        mine, theirs, both = (int(m[f"{kind}_{side}"]) for side in ("answered", "paired", "both"))
        outcomes = {
            "agreed": int(m[f"agreed_{kind}"]),
            "labeled": int(m["labeled_number" if task == "binary" else "labeled_class"]),
            "answered_correct": mine,
            "paired_correct": theirs,
            "both_correct": both,
            "answered_outcome_sum": float(mine),
            "paired_outcome_sum": float(theirs),
            # Outcomes of 1 or 0: (a - p)² = a + p - 2ap.
            "difference_sum": float(mine - theirs),
            "difference_sq_sum": float(mine + theirs - 2 * both),
        }
    return PairTotals(*key, compared=int(m["compared"]), **outcomes)


def _sql_truth(labels: sa.Table, task: str) -> sa.ColumnElement:
    """The label as its task compares it (as `_truth` reads it): a class name for multiclass
    (a class loaded in bulk as a number reads as that number written as an answer is), else the
    number."""
    if task != "multiclass":
        return labels.c.label
    whole = sa.cast(sa.cast(labels.c.label, sa.BigInteger), sa.Float) == labels.c.label
    written = sa.case(
        (whole, sa.cast(sa.cast(labels.c.label, sa.BigInteger), sa.String)),
        else_=sa.cast(labels.c.label, sa.String),
    )
    return sa.func.coalesce(labels.c.label_class, written)


def _same_side(answer: sa.ColumnElement, truth: sa.ColumnElement) -> sa.ColumnElement:
    """A binary answer and its label on the same side of 0.5 (`row_outcomes` for binary)."""
    return sa.or_(sa.and_(answer >= 0.5, truth >= 0.5), sa.and_(answer < 0.5, truth < 0.5))


def _labels_of(log: sa.Table | sa.sql.Alias, labels: sa.Table) -> sa.ColumnElement:
    return sa.and_(
        labels.c.model_name == log.c.model_name,
        labels.c.request_id == log.c.request_id,
        labels.c.row_index == log.c.row_index,
    )


def _sum(value: sa.ColumnElement) -> sa.ColumnElement:
    return sa.func.coalesce(sa.func.sum(value), 0)


def _count(condition: sa.ColumnElement) -> sa.ColumnElement:
    return _sum(sa.case((condition, 1), else_=0))


def _arm_measures(log: sa.Table, labels: sa.Table) -> list[sa.ColumnElement]:
    """`ARM_MEASURES` summed over log rows joined to their labels, for every task at once."""
    answered = log.c.error.is_(None)
    number, name = labels.c.label, _sql_truth(labels, "multiclass")
    numbered = sa.and_(answered, number.is_not(None))
    named = sa.and_(answered, name.is_not(None))
    # The writer logs every request, failed or not, with a row 0: counting those counts requests
    # without the cost of COUNT(DISTINCT request_id).
    first = log.c.row_index == 0
    squared = (log.c.prediction - number) * (log.c.prediction - number)
    measures = {
        "requests": _count(first),
        "errors": _count(sa.and_(first, log.c.error.is_not(None))),
        "answered_rows": _count(answered),
        "labeled_number": _count(numbered),
        "labeled_class": _count(named),
        "binary_correct": _count(sa.and_(numbered, _same_side(log.c.prediction, number))),
        "class_correct": _count(sa.and_(named, log.c.predicted_class == name)),
        "squared_error_sum": _sum(sa.case((numbered, squared))),
        "squared_error_sq_sum": _sum(sa.case((numbered, squared * squared))),
    }
    return [measures[name].label(name) for name in ARM_MEASURES]


def _pair_measures(
    answered: sa.sql.Alias, paired: sa.sql.Alias, labels: sa.Table
) -> list[sa.ColumnElement]:
    """`PAIR_MEASURES` summed over answered rows joined to their copies and their labels."""
    number, name = labels.c.label, _sql_truth(labels, "multiclass")
    numbered, named = number.is_not(None), name.is_not(None)
    mine_right = sa.and_(numbered, _same_side(answered.c.prediction, number))
    theirs_right = sa.and_(numbered, _same_side(paired.c.prediction, number))
    mine_named = sa.and_(named, answered.c.predicted_class == name)
    theirs_named = sa.and_(named, paired.c.predicted_class == name)
    mine_sq = (answered.c.prediction - number) * (answered.c.prediction - number)
    theirs_sq = (paired.c.prediction - number) * (paired.c.prediction - number)
    difference = mine_sq - theirs_sq
    measures = {
        "compared": sa.func.count(),
        "agreed_binary": _count(_same_side(paired.c.prediction, answered.c.prediction)),
        "agreed_class": _count(paired.c.predicted_class == answered.c.predicted_class),
        "labeled_number": _count(numbered),
        "labeled_class": _count(named),
        "binary_answered": _count(mine_right),
        "binary_paired": _count(theirs_right),
        "binary_both": _count(sa.and_(mine_right, theirs_right)),
        "class_answered": _count(mine_named),
        "class_paired": _count(theirs_named),
        "class_both": _count(sa.and_(mine_named, theirs_named)),
        "squared_error_answered": _sum(sa.case((numbered, mine_sq))),
        "squared_error_paired": _sum(sa.case((numbered, theirs_sq))),
        "squared_error_difference": _sum(sa.case((numbered, difference))),
        "squared_error_difference_sq": _sum(sa.case((numbered, difference * difference))),
    }
    return [measures[name].label(name) for name in PAIR_MEASURES]


def _paired_rows(
    tables: LogTables,
    pairings: Sequence[tuple[str, str]],
    spans: Sequence[tuple[datetime, datetime]],
    dialect: str,
) -> tuple[sa.sql.Alias, sa.sql.Alias, sa.sql.FromClause, sa.ColumnElement]:
    """Answered rows in the spans joined to the copies of the same request and row in the spans
    (a copy carries its request's arrival time), both without an error, and to their labels."""
    log, labels = tables.predictions, tables.labels
    answered, paired = log.alias("answered"), log.alias("paired")
    paired_at: sa.ColumnElement = paired.c.created_at
    if dialect == "sqlite":
        # SQLite's planner, without statistics, would find the copies by the time index too and
        # read every copy of the minutes again for each answered row (15 s for five minutes of
        # 600 requests); its unary `+` keeps a term off an index, so each copy is looked up by
        # its request's key.
        paired_at = UnaryExpression(paired_at, operator=custom_op("+"), type_=paired_at.type)
    joined = answered.join(
        paired,
        sa.and_(
            paired.c.model_name == answered.c.model_name,
            paired.c.request_id == answered.c.request_id,
            paired.c.row_index == answered.c.row_index,
        ),
    ).outerjoin(labels, _labels_of(answered, labels))
    condition = sa.and_(
        sa.or_(
            *[
                sa.and_(answered.c.role == mine, paired.c.role == theirs)
                for mine, theirs in pairings
            ]
        ),
        answered.c.error.is_(None),
        paired.c.error.is_(None),
        _in_parts(answered.c.created_at, spans),
        _in_parts(paired_at, spans),
    )
    return answered, paired, joined, condition


def _in_parts(
    column: sa.ColumnElement, parts: Iterable[tuple[datetime, datetime]]
) -> sa.ColumnElement:
    return sa.or_(*[sa.and_(column >= since, column < until) for since, until in parts])


def _part_flags(column: sa.ColumnElement, parts: _Parts) -> list[sa.ColumnElement]:
    """Per part, whether a row is past its start and before its end: grouped by, these put each
    row in its part in one pass. (Booleans, so the planner knows they have two values and groups
    by hashing.)"""
    return [
        flag.label(f"p{index}_{side}")
        for index, (_, since, until) in enumerate(parts)
        for side, flag in (("since", column >= since), ("until", column < until))
    ]


def _part_of(row: sa.Row, parts: _Parts) -> int | None:
    """The window of the part a grouped row falls in; None between parts."""
    return next(
        (
            step
            for index, (step, _, _) in enumerate(parts)
            if getattr(row, f"p{index}_since") and getattr(row, f"p{index}_until")
        ),
        None,
    )


def _grouped(
    connection: sa.Connection,
    query: sa.Select,
    parts: _Parts,
    key: Sequence[str],
    names: Sequence[str],
) -> dict[int, dict[tuple, Measures]]:
    found: dict[int, dict[tuple, Measures]] = {}
    for row in connection.execute(query):
        step = _part_of(row, parts)
        if step is None:
            continue
        group = found.setdefault(step, {}).setdefault(
            tuple(getattr(row, k) for k in key), dict.fromkeys(names, 0)
        )
        for name in names:
            group[name] += getattr(row, name)
    return found


def _raw_arms(
    connection: sa.Connection, tables: LogTables, model_name: str, edges: _Parts
) -> dict[int, dict[tuple, Measures]]:
    if not edges:
        return {}
    log, labels = tables.predictions, tables.labels
    flags = _part_flags(log.c.created_at, edges)
    query = (
        sa.select(*flags, log.c.role, log.c.version, *_arm_measures(log, labels))
        .select_from(log.outerjoin(labels, _labels_of(log, labels)))
        .where(
            log.c.model_name == model_name,
            _in_parts(log.c.created_at, [(a, b) for _, a, b in edges]),
        )
        .group_by(*flags, log.c.role, log.c.version)
    )
    return _grouped(connection, query, edges, ("role", "version"), ARM_MEASURES)


def _raw_pairs(
    connection: sa.Connection,
    tables: LogTables,
    model_name: str,
    edges: _Parts,
    pairings: Sequence[tuple[str, str]],
) -> dict[int, dict[tuple, Measures]]:
    if not edges:
        return {}
    answered, paired, joined, condition = _paired_rows(
        tables, pairings, [(a, b) for _, a, b in edges], connection.dialect.name
    )
    flags = _part_flags(answered.c.created_at, edges)
    key = (
        answered.c.role.label("answered_role"),
        answered.c.version.label("answered_version"),
        paired.c.role.label("paired_role"),
        paired.c.version.label("paired_version"),
    )
    query = (
        sa.select(*flags, *key, *_pair_measures(answered, paired, tables.labels))
        .select_from(joined)
        .where(
            answered.c.model_name == model_name,
            condition,
        )
        .group_by(*flags, *key)
    )
    return _grouped(connection, query, edges, [k.name for k in key], PAIR_MEASURES)


def _rolled(
    connection: sa.Connection,
    table: sa.Table,
    model_name: str,
    wholes: _Parts,
    key: Sequence[str],
    names: Sequence[str],
    condition: sa.ColumnElement | None = None,
) -> dict[int, dict[tuple, Measures]]:
    if not wholes:
        return {}
    flags = _part_flags(table.c.minute, wholes)
    columns = [table.c[k] for k in key]
    query = (
        sa.select(*flags, *columns, *[_sum(table.c[name]).label(name) for name in names])
        .where(
            table.c.model_name == model_name,
            _in_parts(table.c.minute, [(a, b) for _, a, b in wholes]),
            *([condition] if condition is not None else []),
        )
        .group_by(*flags, *columns)
    )
    return _grouped(connection, query, wholes, key, names)


def _rolled_arms(
    connection: sa.Connection, tables: LogTables, model_name: str, wholes: _Parts
) -> dict[int, dict[tuple, Measures]]:
    return _rolled(
        connection, tables.minute_arms, model_name, wholes, ("role", "version"), ARM_MEASURES
    )


def _rolled_pairs(
    connection: sa.Connection,
    tables: LogTables,
    model_name: str,
    wholes: _Parts,
    pairings: Sequence[tuple[str, str]],
) -> dict[int, dict[tuple, Measures]]:
    table = tables.minute_pairs
    asked = sa.or_(
        *[
            sa.and_(table.c.answered_role == mine, table.c.paired_role == theirs)
            for mine, theirs in pairings
        ]
    )
    key = ("answered_role", "answered_version", "paired_role", "paired_version")
    return _rolled(connection, table, model_name, wholes, key, PAIR_MEASURES, asked)


# Per-minute totals, kept up to date at each check.

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
# Changed minutes added up per transaction on SQLite, whose writers wait for the whole of it. On
# PostgreSQL writers wait only for the removal of the marks at its end, and one transaction adds
# up all of them: the database then joins a day's labels in one pass rather than 24.
SQLITE_REFRESH_CHUNK_MINUTES = 60
# Up to this many changed minutes, a refresh joins rows to labels by key lookups.
FEW_MINUTES = 120


def refresh_minutes(
    engine: sa.Engine, tables: LogTables, model_name: str, since: datetime, until: datetime
) -> int:
    """Add up again the per-minute totals of the minutes of `model_name` in [since, until) whose
    rows or labels changed since they were last added up (the triggers mark them); the number of
    minutes added up. A check calls it first, so it pays for what changed since the last check,
    not for the whole window; the first check after the triggers are created adds up every
    minute once."""
    marks = tables.changed_minutes
    with engine.connect() as connection:
        pending = (
            connection.execute(
                sa.select(marks.c.minute)
                .where(
                    marks.c.model_name == model_name,
                    marks.c.minute >= _minute_floor(since),
                    marks.c.minute < until,
                )
                .order_by(marks.c.minute)
            )
            .scalars()
            .all()
        )
    refreshed = 0
    size = SQLITE_REFRESH_CHUNK_MINUTES if engine.dialect.name == "sqlite" else len(pending) or 1
    for start in range(0, len(pending), size):
        chunk = pending[start : start + size]
        refreshed += _refresh_chunk(engine, tables, model_name, chunk[0], chunk[-1] + MINUTE)
    if refreshed > FEW_MINUTES and engine.dialect.name == "postgresql":
        # Many minutes added up at once (the first check, a day of labels): the totals' tables
        # changed size far faster than autovacuum looks, and the next check's small queries
        # would be planned on their old statistics.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for table in _rollups(tables):
                connection.exec_driver_sql(f"ANALYZE {_qualified(engine, table)}")
    return refreshed


def _refresh_chunk(
    engine: sa.Engine, tables: LogTables, model_name: str, since: datetime, until: datetime
) -> int:
    """Add up the marked minutes in [since, until) from the rows, in one transaction.

    A mark is removed only if its `changes` are still those read at the start: a writer that
    committed rows of a minute after its rows were added up raised the count, so its mark stays
    for the next refresh. (On PostgreSQL a writer's uncommitted mark holds a row lock, which the
    removal waits on; refreshes of one model take an advisory lock, so they do not interleave;
    SQLite's write lock, taken at the start, does both.)"""
    marks = tables.changed_minutes
    dialect = engine.dialect.name
    with engine.connect() as connection:
        if dialect == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.begin()
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                {"key": f"prediction_log_minutes:{model_name}"},
            )
            # Group a day's rows in memory, not in sort files; no JIT (seconds, nothing saved).
            connection.exec_driver_sql("SET LOCAL work_mem = '64MB'")
            connection.exec_driver_sql("SET LOCAL jit = off")
        try:
            marked = connection.execute(
                sa.select(marks.c.minute, marks.c.changes)
                .where(
                    marks.c.model_name == model_name,
                    marks.c.minute >= since,
                    marks.c.minute < until,
                )
                .order_by(marks.c.minute)
            ).all()
            if marked and dialect == "postgresql" and len(marked) <= FEW_MINUTES:
                # A few minutes' rows look up their labels by key, not by hashing every label.
                connection.exec_driver_sql("SET LOCAL enable_hashjoin = off")
                connection.exec_driver_sql("SET LOCAL enable_mergejoin = off")
            if marked:
                _add_up_minutes(connection, tables, model_name, [m for m, _ in marked])
                connection.execute(
                    marks.delete().where(
                        marks.c.model_name == model_name,
                        marks.c.minute == sa.bindparam("marked_minute"),
                        marks.c.changes == sa.bindparam("marked_changes"),
                    ),
                    [{"marked_minute": m, "marked_changes": c} for m, c in marked],
                )
        except BaseException:
            connection.exec_driver_sql("ROLLBACK") if dialect == "sqlite" else connection.rollback()
            raise
        connection.exec_driver_sql("COMMIT") if dialect == "sqlite" else connection.commit()
    return len(marked)


def _minute_runs(minutes: Sequence[datetime]) -> list[tuple[datetime, datetime]]:
    """Consecutive minutes as [since, until) spans."""
    runs: list[tuple[datetime, datetime]] = []
    for minute in minutes:
        if runs and runs[-1][1] == minute:
            runs[-1] = (runs[-1][0], minute + MINUTE)
        else:
            runs.append((minute, minute + MINUTE))
    return runs


def _add_up_minutes(
    connection: sa.Connection, tables: LogTables, model_name: str, minutes: Sequence[datetime]
) -> None:
    """Replace the per-minute totals of these minutes with sums of their rows now."""
    runs = _minute_runs(minutes)
    dialect = connection.dialect.name
    # The latency counts are keyed by arm first (a p99 reads one arm): deleted arm by arm, for
    # the arms these minutes had.
    latencies = tables.minute_latencies
    for role, version in _arms_in(connection, tables, model_name, runs):
        connection.execute(
            latencies.delete().where(
                latencies.c.model_name == model_name,
                latencies.c.role == role,
                latencies.c.version == version,
                _in_parts(latencies.c.minute, runs),
            )
        )
    for rollup in (tables.minute_arms, tables.minute_pairs):
        connection.execute(
            rollup.delete().where(
                rollup.c.model_name == model_name, _in_parts(rollup.c.minute, runs)
            )
        )
    log, labels = tables.predictions, tables.labels
    minute = _minute_of(log.c.created_at, dialect).label("minute")
    connection.execute(
        tables.minute_arms.insert().from_select(
            ["model_name", "minute", "role", "version", *ARM_MEASURES],
            sa.select(
                log.c.model_name, minute, log.c.role, log.c.version, *_arm_measures(log, labels)
            )
            .select_from(log.outerjoin(labels, _labels_of(log, labels)))
            .where(log.c.model_name == model_name, _in_parts(log.c.created_at, runs))
            .group_by(log.c.model_name, minute, log.c.role, log.c.version),
        )
    )
    answered, paired, joined, condition = _paired_rows(tables, PAIRINGS, runs, dialect)
    pair_minute = _minute_of(answered.c.created_at, dialect).label("minute")
    pair_key = (answered.c.role, answered.c.version, paired.c.role, paired.c.version)
    connection.execute(
        tables.minute_pairs.insert().from_select(
            [
                "model_name",
                "minute",
                "answered_role",
                "answered_version",
                "paired_role",
                "paired_version",
                *PAIR_MEASURES,
            ],
            sa.select(
                answered.c.model_name,
                pair_minute,
                *pair_key,
                *_pair_measures(answered, paired, labels),
            )
            .select_from(joined)
            .where(
                answered.c.model_name == model_name,
                condition,
                # Both rows in the same minute, as both in the window when read from the rows.
                pair_minute == _minute_of(paired.c.created_at, dialect),
            )
            .group_by(answered.c.model_name, pair_minute, *pair_key),
        )
    )
    bucket = _latency_bucket_sql(log.c.latency_ms).label("bucket")
    connection.execute(
        tables.minute_latencies.insert().from_select(
            ["model_name", "role", "version", "minute", "bucket", "rows"],
            sa.select(log.c.model_name, log.c.role, log.c.version, minute, bucket, sa.func.count())
            .where(
                log.c.model_name == model_name,
                log.c.error.is_(None),
                _in_parts(log.c.created_at, runs),
            )
            .group_by(log.c.model_name, log.c.role, log.c.version, minute, bucket),
        )
    )
    _add_up_hours(connection, tables, model_name, sorted({_hour_floor(m) for m in minutes}))


def _arms_in(
    connection: sa.Connection,
    tables: LogTables,
    model_name: str,
    spans: Sequence[tuple[datetime, datetime]],
) -> list[tuple[str, int]]:
    """The (role, version) arms with per-minute totals in the spans."""
    arms = tables.minute_arms
    return [
        (role, version)
        for role, version in connection.execute(
            sa.select(arms.c.role, arms.c.version)
            .where(arms.c.model_name == model_name, _in_parts(arms.c.minute, spans))
            .distinct()
        )
    ]


def _hour_floor(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _add_up_hours(
    connection: sa.Connection, tables: LogTables, model_name: str, hours: Sequence[datetime]
) -> None:
    """Replace the hourly latency counts of these hours with sums of their minutes'."""
    spans = [(hour, hour + HOUR) for hour in hours]
    minutes, hourly = tables.minute_latencies, tables.hour_latencies
    connection.execute(
        hourly.delete().where(hourly.c.model_name == model_name, _in_parts(hourly.c.hour, spans))
    )
    hour = _hour_of(minutes.c.minute, connection.dialect.name).label("hour")
    key = (minutes.c.model_name, minutes.c.role, minutes.c.version, hour, minutes.c.bucket)
    # Arm by arm: each reads its minutes by the key's range (model, role, version, minute).
    for role, version in _arms_in(connection, tables, model_name, spans):
        connection.execute(
            hourly.insert().from_select(
                ["model_name", "role", "version", "hour", "bucket", "rows"],
                sa.select(*key, sa.func.sum(minutes.c.rows))
                .where(
                    minutes.c.model_name == model_name,
                    minutes.c.role == role,
                    minutes.c.version == version,
                    _in_parts(minutes.c.minute, spans),
                )
                .group_by(*key),
            )
        )


# Latencies per minute are counted in buckets of this ratio on a log scale; a bucket stands for
# its geometric middle, within ±1 % of every latency in it.
LATENCY_BUCKET_RATIO = 1.02
# Latencies below this (ms) count as this.
LATENCY_FLOOR_MS = 0.001
# Up to this many answered rows of an arm in a window the p99 is read exactly, from the rows.
EXACT_P99_ROWS = 20_000
_BUCKETS_PER_LN = 1 / math.log(LATENCY_BUCKET_RATIO)


def latency_bucket(latency_ms: float) -> int:
    """The bucket a latency is counted in (as the database computes it)."""
    return math.floor(math.log(max(latency_ms, LATENCY_FLOOR_MS)) * _BUCKETS_PER_LN)


def _latency_bucket_sql(latency: sa.ColumnElement) -> sa.ColumnElement:
    floored = sa.case((latency > LATENCY_FLOOR_MS, latency), else_=LATENCY_FLOOR_MS)
    return sa.cast(sa.func.floor(sa.func.ln(floored) * _BUCKETS_PER_LN), sa.Integer)


def p99_from_buckets(counts: dict[int, int]) -> float | None:
    """The p99 of latencies counted per bucket, as numpy's default p99 (linear between the two
    closest ranks) of the buckets' middles: within ±1 % of the p99 of the latencies themselves
    (each middle is within that of every latency in its bucket). None for no latency."""
    ordered = sorted((bucket, rows) for bucket, rows in counts.items() if rows > 0)
    total = sum(rows for _, rows in ordered)
    if not total:
        return None
    position = 0.99 * (total - 1)
    below = int(position)
    wanted = (below, min(below + 1, total - 1))
    values: list[float] = []
    seen = 0
    for bucket, rows in ordered:
        seen += rows
        while len(values) < 2 and wanted[len(values)] < seen:
            values.append(LATENCY_BUCKET_RATIO ** (bucket + 0.5))
        if len(values) == 2:
            break
    low, high = values
    return low + (position - below) * (high - low)


def _p99_latency(
    connection: sa.Connection,
    tables: LogTables,
    model_name: str,
    arm: tuple[str, int],
    window: tuple[datetime, datetime],
    wholes: _Parts,
    edges: _Parts,
    step: int,
    answered: int,
) -> float | None:
    if not answered:
        return None
    log = tables.predictions
    role, version = arm
    rows_of_arm = sa.and_(
        log.c.model_name == model_name,
        log.c.role == role,
        log.c.version == version,
        log.c.error.is_(None),
    )
    if answered <= EXACT_P99_ROWS:
        return _p99_by_rank(connection, log, rows_of_arm, window)
    counts: dict[int, int] = {}
    edge_spans = [(a, b) for s, a, b in edges if s == step]
    if edge_spans:
        bucket = _latency_bucket_sql(log.c.latency_ms)
        for found, rows in connection.execute(
            sa.select(bucket, sa.func.count())
            .where(rows_of_arm, _in_parts(log.c.created_at, edge_spans))
            .group_by(bucket)
        ):
            counts[found] = counts.get(found, 0) + rows
    for since, until in [(a, b) for s, a, b in wholes if s == step]:
        # Whole hours from the hourly counts, the minutes around them from the minutes'.
        first, last = _hour_floor(since), _hour_floor(until)
        first = first if first == since else first + HOUR
        if first < last:
            parts = [(tables.hour_latencies, "hour", [(first, last)])]
            minute_spans = [(a, b) for a, b in ((since, first), (last, until)) if a < b]
        else:
            parts, minute_spans = [], [(since, until)]
        if minute_spans:
            parts.append((tables.minute_latencies, "minute", minute_spans))
        for table, column, spans in parts:
            # One range per query: an index range scan each, where an OR of ranges may be read
            # as a scan of the arm's every minute.
            for a, b in spans:
                for found, rows in connection.execute(
                    sa.select(table.c.bucket, sa.func.sum(table.c.rows))
                    .where(
                        table.c.model_name == model_name,
                        table.c.role == role,
                        table.c.version == version,
                        table.c[column] >= a,
                        table.c[column] < b,
                    )
                    .group_by(table.c.bucket)
                ):
                    counts[found] = counts.get(found, 0) + int(rows)
    return p99_from_buckets(counts)


def _p99_by_rank(
    connection: sa.Connection,
    log: sa.Table,
    rows_of_arm: sa.ColumnElement,
    window: tuple[datetime, datetime],
) -> float | None:
    """The p99 of an arm's answered latencies as numpy's default computes it (linear between
    the two closest ranks), from those two rows; ranked from the top, so the database keeps
    only the top 1 % of the rows in its sort, not all of them."""
    inside = sa.and_(rows_of_arm, log.c.created_at >= window[0], log.c.created_at < window[1])
    count = connection.execute(sa.select(sa.func.count()).where(inside)).scalar_one()
    if not count:
        return None
    position = 0.99 * (count - 1)
    below = int(position)
    from_top = count - 1 - below
    query = (
        sa.select(log.c.latency_ms)
        .where(inside)
        .order_by(log.c.latency_ms.desc())
        .offset(max(0, from_top - 1))
        .limit(2 if from_top else 1)
    )
    ranked = [value for (value,) in connection.execute(query)]
    if len(ranked) == 1:
        return float(ranked[0])
    high, low = ranked
    return float(low + (position - below) * (high - low))
