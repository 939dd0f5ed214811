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

Per task: `prediction` is the positive-class probability (binary), the value (regression) or the
probability of the predicted class (multiclass, with `predicted_class` and every class's
`probabilities`). A label is a number in `label` (binary 0/1, regression any finite number) or a
class name in `label_class` (multiclass). Tables written before a column existed get it at start
(`ensure_tables`), so a database of an older gateway keeps its rows and keeps working.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import signal
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import sqlalchemy as sa

from gateway.batching import (
    ERROR_LENGTH,
    FeatureMask,
    LogEntry,
    flush_due,
    log_rows,
    overflow,
    retry_delay,
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
    return LogTables(
        metadata=metadata,
        predictions=predictions,
        labels=labels,
        corrections=corrections,
        refresh_requests=refresh_requests,
    )


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


def database_url(url: str) -> sa.URL:
    """The URL with the project's PostgreSQL driver (psycopg2) when none is named.

    SQLAlchemy 2.1 reads a bare `postgresql://` as psycopg 3, which the project does not install.
    """
    parsed = sa.make_url(url)
    if parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg2")
    return parsed


def create_engine(url: str) -> sa.Engine:
    """An engine for the log database; SQLite waits on a busy file rather than failing."""
    parsed = database_url(url)
    if parsed.get_backend_name() == "sqlite":
        return sa.create_engine(parsed, connect_args={"timeout": 30})
    return sa.create_engine(parsed, pool_pre_ping=True)


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
        self._pending: deque[tuple[float, LogEntry]] = deque()
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

    def submit(self, entry: LogEntry) -> None:
        """Queue one scored request for writing; never blocks on the database."""
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
            for _ in range(dropped):
                _, entry = self._pending.popleft()
                self._pending_rows -= entry.n_rows
                self.rows_dropped += entry.n_rows
        if dropped:
            logger.error("prediction log: dropped %d requests while the database is down", dropped)

    def _write(self, batch: list[LogEntry]) -> None:
        if self._child is not None:
            self.rows_dropped += self._child.write(batch)
            return
        self.rows_dropped += write_entries(
            self._engine, self._tables.predictions, batch, self._masks
        )


def write_entries(
    engine: sa.Engine, table: sa.Table, batch: Iterable[LogEntry], masks: dict[str, FeatureMask]
) -> int:
    """Insert the batch's rows in one transaction; the number of rows the database refused as
    such (dropped, each logged). Raises SQLAlchemyError when the write should be retried."""
    rows = [row for entry in batch for row in log_rows(entry, masks.get(entry.model_name))]
    try:
        with engine.begin() as connection:
            connection.execute(table.insert(), rows)
        return 0
    except (sa.exc.IntegrityError, sa.exc.DataError):
        # A batch whose commit succeeded but whose acknowledgement was lost comes back here on
        # retry: write row by row so the rows already there are kept once, not twice. A row the
        # database refuses as such (DataError) is dropped and counted, so it cannot hold back
        # every row behind it.
        dropped = 0
        for row in rows:
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

    def write(self, batch: list[LogEntry]) -> int:
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
    """For each id the log holds as answered (champion or canary, no error), its row count."""
    log = tables.predictions
    answered: dict[str, int] = {}
    with engine.connect() as connection:
        for start in range(0, len(request_ids), 500):
            rows = connection.execute(
                sa.select(log.c.request_id, sa.func.count())
                .where(
                    log.c.model_name == model_name,
                    log.c.request_id.in_(request_ids[start : start + 500]),
                    log.c.role.in_(ANSWERING_ROLES),
                    log.c.error.is_(None),
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
    (with `pairs`) each pair's, computed by GROUP BY queries in the database: no logged row is
    brought into Python, so a check costs the same memory whatever the traffic.

    `pairs` names the (answered role, paired role) pairs to add up, e.g. only
    `[("canary", "champion_paired")]` for a canary; none for `()`.

    Outcomes are CASE expressions per task, as `promotion.rollout.row_outcomes` computes them.
    Every window is added up in one pass (grouped by which window bounds a row is past), so the
    labels are joined once, not once per window. The p99 latency is exact (numpy's default,
    linear between the two closest ranks), from the two rows ranked around it: ORDER BY
    latency DESC LIMIT 2 OFFSET k per arm and window, a sort that keeps only the top 1 %.
    """
    _check_windows(windows)
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; use {', '.join(TASKS)}")
    if not windows:
        return []
    with engine.connect() as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            # Compiling these short aggregate queries (JIT) costs seconds and saves nothing.
            connection.exec_driver_sql("SET LOCAL jit = off")
        arms = _arm_totals(connection, tables, model_name, windows, task)
        paired = _pair_totals(connection, tables, model_name, windows, task, pairs) if pairs else {}
    return [
        WindowTotals(since, until, tuple(arms.get(step, ())), tuple(paired.get(step, ())))
        for step, (since, until) in enumerate(windows)
    ]


def _check_windows(windows: Sequence[tuple[datetime, datetime]]) -> None:
    for step, (since, until) in enumerate(windows):
        if since > until:
            raise ValueError(f"window {step}: starts at {since} after it ends at {until}")
        if step and since < windows[step - 1][1]:
            raise ValueError(f"window {step}: starts at {since}, before window {step - 1} ends")


def _in_window(log: sa.Table | sa.sql.Alias, window: tuple[datetime, datetime]) -> sa.ColumnElement:
    return sa.and_(log.c.created_at >= window[0], log.c.created_at < window[1])


def _window_flags(
    log: sa.Table | sa.sql.Alias, windows: Sequence[tuple[datetime, datetime]]
) -> list[sa.ColumnElement]:
    """Per window, whether a row is past its start and before its end: grouped by, these put
    each row in its window in one pass. (Booleans, so the planner knows they have two values and
    groups by hashing.)"""
    return [
        flag.label(f"w{step}_{side}")
        for step, (since, until) in enumerate(windows)
        for side, flag in (
            ("since", log.c.created_at >= since),
            ("until", log.c.created_at < until),
        )
    ]


def _step_of(row: sa.Row, count: int) -> int | None:
    """The window a grouped row falls in, from its flags; None between windows."""
    return next(
        (
            step
            for step in range(count)
            if getattr(row, f"w{step}_since") and getattr(row, f"w{step}_until")
        ),
        None,
    )


def _in_windows(
    log: sa.Table | sa.sql.Alias, windows: Sequence[tuple[datetime, datetime]]
) -> sa.ColumnElement:
    return _in_window(log, (windows[0][0], windows[-1][1]))


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


def _sql_answer(log: sa.Table | sa.sql.Alias, task: str) -> sa.ColumnElement:
    return log.c.predicted_class if task == "multiclass" else log.c.prediction


def _sql_outcome(task: str, answer: sa.ColumnElement, truth: sa.ColumnElement) -> sa.ColumnElement:
    """`promotion.rollout.row_outcomes` of one row, in SQL."""
    if task == "regression":
        return (answer - truth) * (answer - truth)
    if task == "binary":
        same_side = sa.or_(sa.and_(answer >= 0.5, truth >= 0.5), sa.and_(answer < 0.5, truth < 0.5))
        return sa.case((same_side, 1.0), else_=0.0)
    return sa.case((answer == truth, 1.0), else_=0.0)


def _labels_of(log: sa.Table | sa.sql.Alias, labels: sa.Table) -> sa.ColumnElement:
    return sa.and_(
        labels.c.model_name == log.c.model_name,
        labels.c.request_id == log.c.request_id,
        labels.c.row_index == log.c.row_index,
    )


def _sum(value: sa.ColumnElement) -> sa.ColumnElement:
    return sa.func.coalesce(sa.func.sum(value), 0)


def _arm_totals(
    connection: sa.Connection,
    tables: LogTables,
    model_name: str,
    windows: Sequence[tuple[datetime, datetime]],
    task: str,
) -> dict[int, list[ArmTotals]]:
    log, labels = tables.predictions, tables.labels
    truth = _sql_truth(labels, task)
    answered = log.c.error.is_(None)
    labeled = sa.and_(answered, truth.is_not(None))
    outcome = sa.case((labeled, _sql_outcome(task, _sql_answer(log, task), truth)))
    first_row = log.c.row_index == 0
    flags = _window_flags(log, windows)
    query = (
        sa.select(
            *flags,
            log.c.role,
            log.c.version,
            # The writer logs every request, failed or not, with a row 0: counting those counts
            # requests without the cost of COUNT(DISTINCT request_id).
            _sum(sa.case((first_row, 1), else_=0)).label("requests"),
            _sum(sa.case((sa.and_(first_row, log.c.error.is_not(None)), 1), else_=0)).label(
                "errors"
            ),
            _sum(sa.case((labeled, 1), else_=0)).label("labeled"),
            _sum(outcome).label("outcome_sum"),
            _sum(outcome * outcome).label("outcome_sq_sum"),
            _sum(sa.case((answered, 1), else_=0)).label("answered_rows"),
        )
        .select_from(log.outerjoin(labels, _labels_of(log, labels)))
        .where(log.c.model_name == model_name, _in_windows(log, windows))
        .group_by(*flags, log.c.role, log.c.version)
    )
    totals: dict[int, list[ArmTotals]] = {}
    for row in connection.execute(query).all():
        step = _step_of(row, len(windows))
        if step is None:
            continue
        totals.setdefault(step, []).append(
            ArmTotals(
                role=row.role,
                version=row.version,
                requests=int(row.requests),
                errors=int(row.errors),
                labeled=int(row.labeled),
                correct=0 if task == "regression" else int(round(row.outcome_sum)),
                outcome_sum=float(row.outcome_sum),
                outcome_sq_sum=float(row.outcome_sq_sum),
                p99_latency_ms=_p99_by_rank(
                    connection,
                    log,
                    model_name,
                    row.role,
                    row.version,
                    windows[step],
                    int(row.answered_rows),
                ),
            )
        )
    for found in totals.values():
        found.sort(key=lambda arm: (arm.role, arm.version))
    return totals


def _p99_by_rank(
    connection: sa.Connection,
    log: sa.Table,
    model_name: str,
    role: str,
    version: int,
    window: tuple[datetime, datetime],
    count: int,
) -> float | None:
    """The p99 of an arm's answered latencies as numpy's default computes it (linear between
    the two closest ranks), from those two rows; ranked from the top, so the database keeps
    only the top 1 % of the rows in its sort, not all of them."""
    if not count:
        return None
    position = 0.99 * (count - 1)
    below = int(position)
    from_top = count - 1 - below
    query = (
        sa.select(log.c.latency_ms)
        .where(
            log.c.model_name == model_name,
            log.c.role == role,
            log.c.version == version,
            log.c.error.is_(None),
            _in_window(log, window),
        )
        .order_by(log.c.latency_ms.desc())
        .offset(max(0, from_top - 1))
        .limit(2 if from_top else 1)
    )
    ranked = [value for (value,) in connection.execute(query)]
    if len(ranked) == 1:
        return float(ranked[0])
    high, low = ranked
    return float(low + (position - below) * (high - low))


def _pair_totals(
    connection: sa.Connection,
    tables: LogTables,
    model_name: str,
    windows: Sequence[tuple[datetime, datetime]],
    task: str,
    pairings: Sequence[tuple[str, str]],
) -> dict[int, list[PairTotals]]:
    log, labels = tables.predictions, tables.labels
    answered, paired = log.alias("answered"), log.alias("paired")
    truth = _sql_truth(labels, task)
    labeled = truth.is_not(None)
    mine, theirs = _sql_answer(answered, task), _sql_answer(paired, task)
    answered_outcome = sa.case((labeled, _sql_outcome(task, mine, truth)))
    paired_outcome = sa.case((labeled, _sql_outcome(task, theirs, truth)))
    difference = answered_outcome - paired_outcome
    agreed = sa.literal(0) if task == "regression" else _sql_outcome(task, theirs, mine)
    flags = _window_flags(answered, windows)
    group = (*flags, answered.c.role, answered.c.version, paired.c.role, paired.c.version)
    query = (
        sa.select(
            *flags,
            answered.c.role.label("answered_role"),
            answered.c.version.label("answered_version"),
            paired.c.role.label("paired_role"),
            paired.c.version.label("paired_version"),
            sa.func.count().label("compared"),
            _sum(agreed).label("agreed"),
            _sum(sa.case((labeled, 1), else_=0)).label("labeled"),
            _sum(answered_outcome).label("answered_outcome_sum"),
            _sum(paired_outcome).label("paired_outcome_sum"),
            _sum(answered_outcome * paired_outcome).label("both_outcome_sum"),
            _sum(difference).label("difference_sum"),
            _sum(difference * difference).label("difference_sq_sum"),
        )
        .select_from(
            answered.join(
                paired,
                sa.and_(
                    paired.c.model_name == answered.c.model_name,
                    paired.c.request_id == answered.c.request_id,
                    paired.c.row_index == answered.c.row_index,
                ),
            ).outerjoin(labels, _labels_of(answered, labels))
        )
        .where(
            answered.c.model_name == model_name,
            sa.or_(
                *[
                    sa.and_(answered.c.role == mine, paired.c.role == theirs)
                    for mine, theirs in pairings
                ]
            ),
            answered.c.error.is_(None),
            paired.c.error.is_(None),
            # A copy carries its request's arrival time: both rows are in the window.
            _in_windows(answered, windows),
            _in_windows(paired, windows),
        )
        .group_by(*group)
    )
    classified = task != "regression"
    totals: dict[int, list[PairTotals]] = {}
    for row in connection.execute(query).all():
        step = _step_of(row, len(windows))
        if step is None:
            continue
        totals.setdefault(step, []).append(
            PairTotals(
                answered_role=row.answered_role,
                answered_version=row.answered_version,
                paired_role=row.paired_role,
                paired_version=row.paired_version,
                compared=int(row.compared),
                agreed=int(round(row.agreed)),
                labeled=int(row.labeled),
                answered_correct=int(round(row.answered_outcome_sum)) if classified else 0,
                paired_correct=int(round(row.paired_outcome_sum)) if classified else 0,
                both_correct=int(round(row.both_outcome_sum)) if classified else 0,
                answered_outcome_sum=float(row.answered_outcome_sum),
                paired_outcome_sum=float(row.paired_outcome_sum),
                difference_sum=float(row.difference_sum),
                difference_sq_sum=float(row.difference_sq_sum),
            )
        )
    for found in totals.values():
        found.sort(
            key=lambda p: (p.answered_role, p.answered_version, p.paired_role, p.paired_version)
        )
    return totals
