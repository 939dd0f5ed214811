"""Monitor checks: one row per check of a model's retraining triggers, in the ledger database.

The monitor DAG writes a row each time it looks at a champion (fired, quiet, or not checked and
why); the monitoring view reads them to plot the signals. The table is created on first use and
reads the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

import sqlalchemy as sa

from registry.side_tables import append_row, newest_rows, utc_iso

Outcome = Literal["fired", "quiet", "not_checked"]
OUTCOMES: tuple[str, ...] = ("fired", "quiet", "not_checked")

metadata = sa.MetaData()

monitor_checks = sa.Table(
    "promotion_monitor_checks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(256), nullable=False),
    sa.Column("checked_at", sa.String(40), nullable=False),
    sa.Column("champion_version", sa.Integer),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("fired", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("signals", sa.Text, nullable=False),
    sa.Column("run_id", sa.String(256)),
    sa.Index("ix_promotion_monitor_checks_model_at", "model_name", "checked_at"),
)


@dataclass(frozen=True)
class MonitorCheck:
    """One check of a model's triggers: what fired (if anything), why, and the numbers behind it."""

    model_name: str
    checked_at: str
    champion_version: int | None
    outcome: Outcome
    fired: tuple[str, ...]
    reason: str
    signals: dict = field(default_factory=dict)
    run_id: str | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(
                f"monitor check outcome must be one of {OUTCOMES}, got {self.outcome!r}"
            )
        if (self.outcome == "fired") != bool(self.fired):
            raise ValueError(
                f"a {self.outcome!r} monitor check cannot list fired triggers {self.fired!r}"
                if self.fired
                else "a 'fired' monitor check must list the triggers that fired"
            )


def record_check(ledger_url: str, check: MonitorCheck) -> None:
    """Append one monitor check to the ledger database."""
    append_row(
        ledger_url,
        monitor_checks,
        {
            "model_name": check.model_name,
            "checked_at": utc_iso(check.checked_at),
            "champion_version": check.champion_version,
            "outcome": check.outcome,
            "fired": json.dumps(list(check.fired)),
            "reason": check.reason,
            "signals": json.dumps(check.signals, allow_nan=False),
            "run_id": check.run_id,
        },
    )


def read_checks(
    ledger_url: str,
    model_name: str | None = None,
    since: str | None = None,
    limit: int | None = None,
) -> list[MonitorCheck]:
    """Recorded monitor checks, newest first; of one model, from `since` (ISO-8601 UTC) on."""
    rows = newest_rows(ledger_url, monitor_checks, "checked_at", model_name, since, limit)
    return [
        MonitorCheck(
            model_name=row.model_name,
            checked_at=row.checked_at,
            champion_version=row.champion_version,
            outcome=row.outcome,
            fired=tuple(json.loads(row.fired)),
            reason=row.reason,
            signals=json.loads(row.signals),
            run_id=row.run_id,
        )
        for row in rows
    ]
