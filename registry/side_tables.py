"""Append-only record tables kept beside the ledger (validations, monitor checks, alias drift).

Each record module owns its table and its dataclass; the writing, the newest-first reading and the
time format that lets times compare as strings in SQL live here once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from registry.ledger import engine_with_tables


def utc_iso(moment: str) -> str:
    """An ISO-8601 time as UTC in one fixed format (naive times read as UTC), so that recorded
    times and `since` bounds compare correctly as strings on SQLite and PostgreSQL."""
    parsed = datetime.fromisoformat(moment)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat(timespec="microseconds")


def append_row(ledger_url: str, table: sa.Table, values: Mapping[str, Any]) -> None:
    """Insert one record into `table` in the ledger database, creating the table on first use."""
    with engine_with_tables(ledger_url, table.metadata).begin() as connection:
        connection.execute(table.insert().values(**values))


def newest_rows(
    ledger_url: str,
    table: sa.Table,
    time_column: str,
    model_name: str | None = None,
    since: str | None = None,
    limit: int | None = None,
) -> list[sa.Row]:
    """Rows of `table`, newest first by `time_column` (then by insertion); of one model and from
    `since` on when given."""
    moment = table.c[time_column]
    query = sa.select(table).order_by(moment.desc(), table.c.id.desc())
    if model_name is not None:
        query = query.where(table.c.model_name == model_name)
    if since is not None:
        query = query.where(moment >= utc_iso(since))
    if limit is not None:
        query = query.limit(limit)
    with engine_with_tables(ledger_url, table.metadata).connect() as connection:
        return list(connection.execute(query).all())
