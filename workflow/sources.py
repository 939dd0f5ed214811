"""Read a time window of rows from a policy's SQL source."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import URL

from policies.schema import Source
from registry.retry import is_transient, retry_transient

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Airflow connection types whose names differ from SQLAlchemy dialect names.
_DIALECTS = {"postgres": "postgresql", "mysql": "mysql", "sqlite": "sqlite", "mssql": "mssql"}


class SourceError(ValueError):
    """The source of a policy cannot be reached or read; the message says which part."""


@dataclass(frozen=True)
class Window:
    """A half-open time interval [start, end) of source rows."""

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
    """A URL safe to record as lineage: the password is masked."""
    return sa.make_url(url).render_as_string(hide_password=True)


@retry_transient()
def read_window(url: str, source: Source, window: Window) -> pd.DataFrame:
    """Rows of the source whose time column falls in the window, oldest first."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            if source.table is not None:
                selectable = _table(connection, source.table)
            else:
                selectable = _query(source)
            if source.time_column not in selectable.c:
                raise SourceError(
                    f"source.time_column: column {source.time_column!r} not in the source "
                    f"(found: {', '.join(selectable.c.keys())})"
                )
            time = selectable.c[source.time_column]
            statement = (
                sa.select(selectable).where(time >= window.start, time < window.end).order_by(time)
            )
            try:
                frame = pd.read_sql(statement, connection)
            except sa.exc.DBAPIError as error:
                if is_transient(error):
                    raise
                raise SourceError(f"reading the source failed: {error.orig}") from error
    finally:
        engine.dispose()
    return frame


def _query(source: Source) -> sa.Subquery:
    # A raw query has no reflected types: declare the time column so the window bounds bind as
    # timestamps on every dialect, and select exactly the columns the policy uses.
    columns = [sa.column(name) for name in [*source.features.all, source.target]]
    return (
        sa.text(str(source.query))
        .columns(*columns, sa.column(source.time_column, sa.DateTime))
        .subquery("source_query")
    )


def _table(connection: sa.Connection, name: str) -> sa.Table:
    schema, _, table = name.rpartition(".")
    try:
        return sa.Table(table, sa.MetaData(), schema=schema or None, autoload_with=connection)
    except sa.exc.NoSuchTableError as error:
        raise SourceError(f"source.table: table {name!r} does not exist") from error


def windows_for(as_of: datetime, source: Source) -> tuple[Window, Window]:
    """The training window and, right after it, the holdout window, both ending at `as_of`.

    The holdout is the freshest data and neither model has seen it, so the champion and the
    challenger are compared on equal terms.
    """
    holdout_start = as_of - timedelta(days=source.holdout_days)
    training = Window(holdout_start - timedelta(days=source.training_window_days), holdout_start)
    return training, Window(holdout_start, as_of)
