"""Data-validation records: one row per validated training window, passed or failed, in the ledger
database.

The train DAG's validation step writes a row for every window it checks, with each failed check in
words; the monitoring view reads them for the pass rate over time. The table is created on first
use and reads the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlalchemy as sa

from registry.side_tables import append_row, newest_rows, utc_iso

metadata = sa.MetaData()

validations = sa.Table(
    "promotion_validations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(256), nullable=False),
    sa.Column("validated_at", sa.String(40), nullable=False),
    sa.Column("window_start", sa.String(40), nullable=False),
    sa.Column("window_end", sa.String(40), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("failed_checks", sa.Text, nullable=False),
    sa.Column("run_id", sa.String(256)),
    sa.Index("ix_promotion_validations_model_at", "model_name", "validated_at"),
)


@dataclass(frozen=True)
class ValidationRecord:
    """One validated window: when, which rows, and every check it failed (none when it passed)."""

    model_name: str
    validated_at: str
    window_start: str
    window_end: str
    rows: int
    passed: bool
    failed_checks: tuple[str, ...]
    run_id: str | None = None

    def __post_init__(self) -> None:
        if self.passed == bool(self.failed_checks):
            verdict = "passed cannot list" if self.passed else "failed must list"
            raise ValueError(f"a validation of {self.model_name} that {verdict} its failed checks")


def record_validation(ledger_url: str, record: ValidationRecord) -> None:
    """Append one validated window to the ledger database."""
    append_row(
        ledger_url,
        validations,
        {
            "model_name": record.model_name,
            "validated_at": utc_iso(record.validated_at),
            "window_start": record.window_start,
            "window_end": record.window_end,
            "rows": record.rows,
            "passed": record.passed,
            "failed_checks": json.dumps(list(record.failed_checks), ensure_ascii=False),
            "run_id": record.run_id,
        },
    )


def read_validations(
    ledger_url: str,
    model_name: str | None = None,
    since: str | None = None,
    limit: int | None = None,
) -> list[ValidationRecord]:
    """Recorded validations, newest first; of one model, from `since` (ISO-8601 UTC) on."""
    rows = newest_rows(ledger_url, validations, "validated_at", model_name, since, limit)
    return [
        ValidationRecord(
            model_name=row.model_name,
            validated_at=row.validated_at,
            window_start=row.window_start,
            window_end=row.window_end,
            rows=row.rows,
            passed=bool(row.passed),
            failed_checks=tuple(json.loads(row.failed_checks)),
            run_id=row.run_id,
        )
        for row in rows
    ]
