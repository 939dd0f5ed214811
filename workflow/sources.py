"""Read a time window of rows from a policy's SQL source.

Errors come in two kinds. A `SourceError` is bad input a retry cannot cure (a database file or
database that does not exist, an unknown host, a refused login, a failing query, a missing table
or column, timestamps that are not timestamps): it names the policy field and the masked URL, and
the task fails at once. A `SourceUnavailable` is a failure that may pass (a refused or dropped
connection, a timeout, a locked file, a resolver that cannot answer now): it is retried here with
backoff and then by the task's retries, and its message names the same things.
"""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import URL

from policies.schema import Source
from registry.retry import is_transient, retry_transient
from registry.settings import masked

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Airflow connection types whose names differ from SQLAlchemy dialect names.
_DIALECTS = {"postgres": "postgresql", "mysql": "mysql", "sqlite": "sqlite", "mssql": "mssql"}

# A resolver that cannot answer now (EAI_AGAIN) may answer later; "Name or service not known" is
# the resolver's definite answer about a misspelt host, so that one fails at once.
_TRANSIENT_SOURCE_HINTS = ("temporary failure in name resolution",)

# What an ISO-8601 timestamp text starts with; SQLite keeps timestamps as text, compared as text.
_ISO_PREFIX = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*"


class SourceError(ValueError):
    """The source of a policy cannot be used as configured; the message names the field and URL."""


class SourceUnavailable(RuntimeError):
    """The source could not be read for a reason that may pass; the task's retries try again."""


@dataclass(frozen=True)
class Window:
    """A half-open time interval [start, end) of source rows, in UTC."""

    start: datetime
    end: datetime

    def describe(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def resolve_url(source: Source, environ: dict[str, str] | None = None) -> str:
    """The SQLAlchemy URL of a source: its `url` with ${VAR} expanded, or its Airflow connection."""
    environ = dict(os.environ) if environ is None else environ
    if source.url is not None:
        missing = [name for name in _ENV_REFERENCE.findall(source.url) if name not in environ]
        if missing:
            raise SourceError(
                f"source.url refers to unset environment variable(s): {', '.join(missing)}"
            )
        return _ENV_REFERENCE.sub(lambda match: environ[match.group(1)], source.url)
    return _url_from_airflow_connection(str(source.conn_id))


def _url_from_airflow_connection(conn_id: str) -> str:
    from airflow.sdk import BaseHook

    try:
        connection = BaseHook.get_connection(conn_id)
    except Exception as error:  # Airflow raises its own not-found type per version
        raise SourceError(
            f"source.conn_id: Airflow connection {conn_id!r} not found ({error})"
        ) from error
    dialect = _DIALECTS.get(connection.conn_type or "", connection.conn_type)
    if not dialect:
        raise SourceError(f"source.conn_id: connection {conn_id!r} has no connection type")
    return URL.create(
        drivername=dialect,
        username=connection.login or None,
        password=connection.password or None,
        host=connection.host or None,
        port=connection.port,
        database=connection.schema or None,
    ).render_as_string(hide_password=False)


def describe_url(url: str) -> str:
    """A URL safe to record as lineage or show in an error: the password is masked."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return masked(url)


def _origin(source: Source) -> str:
    return "source.url" if source.url is not None else f"source.conn_id {source.conn_id!r}"


def read_window(url: str, source: Source, window: Window) -> pd.DataFrame:
    """Rows of the source whose time column falls in the window, oldest first.

    The window is cut exactly [start, end) in UTC on every dialect: timestamps stored as text with
    or without fractional seconds, with a `T` or a space, with a UTC offset or none (taken as UTC).
    The time column comes back as naive UTC timestamps.
    """
    window = Window(_naive_utc(window.start), _naive_utc(window.end))
    shown = f"{_origin(source)} ({describe_url(url)})"
    engine = _engine(url, shown)
    try:
        return _read_retrying(engine, source, window, shown)
    except sa.exc.DBAPIError as error:
        if _is_transient(error):
            raise SourceUnavailable(
                f"{shown}: cannot be read now, retrying may help: {_reason(error)}"
            ) from error
        if error.statement is None:
            what = "cannot connect"
        else:
            what = "source.query fails" if source.query is not None else "reading the source failed"
        raise SourceError(f"{shown}: {what}: {_reason(error)}") from error
    finally:
        engine.dispose()


def _naive_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


def _is_transient(error: BaseException) -> bool:
    message = str(getattr(error, "orig", error)).lower()
    return is_transient(error) or any(hint in message for hint in _TRANSIENT_SOURCE_HINTS)


def _reason(error: sa.exc.DBAPIError) -> str:
    return " ".join(str(error.orig).split())


def _engine(url: str, shown: str) -> sa.Engine:
    """An engine that opens the source read-only; a SQLite file that does not exist is an error,
    never an empty database created on the spot."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise SourceError(
            f"{shown}: not a database URL (e.g. postgresql://user@host/db, "
            "sqlite:////absolute/path.db)"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, shown)
    try:
        return sa.create_engine(parsed)
    except sa.exc.NoSuchModuleError:
        raise SourceError(f"{shown}: unknown database type {parsed.drivername!r}") from None
    except ImportError as error:
        raise SourceError(
            f"{shown}: the {parsed.drivername} driver is not installed ({error})"
        ) from None


def _sqlite_engine(url: sa.URL, shown: str) -> sa.Engine:
    database = url.database or ""
    if database in ("", ":memory:"):
        raise SourceError(f"{shown}: names no SQLite file (an in-memory database has no rows)")
    if database.startswith("file:"):  # already a SQLite URI: the user chose its mode
        return sa.create_engine(url)
    path = Path(database).expanduser().resolve()
    if not path.is_file():
        relative = "" if Path(database).is_absolute() else " (relative to the working directory)"
        problem = "is a directory" if path.is_dir() else "does not exist"
        raise SourceError(f"{shown}: SQLite database file {path}{relative} {problem}")
    location = f"{path.as_uri()}?mode=ro"
    return sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(location, uri=True))


@retry_transient()
def _read_retrying(engine: sa.Engine, source: Source, window: Window, shown: str) -> pd.DataFrame:
    with engine.connect() as connection:
        selectable = (
            _table(connection, source.table, shown) if source.table is not None else _query(source)
        )
        if source.time_column not in selectable.c:
            raise SourceError(
                f"source.time_column: column {source.time_column!r} not in the source "
                f"(found: {', '.join(selectable.c.keys())})"
            )
        if connection.dialect.name == "sqlite":
            return _sqlite_window(connection, selectable, source.time_column, window, shown)
        if connection.dialect.name == "postgresql":
            return _postgresql_window(connection, selectable, source.time_column, window)
        time = selectable.c[source.time_column]
        return _fetch(connection, selectable, time, source.time_column, window)


def _postgresql_window(
    connection: sa.Connection, selectable: sa.FromClause, column: str, window: Window
) -> pd.DataFrame:
    # In UTC, naive bounds mean UTC against `timestamp` and `timestamptz` columns alike; a text
    # column is cast, so its offsets count (an index on a timestamp column still serves).
    connection.exec_driver_sql("SET TIME ZONE 'UTC'")
    time: sa.ColumnElement = selectable.c[column]
    if _is_text(connection, selectable, column):
        time = sa.cast(time, sa.DateTime(timezone=True))
    return _fetch(connection, selectable, time, column, window)


def _is_text(connection: sa.Connection, selectable: sa.FromClause, column: str) -> bool:
    declared = selectable.c[column].type
    if isinstance(selectable, sa.Table):
        return isinstance(declared, sa.String)
    probe = connection.execute(sa.select(selectable.c[column]).limit(0))
    return connection.dialect.dbapi.STRING == probe.cursor.description[0][1]


def _fetch(
    connection: sa.Connection,
    selectable: sa.FromClause,
    time: sa.ColumnElement,
    column: str,
    window: Window,
) -> pd.DataFrame:
    columns = [time.label(column) if name == column else c for name, c in selectable.c.items()]
    statement = sa.select(*columns).where(time >= window.start, time < window.end).order_by(time)
    frame = _frame(connection.execute(statement))
    frame[column] = pd.to_datetime(frame[column], utc=True).dt.tz_localize(None)
    return frame


def _sqlite_window(
    connection: sa.Connection,
    selectable: sa.FromClause,
    column: str,
    window: Window,
    shown: str,
) -> pd.DataFrame:
    """SQLite compares its text timestamps as text, where "00:00:00" sorts before "00:00:00.000000"
    and an offset is ignored. So SQL selects a margin of whole days around the window (any offset
    is under a day, and an ISO date prefix sorts as a date), and the exact cut is made on the
    parsed UTC values."""
    text = sa.type_coerce(selectable.c[column], sa.String)
    odd = connection.execute(
        sa.select(text).where(text.is_not(None), sa.not_(text.op("GLOB")(_ISO_PREFIX))).limit(1)
    ).scalar()
    if odd is not None:
        raise SourceError(
            f"{shown}: source.time_column {column!r} holds {odd!r}, not an ISO-8601 timestamp "
            "('YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM]'), so no window can be cut on it"
        )
    low = (window.start - timedelta(days=1)).date().isoformat()
    high = (window.end + timedelta(days=2)).date().isoformat()
    columns = [text.label(column) if name == column else c for name, c in selectable.c.items()]
    frame = _frame(connection.execute(sa.select(*columns).where(text >= low, text < high)))
    try:
        times = pd.to_datetime(frame[column], utc=True, format="ISO8601").dt.tz_localize(None)
    except ValueError as error:
        raise SourceError(
            f"{shown}: source.time_column {column!r} holds a value that is not a timestamp: {error}"
        ) from None
    inside = (times >= window.start) & (times < window.end)
    frame = frame.assign(**{column: times})[inside]
    return frame.sort_values(column, kind="stable").reset_index(drop=True)


def _frame(result: sa.CursorResult) -> pd.DataFrame:
    return pd.DataFrame.from_records(
        result.fetchall(), columns=list(result.keys()), coerce_float=True
    )


def _query(source: Source) -> sa.Subquery:
    # A raw query has no reflected types: declare the time column so the window bounds bind as
    # timestamps on every dialect, and select exactly the columns the policy uses. A trailing `;`
    # ends a statement, which a subquery cannot hold.
    columns = [sa.column(name) for name in [*source.features.all, source.target]]
    return (
        sa.text(str(source.query).strip().rstrip(";"))
        .columns(*columns, sa.column(source.time_column, sa.DateTime))
        .subquery("source_query")
    )


def _table(connection: sa.Connection, name: str, shown: str) -> sa.Table:
    schema, _, table = name.rpartition(".")
    try:
        return sa.Table(table, sa.MetaData(), schema=schema or None, autoload_with=connection)
    except sa.exc.NoSuchTableError as error:
        raise SourceError(f"source.table: table {name!r} does not exist in {shown}") from error


def windows_for(as_of: datetime, source: Source) -> tuple[Window, Window]:
    """The training window and, right after it, the holdout window, both ending at `as_of`.

    The holdout is the freshest data and neither model has seen it, so the champion and the
    challenger are compared on equal terms.
    """
    holdout_start = as_of - timedelta(days=source.holdout_days)
    training = Window(holdout_start - timedelta(days=source.training_window_days), holdout_start)
    return training, Window(holdout_start, as_of)
