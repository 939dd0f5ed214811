"""The promotion ledger: an append-only SQL history of alias moves and lifecycle transitions.

MLflow aliases are last-writer-wins upserts with no history and no compare-and-set. The ledger keeps
the history, and its per-model lock turns the registry's read-check-set of an alias into one step
across processes and machines: a PostgreSQL advisory lock in production, a file lock beside the
database for SQLite (one machine, like SQLite itself). A lock held by a process that dies is
released with its connection or file, so a crash never leaves a model locked.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Literal

import sqlalchemy as sa

from promotion.lifecycle import State, StateChange, Transition, current_states
from promotion.records import AliasMove
from registry.settings import LedgerConfigError, masked

LOCK_TIMEOUT_S = 120.0

metadata = sa.MetaData()


def _record_columns() -> list[sa.Column]:
    return [
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("forced", sa.Boolean, nullable=False),
    ]


alias_moves = sa.Table(
    "promotion_alias_moves",
    metadata,
    sa.Column("model_name", sa.String(256), primary_key=True),
    sa.Column("sequence", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("alias", sa.String(256), nullable=False),
    sa.Column("from_version", sa.Integer),
    sa.Column("to_version", sa.Integer),
    sa.Column("kind", sa.String(32), nullable=False),
    *_record_columns(),
)
state_changes = sa.Table(
    "promotion_state_changes",
    metadata,
    sa.Column("model_name", sa.String(256), primary_key=True),
    sa.Column("sequence", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("from_state", sa.String(32)),
    sa.Column("to_state", sa.String(32), nullable=False),
    sa.Column("cause", sa.String(32), nullable=False),
    sa.Column("alias_move", sa.Integer),
    *_record_columns(),
)
# At most one write in flight per model (the lock sees to it); a row left here is a crashed write.
pending_writes = sa.Table(
    "promotion_pending_writes",
    metadata,
    sa.Column("model_name", sa.String(256), primary_key=True),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
)


class LockTimeout(RuntimeError):
    """Another writer held a model's lock for too long; nothing was changed."""


@dataclass(frozen=True)
class PendingWrite:
    """A write in flight, kept until it is done so that the next writer can finish or drop it.

    Stage `started`: the alias may or may not be set yet. Stage `recorded`: the ledger holds the
    move and its transitions; only their copy on the MLflow tags may be missing.
    """

    stage: Literal["started", "recorded"]
    at: str
    actor: str
    reason: str
    evidence: dict[str, float | int | str | None] = field(default_factory=dict)
    forced: bool = False
    alias: str | None = None
    kind: str | None = None
    from_version: int | None = None
    to_version: int | None = None
    transitions: tuple[Transition, ...] = ()
    move_sequence: int | None = None
    change_sequences: tuple[int, ...] = ()

    def to_json(self) -> str:
        data = asdict(self)
        data["transitions"] = [asdict(t) for t in self.transitions]
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> PendingWrite:
        data = json.loads(text)
        data["transitions"] = tuple(
            Transition(
                version=t["version"],
                from_state=None if t["from_state"] is None else State(t["from_state"]),
                to_state=State(t["to_state"]),
                cause=t["cause"],
                reason=t["reason"],
                forced=t["forced"],
            )
            for t in data["transitions"]
        )
        data["change_sequences"] = tuple(data["change_sequences"])
        return cls(**data)


@dataclass(frozen=True)
class Recorded:
    """What one write appended to the ledger."""

    move: AliasMove | None
    changes: tuple[StateChange, ...]
    forced: bool


def _as_move(row: sa.Row) -> AliasMove:
    return AliasMove(
        sequence=row.sequence,
        alias=row.alias,
        from_version=row.from_version,
        to_version=row.to_version,
        kind=row.kind,
        at=row.at,
        actor=row.actor,
        reason=row.reason,
        evidence=json.loads(row.evidence),
    )


def _as_change(row: sa.Row) -> StateChange:
    return StateChange(
        sequence=row.sequence,
        version=row.version,
        from_state=None if row.from_state is None else State(row.from_state),
        to_state=State(row.to_state),
        cause=row.cause,
        at=row.at,
        actor=row.actor,
        reason=row.reason,
        evidence=json.loads(row.evidence),
        forced=row.forced,
        alias_move=row.alias_move,
    )


def _read_moves(connection: sa.Connection, model_name: str, alias: str | None) -> list[AliasMove]:
    query = alias_moves.select().where(alias_moves.c.model_name == model_name)
    if alias is not None:
        query = query.where(alias_moves.c.alias == alias)
    return [_as_move(row) for row in connection.execute(query.order_by(alias_moves.c.sequence))]


def _read_changes(
    connection: sa.Connection, model_name: str, version: int | None
) -> list[StateChange]:
    query = state_changes.select().where(state_changes.c.model_name == model_name)
    if version is not None:
        query = query.where(state_changes.c.version == version)
    rows = connection.execute(query.order_by(state_changes.c.sequence))
    return [_as_change(row) for row in rows]


def _read_pending(connection: sa.Connection, model_name: str) -> PendingWrite | None:
    payload = connection.execute(
        sa.select(pending_writes.c.payload).where(pending_writes.c.model_name == model_name)
    ).scalar_one_or_none()
    return None if payload is None else PendingWrite.from_json(payload)


def _next_sequence(connection: sa.Connection, table: sa.Table, model_name: str) -> int:
    last = connection.execute(
        sa.select(sa.func.max(table.c.sequence)).where(table.c.model_name == model_name)
    ).scalar_one()
    return (last or 0) + 1


class Ledger:
    """The ledger in one SQL database; tables are created on first use."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = sa.make_url(url).get_backend_name()
        if self.dialect == "sqlite":
            database = sa.make_url(url).database
            if not database or database == ":memory:":
                raise LedgerConfigError(
                    f"ledger {masked(url)!r}: an in-memory SQLite database cannot be shared "
                    "between processes; give a file, e.g. sqlite:////var/lib/promotion/ledger.db"
                )
            self._lock_dir = Path(f"{database}.locks")
            self.engine = sa.create_engine(url, connect_args={"timeout": 30})
        elif self.dialect == "postgresql":
            self.engine = sa.create_engine(url, pool_pre_ping=True)
        else:
            raise LedgerConfigError(f"ledger {masked(url)!r}: only SQLite and PostgreSQL can lock")
        # A pooled connection must not cross a fork (Airflow's executors fork their workers).
        os.register_at_fork(after_in_child=lambda: self.engine.dispose(close=False))
        self._tables_ready = False

    def _ensure_tables(self) -> None:
        if self._tables_ready:
            return
        self.create_tables(metadata)
        self._tables_ready = True

    def create_tables(self, schema: sa.MetaData) -> None:
        """Create the tables of `schema` in the ledger database unless they exist."""
        for attempt in range(3):
            try:
                with self.engine.begin() as connection:
                    if self.dialect == "postgresql":
                        # Two processes creating the tables at once would collide in the catalog.
                        connection.execute(
                            sa.text("SELECT pg_advisory_xact_lock(:key)"),
                            {"key": _lock_key("promotion-ledger-schema")},
                        )
                    schema.create_all(connection)
                break
            except sa.exc.DBAPIError:
                if attempt == 2:
                    raise
                time.sleep(0.2)

    def moves(self, model_name: str, alias: str | None = None) -> list[AliasMove]:
        """Recorded alias moves of a model, oldest first; only those of `alias` when given."""
        self._ensure_tables()
        with self.engine.connect() as connection:
            return _read_moves(connection, model_name, alias)

    def changes(self, model_name: str, version: int | None = None) -> list[StateChange]:
        """Recorded lifecycle transitions of a model (or one version), oldest first."""
        self._ensure_tables()
        with self.engine.connect() as connection:
            return _read_changes(connection, model_name, version)

    def pending(self, model_name: str) -> PendingWrite | None:
        """The write in flight (or left by a crash) for a model, if any."""
        self._ensure_tables()
        with self.engine.connect() as connection:
            return _read_pending(connection, model_name)

    @contextmanager
    def locked(self, model_name: str, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[LockedLedger]:
        """Hold the model's write lock; every ledger write of the model happens inside it."""
        self._ensure_tables()
        if self.dialect == "postgresql":
            with self._advisory_lock(model_name, timeout_s) as connection:
                yield LockedLedger(connection, model_name)
        else:
            with self._file_lock(model_name, timeout_s), self.engine.connect() as connection:
                yield LockedLedger(connection, model_name)

    @contextmanager
    def _advisory_lock(self, model_name: str, timeout_s: float) -> Iterator[sa.Connection]:
        key = _lock_key(f"promotion-ledger:{model_name}")
        with self.engine.connect() as connection:
            try:
                connection.execute(
                    sa.text("SELECT set_config('lock_timeout', :timeout, true)"),
                    {"timeout": f"{int(timeout_s * 1000)}ms"},
                )
                connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": key})
                connection.commit()
            except sa.exc.OperationalError as error:
                connection.rollback()
                if "lock timeout" in str(error.orig):
                    raise _busy(model_name, timeout_s) from error
                raise
            try:
                yield connection
            finally:
                if connection.in_transaction():
                    connection.rollback()
                try:
                    connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    connection.commit()
                except sa.exc.DBAPIError:
                    connection.invalidate()  # the session, and so its lock, is gone already

    @contextmanager
    def _file_lock(self, model_name: str, timeout_s: float) -> Iterator[None]:
        self._lock_dir.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", model_name)[:64]
        digest = hashlib.sha256(model_name.encode()).hexdigest()[:8]
        with (self._lock_dir / f"{safe}-{digest}.lock").open("a") as handle:
            deadline, wait = time.monotonic() + timeout_s, 0.01
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise _busy(model_name, timeout_s) from None
                    time.sleep(wait)
                    wait = min(wait * 2, 0.25)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class LockedLedger:
    """The ledger of one model while its lock is held: reads and the writes of a move."""

    def __init__(self, connection: sa.Connection, model_name: str) -> None:
        self.connection = connection
        self.model_name = model_name

    def moves(self, alias: str | None = None) -> list[AliasMove]:
        with self.connection.begin():
            return _read_moves(self.connection, self.model_name, alias)

    def changes(self, version: int | None = None) -> list[StateChange]:
        with self.connection.begin():
            return _read_changes(self.connection, self.model_name, version)

    def states(self) -> dict[int, State]:
        return current_states(self.changes())

    def pending(self) -> PendingWrite | None:
        with self.connection.begin():
            return _read_pending(self.connection, self.model_name)

    def start(self, write: PendingWrite) -> None:
        """Keep the intent of a write before anything of it happens."""
        with self.connection.begin():
            self.connection.execute(
                pending_writes.insert().values(
                    model_name=self.model_name, stage=write.stage, payload=write.to_json()
                )
            )

    def record(self, write: PendingWrite) -> tuple[Recorded, PendingWrite]:
        """Append the write's move and transitions, and mark it recorded, in one transaction."""
        with self.connection.begin():
            common = {
                "model_name": self.model_name,
                "at": write.at,
                "actor": write.actor,
                "reason": write.reason,
                "evidence": json.dumps(write.evidence),
            }
            move = None
            if write.alias is not None:
                move_sequence = _next_sequence(self.connection, alias_moves, self.model_name)
                self.connection.execute(
                    alias_moves.insert().values(
                        **common,
                        sequence=move_sequence,
                        alias=write.alias,
                        from_version=write.from_version,
                        to_version=write.to_version,
                        kind=write.kind,
                        forced=write.forced,
                    )
                )
                move = _as_move(
                    self.connection.execute(
                        alias_moves.select().where(
                            alias_moves.c.model_name == self.model_name,
                            alias_moves.c.sequence == move_sequence,
                        )
                    ).one()
                )
            first = _next_sequence(self.connection, state_changes, self.model_name)
            changes = []
            for offset, transition in enumerate(write.transitions):
                change = StateChange(
                    sequence=first + offset,
                    version=transition.version,
                    from_state=transition.from_state,
                    to_state=transition.to_state,
                    cause=transition.cause,
                    at=write.at,
                    actor=write.actor,
                    reason=f"{write.reason} ({transition.reason})",
                    evidence=write.evidence,
                    forced=transition.forced,
                    alias_move=None if move is None else move.sequence,
                )
                self.connection.execute(
                    state_changes.insert().values(
                        **{**common, "reason": change.reason},
                        sequence=change.sequence,
                        version=change.version,
                        from_state=change.from_state,
                        to_state=change.to_state,
                        cause=change.cause,
                        forced=change.forced,
                        alias_move=change.alias_move,
                    )
                )
                changes.append(change)
            recorded = replace(
                write,
                stage="recorded",
                move_sequence=None if move is None else move.sequence,
                change_sequences=tuple(change.sequence for change in changes),
            )
            self._set_pending(recorded)
        return Recorded(move, tuple(changes), write.forced), recorded

    def recorded(self, write: PendingWrite) -> Recorded:
        """What a write marked recorded appended (to finish its mirror after a crash)."""
        with self.connection.begin():
            move = None
            if write.move_sequence is not None:
                row = self.connection.execute(
                    alias_moves.select().where(
                        alias_moves.c.model_name == self.model_name,
                        alias_moves.c.sequence == write.move_sequence,
                    )
                ).one()
                move = _as_move(row)
            rows = self.connection.execute(
                state_changes.select()
                .where(
                    state_changes.c.model_name == self.model_name,
                    state_changes.c.sequence.in_(write.change_sequences),
                )
                .order_by(state_changes.c.sequence)
            )
            return Recorded(move, tuple(_as_change(row) for row in rows), write.forced)

    def finish(self) -> None:
        """Forget the write in flight: it is done, or it never happened."""
        with self.connection.begin():
            self.connection.execute(
                pending_writes.delete().where(pending_writes.c.model_name == self.model_name)
            )

    def _set_pending(self, write: PendingWrite) -> None:
        updated = self.connection.execute(
            pending_writes.update()
            .where(pending_writes.c.model_name == self.model_name)
            .values(stage=write.stage, payload=write.to_json())
        )
        if updated.rowcount == 0:
            self.connection.execute(
                pending_writes.insert().values(
                    model_name=self.model_name, stage=write.stage, payload=write.to_json()
                )
            )


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _busy(model_name: str, timeout_s: float) -> LockTimeout:
    return LockTimeout(
        f"{model_name}: another writer has held the model's alias lock for over {timeout_s:.0f} s; "
        "nothing was changed. Retry later, or look for a stuck promotion or rollback task."
    )


@cache
def ledger_at(url: str) -> Ledger:
    """The ledger at a SQLAlchemy URL, built once per URL and process."""
    return Ledger(url)


@cache
def engine_with_tables(url: str, schema: sa.MetaData) -> sa.Engine:
    """The ledger database's engine with the tables of `schema` created, once per URL and process;
    for the records other modules keep beside the ledger (validations, monitor checks)."""
    ledger = ledger_at(url)
    ledger.create_tables(schema)
    return ledger.engine
