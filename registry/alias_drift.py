"""Alias drift: an alias MLflow shows somewhere the ledger never moved it (someone set it by hand,
around the workflow). One row per detection, in the ledger database, so the monitoring view can
show it; the move that detected it was refused (or, when forced, recorded over it).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from registry.side_tables import append_row, newest_rows, utc_iso

metadata = sa.MetaData()

alias_drifts = sa.Table(
    "promotion_alias_drift",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(256), nullable=False),
    sa.Column("alias", sa.String(256), nullable=False),
    sa.Column("detected_at", sa.String(40), nullable=False),
    sa.Column("ledger_version", sa.Integer),
    sa.Column("registry_version", sa.Integer),
    sa.Column("attempted_by", sa.Text, nullable=False),
    sa.Column("attempted_move", sa.Text, nullable=False),
    sa.Column("refused", sa.Boolean, nullable=False),
    sa.Index("ix_promotion_alias_drift_model_at", "model_name", "detected_at"),
)


@dataclass(frozen=True)
class AliasDrift:
    """`alias` of `model_name` found at `registry_version` in MLflow while the ledger's last
    recorded move left it at `ledger_version` (None: unset), noticed by a move of
    `attempted_by`; `refused` unless that move was forced."""

    model_name: str
    alias: str
    detected_at: str
    ledger_version: int | None
    registry_version: int | None
    attempted_by: str
    attempted_move: str
    refused: bool = True


def record_alias_drift(ledger_url: str, drift: AliasDrift) -> None:
    """Append one detection to the ledger database."""
    append_row(
        ledger_url,
        alias_drifts,
        {
            "model_name": drift.model_name,
            "alias": drift.alias,
            "detected_at": utc_iso(drift.detected_at),
            "ledger_version": drift.ledger_version,
            "registry_version": drift.registry_version,
            "attempted_by": drift.attempted_by,
            "attempted_move": drift.attempted_move,
            "refused": drift.refused,
        },
    )


def read_alias_drifts(
    ledger_url: str,
    model_name: str | None = None,
    since: str | None = None,
    limit: int | None = None,
) -> list[AliasDrift]:
    """Recorded detections, newest first; of one model and from `since` on when given."""
    rows = newest_rows(ledger_url, alias_drifts, "detected_at", model_name, since, limit)
    return [
        AliasDrift(
            model_name=row.model_name,
            alias=row.alias,
            detected_at=row.detected_at,
            ledger_version=row.ledger_version,
            registry_version=row.registry_version,
            attempted_by=row.attempted_by,
            attempted_move=row.attempted_move,
            refused=bool(row.refused),
        )
        for row in rows
    ]
