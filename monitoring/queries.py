"""Read-side SQL over what the project records; every time series is aggregated by the database
(GROUP BY time bucket), so a year of prediction log costs one indexed scan, not a Python loop."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache

import sqlalchemy as sa

from gateway.predlog import LogTables, create_engine, log_tables
from registry.ledger import engine_with_tables
from registry.validation_records import metadata as validation_metadata
from registry.validation_records import validations

CHAMPION_ROLE = "champion"


@dataclass(frozen=True)
class PredictionLog:
    """The gateway's prediction log and labels, as the view reads them."""

    engine: sa.Engine
    tables: LogTables


@cache
def prediction_log(url: str, schema: str | None = None) -> PredictionLog:
    """The prediction log at `url` (the gateway's --log-url), one engine per URL and process."""
    return PredictionLog(create_engine(url), log_tables(schema))


def has_log(log: PredictionLog) -> bool:
    """Whether the log's tables exist yet (a gateway creates them when it first starts)."""
    inspector = sa.inspect(log.engine)
    schema = log.tables.predictions.schema
    return all(
        inspector.has_table(t.name, schema=schema)
        for t in (log.tables.predictions, log.tables.labels)
    )


def _bucket(moment: sa.ColumnElement, dialect: str, bucket_s: int, text: bool) -> sa.ColumnElement:
    """The index of the `bucket_s`-second bucket holding `moment` (a timestamp, or ISO-8601 text)."""
    if dialect == "sqlite":
        # `//` is integer division here; SQLAlchemy's `/` would divide as numeric.
        return sa.cast(sa.func.strftime("%s", moment), sa.Integer) // bucket_s
    if text:
        moment = sa.cast(moment, sa.DateTime(timezone=True))
    return sa.func.floor(sa.extract("epoch", moment) / bucket_s)


def _with_labels(log: PredictionLog) -> sa.FromClause:
    """The log's rows joined to their labels (same model, request and row)."""
    predictions, labels = log.tables.predictions, log.tables.labels
    return predictions.join(
        labels,
        sa.and_(
            labels.c.model_name == predictions.c.model_name,
            labels.c.request_id == predictions.c.request_id,
            labels.c.row_index == predictions.c.row_index,
        ),
    )


def _labeled_champion_rows(
    log: PredictionLog, threshold: float
) -> tuple[sa.FromClause, sa.ColumnElement]:
    predictions, labels = log.tables.predictions, log.tables.labels
    joined = _with_labels(log)
    predicted_class = predictions.c.predicted_class
    correct = sa.case(
        # A multiclass answer is right when its predicted class is the labeled class.
        (sa.and_(predicted_class.is_not(None), predicted_class == labels.c.label_class), 1),
        (predicted_class.is_not(None), 0),
        (sa.and_(predictions.c.prediction >= threshold, labels.c.label >= threshold), 1),
        (sa.and_(predictions.c.prediction < threshold, labels.c.label < threshold), 1),
        else_=0,
    )
    return joined, correct


def champion_accuracy(
    log: PredictionLog,
    model_name: str,
    *,
    since: datetime,
    until: datetime,
    bucket_s: int,
    threshold: float = 0.5,
) -> list[tuple[float, int, int]]:
    """Per time bucket of [since, until): (bucket index, labeled rows, correct rows) of the rows
    the champion answered; a row is correct when its score is on the label's side of `threshold`."""
    predictions = log.tables.predictions
    joined, correct = _labeled_champion_rows(log, threshold)
    bucket = _bucket(predictions.c.created_at, log.engine.dialect.name, bucket_s, text=False)
    query = (
        sa.select(bucket.label("bucket"), sa.func.count(), sa.func.sum(correct))
        .select_from(joined)
        .where(
            predictions.c.model_name == model_name,
            predictions.c.role == CHAMPION_ROLE,
            predictions.c.error.is_(None),
            predictions.c.created_at >= since,
            predictions.c.created_at < until,
        )
        .group_by("bucket")
    )
    with log.engine.connect() as connection:
        return [(float(b), int(n), int(c or 0)) for b, n, c in connection.execute(query)]


def champion_accuracy_by_model(
    log: PredictionLog, *, since: datetime, until: datetime, threshold: float = 0.5
) -> dict[str, tuple[int, int]]:
    """Per model: (labeled rows, correct rows) the champion answered in [since, until)."""
    predictions = log.tables.predictions
    joined, correct = _labeled_champion_rows(log, threshold)
    query = (
        sa.select(predictions.c.model_name, sa.func.count(), sa.func.sum(correct))
        .select_from(joined)
        .where(
            predictions.c.role == CHAMPION_ROLE,
            predictions.c.error.is_(None),
            predictions.c.created_at >= since,
            predictions.c.created_at < until,
        )
        .group_by(predictions.c.model_name)
    )
    with log.engine.connect() as connection:
        return {name: (int(n), int(c or 0)) for name, n, c in connection.execute(query)}


def _champion_errors_query(log: PredictionLog) -> tuple[sa.FromClause, list[sa.ColumnElement]]:
    """The rows the champion answered joined to their labels, and per row its error's sums: the
    absolute error, its square and the square's square (so a mean's interval can be had)."""
    predictions, labels = log.tables.predictions, log.tables.labels
    joined = _with_labels(log)
    error = predictions.c.prediction - labels.c.label
    squared = error * error
    sums = [
        sa.func.count(),
        sa.func.sum(sa.func.abs(error)),
        sa.func.sum(squared),
        sa.func.sum(squared * squared),
    ]
    return joined, sums


def _champion_answered(log: PredictionLog, since: datetime, until: datetime) -> list:
    predictions, labels = log.tables.predictions, log.tables.labels
    return [
        predictions.c.role == CHAMPION_ROLE,
        predictions.c.error.is_(None),
        predictions.c.prediction.is_not(None),
        labels.c.label.is_not(None),
        predictions.c.created_at >= since,
        predictions.c.created_at < until,
    ]


def champion_errors(
    log: PredictionLog, model_name: str, *, since: datetime, until: datetime, bucket_s: int
) -> list[tuple[float, int, float, float, float]]:
    """Per time bucket of [since, until): (bucket index, labeled rows, and the sums of their
    absolute errors, squared errors and squared errors' squares) of the rows the champion
    answered: a regressor's live error, where accuracy means nothing."""
    predictions = log.tables.predictions
    joined, sums = _champion_errors_query(log)
    bucket = _bucket(predictions.c.created_at, log.engine.dialect.name, bucket_s, text=False)
    query = (
        sa.select(bucket.label("bucket"), *sums)
        .select_from(joined)
        .where(predictions.c.model_name == model_name, *_champion_answered(log, since, until))
        .group_by("bucket")
    )
    with log.engine.connect() as connection:
        return [
            (float(b), int(n), float(a or 0), float(q or 0), float(qq or 0))
            for b, n, a, q, qq in connection.execute(query)
        ]


def champion_errors_by_model(
    log: PredictionLog, *, since: datetime, until: datetime
) -> dict[str, tuple[int, float, float, float]]:
    """Per model: (labeled rows, sums of absolute errors, squared errors and their squares) of
    the rows the champion answered in [since, until)."""
    predictions = log.tables.predictions
    joined, sums = _champion_errors_query(log)
    query = (
        sa.select(predictions.c.model_name, *sums)
        .select_from(joined)
        .where(*_champion_answered(log, since, until))
        .group_by(predictions.c.model_name)
    )
    with log.engine.connect() as connection:
        return {
            name: (int(n), float(a or 0), float(q or 0), float(qq or 0))
            for name, n, a, q, qq in connection.execute(query)
        }


def _validations_engine(ledger_url: str) -> sa.Engine:
    return engine_with_tables(ledger_url, validation_metadata)


def _validated_between(engine: sa.Engine, since: datetime, until: datetime) -> sa.ColumnElement:
    start = _bucket(validations.c.validated_at, engine.dialect.name, 1, text=True)
    return sa.and_(start >= since.timestamp(), start < until.timestamp())


def validation_buckets(
    ledger_url: str, model_name: str, *, since: datetime, until: datetime, bucket_s: int
) -> list[tuple[float, int, int]]:
    """Per time bucket of [since, until): (bucket index, windows validated, windows passed)."""
    engine = _validations_engine(ledger_url)
    bucket = _bucket(validations.c.validated_at, engine.dialect.name, bucket_s, text=True)
    passed = sa.func.sum(sa.case((validations.c.passed, 1), else_=0))
    query = (
        sa.select(bucket.label("bucket"), sa.func.count(), passed)
        .where(validations.c.model_name == model_name, _validated_between(engine, since, until))
        .group_by("bucket")
    )
    with engine.connect() as connection:
        return [(float(b), int(n), int(p or 0)) for b, n, p in connection.execute(query)]


def validation_totals_by_model(
    ledger_url: str, *, since: datetime, until: datetime
) -> dict[str, tuple[int, int]]:
    """Per model: (windows validated, windows passed) in [since, until)."""
    engine = _validations_engine(ledger_url)
    passed = sa.func.sum(sa.case((validations.c.passed, 1), else_=0))
    query = (
        sa.select(validations.c.model_name, sa.func.count(), passed)
        .where(_validated_between(engine, since, until))
        .group_by(validations.c.model_name)
    )
    with engine.connect() as connection:
        return {name: (int(n), int(p or 0)) for name, n, p in connection.execute(query)}


def pending_approvals(approval_db_url: str, model_names: Sequence[str]) -> list[object]:
    """The approval requests still waiting for an answer, of the given models, oldest first."""
    store = _decision_store(approval_db_url)
    requests = store.requests
    query = (
        sa.select(requests.c.request_id)
        .where(requests.c.status == "pending", requests.c.model.in_(list(model_names)))
        .order_by(requests.c.created_at)
    )
    with store.engine.connect() as connection:
        ids = list(connection.scalars(query))
    found = (store.get(request_id) for request_id in ids)
    return [stored for stored in found if stored is not None]


@cache
def _decision_store(url: str) -> object:
    from approval.store import DecisionStore

    store = DecisionStore.from_url(url)
    store.create_tables()
    return store
