"""The prediction log and its labels in SQL: the batch writer, feedback, and the per-arm reader.

Tables (names fixed, schema configurable):

- `prediction_log`: one row per scored row, answered (`champion`, `canary`) or not (`shadow`);
  a request that failed on its arm is one row with `error` set and no prediction.
- `prediction_labels`: ground truth by (model_name, request_id, row_index); written by the feedback
  endpoint or loaded in bulk by any job, and joined to the log by request id. The first label of a
  row stands; `prediction_label_corrections` records each deliberate overwrite.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class LogTables:
    """The two tables, bound to one metadata (and schema)."""

    metadata: sa.MetaData
    predictions: sa.Table
    labels: sa.Table
    corrections: sa.Table


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
        sa.Column("error", sa.String(ERROR_LENGTH)),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("model_name", "request_id", "row_index", "role"),
        sa.Index("ix_prediction_log_model_time", "model_name", "created_at"),
    )
    labels = sa.Table(
        "prediction_labels",
        metadata,
        sa.Column("model_name", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("row_index", sa.Integer, primary_key=True, default=0),
        sa.Column("label", sa.Float, nullable=False),
        sa.Column("labeled_at", sa.DateTime(timezone=True), nullable=False),
    )
    corrections = sa.Table(
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
    return LogTables(
        metadata=metadata, predictions=predictions, labels=labels, corrections=corrections
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
    """An engine for the log database; SQLite waits on a busy file rather than failing."""
    parsed = database_url(url)
    if parsed.get_backend_name() == "sqlite":
        return sa.create_engine(parsed, connect_args={"timeout": 30})
    return sa.create_engine(parsed, pool_pre_ping=True)


class PredictionLogWriter:
    """Collects log entries from request threads and writes them in batches from one thread,
    masking each model's features as `masks` say (the masking runs here, off the request path).

    `submit` only appends to a queue, so a slow or unreachable database never slows an answer; a
    failed write is retried with backoff and its rows kept (up to `max_pending_rows`, then the
    oldest are dropped and counted). `close` writes everything still pending.
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
        self.rows_written = 0
        self.rows_dropped = 0
        self.failed_writes = 0

    def start(self) -> None:
        """Create the tables if needed and start the writer thread."""
        self._tables.metadata.create_all(self._engine)
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

    def _write(self, batch: Iterable[LogEntry]) -> None:
        rows = [
            row for entry in batch for row in log_rows(entry, self._masks.get(entry.model_name))
        ]
        table = self._tables.predictions
        try:
            with self._engine.begin() as connection:
                connection.execute(table.insert(), rows)
        except (sa.exc.IntegrityError, sa.exc.DataError):
            # A batch whose commit succeeded but whose acknowledgement was lost comes back here
            # on retry: write row by row so the rows already there are kept once, not twice. A
            # row the database refuses as such (DataError) is dropped and counted, so it cannot
            # hold back every row behind it.
            for row in rows:
                try:
                    with self._engine.begin() as connection:
                        connection.execute(table.insert(), [row])
                except sa.exc.IntegrityError:
                    continue
                except sa.exc.DataError as error:
                    self.rows_dropped += 1
                    logger.error(
                        "prediction log: dropped a row of request %s the database refuses: %s",
                        shown(row["request_id"]),
                        shown(str(error), 200),
                    )


@dataclass(frozen=True)
class Label:
    """The ground truth of one logged row; `overwrite` marks a deliberate correction."""

    request_id: str
    label: float
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
    existing: dict[tuple[str, int], float] = {}
    ids = sorted({label.request_id for label in labels})
    for start in range(0, len(ids), 500):
        found = connection.execute(
            sa.select(table.c.request_id, table.c.row_index, table.c.label).where(
                table.c.model_name == model_name, table.c.request_id.in_(ids[start : start + 500])
            )
        )
        existing.update({(r.request_id, r.row_index): r.label for r in found})
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
                    "label": label.label,
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
            .values(label=label.label, labeled_at=at)
        )
    if corrections:
        connection.execute(
            tables.corrections.insert(),
            [
                {
                    "model_name": model_name,
                    "request_id": label.request_id,
                    "row_index": label.row_index,
                    "previous_label": previous,
                    "label": label.label,
                    "corrected_at": at,
                    "corrected_by": by,
                }
                for label, previous in corrections
            ],
        )
    return LabelsStored(stored=len(new), unchanged=unchanged, corrected=len(corrections))


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

    The count fields carry the names of `promotion.rollout.ArmStats`; `correct` counts labeled rows
    whose score falls on the label's side of `threshold`. `scores` and `labels` are the labeled
    rows themselves, for metrics a count cannot give (e.g. ROC AUC).
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


@dataclass(frozen=True)
class ShadowPairs:
    """The shadow against the answering arm on the same rows (joined by request id)."""

    shadow_version: int
    compared: int
    agreed: int
    labeled: int
    answered_correct: int
    shadow_correct: int
    both_correct: int


def _window_rows(
    engine: sa.Engine,
    tables: LogTables,
    model_name: str,
    since: datetime | None,
    until: datetime | None,
) -> list[sa.Row]:
    log, labels = tables.predictions, tables.labels
    joined = log.outerjoin(
        labels,
        sa.and_(
            labels.c.model_name == log.c.model_name,
            labels.c.request_id == log.c.request_id,
            labels.c.row_index == log.c.row_index,
        ),
    )
    query = (
        sa.select(
            log.c.request_id,
            log.c.row_index,
            log.c.role,
            log.c.version,
            log.c.prediction,
            log.c.latency_ms,
            log.c.error,
            labels.c.label,
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


def arm_windows(
    engine: sa.Engine,
    tables: LogTables,
    model_name: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    threshold: float = 0.5,
) -> list[ArmWindow]:
    """Per arm, what it answered in [since, until) and how it fared against the labels known.

    Shadow rows share the request id of the answered row, so one label scores both arms: that is
    what lets a rollout compare a shadow with the champion on the same traffic.
    """
    grouped: dict[tuple[str, int], list] = {}
    for row in _window_rows(engine, tables, model_name, since, until):
        grouped.setdefault((row.role, row.version), []).append(row)
    windows = []
    for (role, version), rows in sorted(grouped.items()):
        labeled = [r for r in rows if r.error is None and r.label is not None]
        scores = np.asarray([r.prediction for r in labeled], dtype=float)
        truth = np.asarray([r.label for r in labeled], dtype=float)
        latencies = [r.latency_ms for r in rows if r.error is None]
        windows.append(
            ArmWindow(
                role=role,
                version=version,
                requests=len({r.request_id for r in rows}),
                errors=len({r.request_id for r in rows if r.error is not None}),
                labeled=len(labeled),
                correct=int(((scores >= threshold) == (truth >= threshold)).sum()),
                p99_latency_ms=float(np.percentile(latencies, 99)) if latencies else None,
                scores=scores,
                labels=truth,
            )
        )
    return windows


def shadow_pairs(
    engine: sa.Engine,
    tables: LogTables,
    model_name: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    threshold: float = 0.5,
) -> list[ShadowPairs]:
    """Per shadow version, its scores paired with the answered scores of the same rows."""
    answered: dict[tuple[str, int], tuple[float, float | None]] = {}
    shadows: dict[int, list[tuple[tuple[str, int], float, float | None]]] = {}
    for row in _window_rows(engine, tables, model_name, since, until):
        if row.error is not None:
            continue
        key = (row.request_id, row.row_index)
        if row.role == "shadow":
            shadows.setdefault(row.version, []).append((key, row.prediction, row.label))
        else:
            answered[key] = (row.prediction, row.label)
    pairs = []
    for version, rows in sorted(shadows.items()):
        compared = agreed = labeled = answered_correct = shadow_correct = both = 0
        for key, shadow_score, label in rows:
            if key not in answered:
                continue
            answered_score = answered[key][0]
            compared += 1
            agreed += (answered_score >= threshold) == (shadow_score >= threshold)
            if label is None:
                continue
            labeled += 1
            a_ok = (answered_score >= threshold) == (label >= threshold)
            s_ok = (shadow_score >= threshold) == (label >= threshold)
            answered_correct += a_ok
            shadow_correct += s_ok
            both += a_ok and s_ok
        pairs.append(
            ShadowPairs(
                shadow_version=version,
                compared=compared,
                agreed=int(agreed),
                labeled=labeled,
                answered_correct=int(answered_correct),
                shadow_correct=int(shadow_correct),
                both_correct=int(both),
            )
        )
    return pairs
