"""The decision store: pending requests, consumed Slack requests and votes, in SQL.

Each vote is written in one transaction together with the Slack request that carried it, so a
replayed request and a second vote by the same user both hit a unique constraint instead of a
race; the request's status leaves `pending` exactly once, under a row lock where the database
has them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    UniqueConstraint,
    case,
    create_engine,
    insert,
    make_url,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from approval.config import ApprovalConfig
from approval.decisions import Tally, tally
from approval.records import ApprovalRequest, Outcome, PostedMessage, RequestStatus, Vote

DEFAULT_URL = "sqlite:///approval.db"


class VoteNotRecorded(RuntimeError):
    """A vote was refused inside the store; the transaction was rolled back."""

    kind: str = "closed"


class Replayed(VoteNotRecorded):
    """This exact Slack request was consumed before."""

    kind = "replayed"


class AlreadyVoted(VoteNotRecorded):
    """The user has already answered this request."""

    kind = "already_voted"


class RequestClosed(VoteNotRecorded):
    """The request is no longer pending."""

    kind = "closed"


class RequestExpired(VoteNotRecorded):
    """The vote came after the request's deadline."""

    kind = "expired"


@dataclass(frozen=True)
class StoredRequest:
    """A request as stored, with the config it was opened under and its votes so far."""

    request: ApprovalRequest
    config: ApprovalConfig
    status: RequestStatus
    created_at: datetime
    message: PostedMessage | None
    votes: tuple[Vote, ...]
    outcome: Outcome | None
    answered_at: datetime | None

    @property
    def expires_at(self) -> datetime:
        """The policy's deadline: no vote counts after it."""
        return self.created_at + self.config.timeout


@dataclass(frozen=True)
class VoteRecorded:
    """A counted vote and where the request stands after it."""

    stored: StoredRequest
    tally: Tally
    concluded: bool


def engine_url(url: str) -> str:
    """The URL with psycopg2 named for a bare `postgresql://`, the driver this project installs."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class DecisionStore:
    """SQL tables of the approval flow (SQLite by default, PostgreSQL in production)."""

    def __init__(self, engine: Engine, *, schema: str | None = None) -> None:
        self.engine = engine
        self.metadata = MetaData(schema=schema)
        self.requests = Table(
            "approval_request",
            self.metadata,
            Column("request_id", String(32), primary_key=True),
            Column("model", String(64), nullable=False, index=True),
            Column("challenger_version", Integer, nullable=False),
            Column("status", String(16), nullable=False),
            Column("payload", JSON, nullable=False),
            Column("config", JSON, nullable=False),
            Column("created_at", DateTime(timezone=True), nullable=False),
            Column("decided_at", DateTime(timezone=True)),
            Column("channel", String(64)),
            Column("message_ts", String(32)),
            Column("outcome", String(16)),
            Column("outcome_detail", JSON),
            Column("answered_at", DateTime(timezone=True)),
        )
        self.interactions = Table(
            "approval_interaction",
            self.metadata,
            Column("interaction_id", String(64), primary_key=True),
            Column("request_id", String(32), nullable=False),
            Column("user_id", String(32), nullable=False),
            Column("received_at", DateTime(timezone=True), nullable=False),
        )
        self.votes = Table(
            "approval_vote",
            self.metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column(
                "request_id",
                String(32),
                ForeignKey(self.requests.c.request_id),
                nullable=False,
                index=True,
            ),
            Column("user_id", String(32), nullable=False),
            Column("user_name", String(128), nullable=False),
            Column("choice", String(8), nullable=False),
            Column("comment", Text, nullable=False),
            Column("at", DateTime(timezone=True), nullable=False),
            UniqueConstraint("request_id", "user_id", name="approval_vote_once_per_user"),
        )

    @classmethod
    def from_url(cls, url: str = DEFAULT_URL, *, schema: str | None = None) -> DecisionStore:
        """A store on a SQLAlchemy URL; an in-memory SQLite one is shared across threads."""
        if url in ("sqlite://", "sqlite:///:memory:"):
            engine = create_engine(
                url, connect_args={"check_same_thread": False}, poolclass=StaticPool
            )
        else:
            engine = create_engine(engine_url(url), pool_pre_ping=True)
        return cls(engine, schema=schema)

    def create_tables(self) -> None:
        """Create the tables that do not exist yet."""
        self.metadata.create_all(self.engine)

    def open(self, request: ApprovalRequest, config: ApprovalConfig, *, now: datetime) -> bool:
        """Store a new pending request; False when it was stored before (a rerun)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(self.requests).values(
                        request_id=request.request_id,
                        model=request.model,
                        challenger_version=request.challenger_version,
                        status="pending",
                        payload=request.to_json_dict(),
                        config=dataclasses.asdict(config),
                        created_at=now,
                    )
                )
        except IntegrityError:
            return False
        return True

    def supersede_pending(self, model: str, *, keep: str, now: datetime) -> list[StoredRequest]:
        """Close every other pending request of `model`; returns the ones closed."""
        with self.engine.begin() as conn:
            ids = conn.scalars(
                update(self.requests)
                .where(
                    self.requests.c.model == model,
                    self.requests.c.status == "pending",
                    self.requests.c.request_id != keep,
                )
                .values(status="superseded", decided_at=now)
                .returning(self.requests.c.request_id)
            ).all()
        return [stored for request_id in ids if (stored := self.get(request_id)) is not None]

    def set_message(self, request_id: str, posted: PostedMessage) -> None:
        """Remember where the request's Slack message is."""
        with self.engine.begin() as conn:
            conn.execute(
                update(self.requests)
                .where(self.requests.c.request_id == request_id)
                .values(channel=posted.channel, message_ts=posted.ts)
            )

    def get(self, request_id: str) -> StoredRequest | None:
        """The stored request with its votes, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(self.requests).where(self.requests.c.request_id == request_id)
            ).first()
            if row is None:
                return None
            votes = self._votes(conn, request_id)
        return self._stored(row, votes)

    def is_consumed(self, interaction_id: str) -> bool:
        """Whether a Slack request with this id was already counted."""
        with self.engine.connect() as conn:
            found = conn.scalar(
                select(self.interactions.c.interaction_id).where(
                    self.interactions.c.interaction_id == interaction_id
                )
            )
        return found is not None

    def record_vote(self, request_id: str, *, interaction_id: str, vote: Vote) -> VoteRecorded:
        """Consume the Slack request and count its vote, or record nothing at all.

        Raises Replayed, AlreadyVoted or RequestClosed; in each case the transaction rolled back.
        """
        with self.engine.begin() as conn:
            try:
                conn.execute(
                    insert(self.interactions).values(
                        interaction_id=interaction_id,
                        request_id=request_id,
                        user_id=vote.user_id,
                        received_at=vote.at,
                    )
                )
            except IntegrityError as error:
                raise Replayed(f"Slack request {interaction_id[:12]}… was already used") from error
            row = conn.execute(
                select(self.requests)
                .where(self.requests.c.request_id == request_id)
                .with_for_update()
            ).first()
            if row is None or row.status != "pending" or row.outcome is not None:
                status = "unknown" if row is None else (row.outcome or row.status)
                raise RequestClosed(f"request {request_id} is {status}")
            config = ApprovalConfig(**row.config)
            # Checked again under the row lock: a click racing the deadline never counts late.
            if vote.at > _utc(row.created_at) + config.timeout:  # type: ignore[operator]
                raise RequestExpired(f"request {request_id} expired before this vote")
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(self.votes).values(
                            request_id=request_id,
                            user_id=vote.user_id,
                            user_name=vote.user_name,
                            choice=vote.choice,
                            comment=vote.comment,
                            at=vote.at,
                        )
                    )
            except IntegrityError as error:
                raise AlreadyVoted(f"{vote.user_id} already answered {request_id}") from error
            votes = self._votes(conn, request_id)
            counted = tally(config, votes)
            concluded = counted.status != "pending"
            if concluded:
                conn.execute(
                    update(self.requests)
                    .where(self.requests.c.request_id == request_id)
                    .values(status=counted.status, decided_at=vote.at)
                )
        stored = self.get(request_id)
        assert stored is not None
        return VoteRecorded(stored, counted, concluded)

    def record_outcome(self, request_id: str, outcome: Outcome) -> bool:
        """Write the final outcome once; False when one was written before. A request still
        pending takes the outcome as its status, so no later click can vote on it."""
        detail = {
            "by": list(outcome.by),
            "at": outcome.at.isoformat(),
            "reason": outcome.reason,
        }
        with self.engine.begin() as conn:
            result = conn.execute(
                update(self.requests)
                .where(
                    self.requests.c.request_id == request_id,
                    self.requests.c.outcome.is_(None),
                )
                .values(
                    outcome=outcome.status,
                    outcome_detail=detail,
                    status=case(
                        (self.requests.c.status == "pending", outcome.status),
                        else_=self.requests.c.status,
                    ),
                )
            )
        return result.rowcount == 1

    def mark_answered(self, request_id: str, *, now: datetime) -> None:
        """Note that the waiting Airflow task was given the decision."""
        with self.engine.begin() as conn:
            conn.execute(
                update(self.requests)
                .where(self.requests.c.request_id == request_id)
                .values(answered_at=now)
            )

    def _votes(self, conn: Connection, request_id: str) -> tuple[Vote, ...]:
        rows = conn.execute(
            select(self.votes)
            .where(self.votes.c.request_id == request_id)
            .order_by(self.votes.c.id)
        ).all()
        return tuple(
            Vote(r.user_id, r.user_name, r.choice, _utc(r.at), r.comment)  # type: ignore[arg-type]
            for r in rows
        )

    def _stored(self, row: Row, votes: Sequence[Vote]) -> StoredRequest:
        message = (
            PostedMessage(row.channel, row.message_ts)
            if row.channel is not None and row.message_ts is not None
            else None
        )
        return StoredRequest(
            request=ApprovalRequest.from_json_dict(row.payload),
            config=ApprovalConfig(**row.config),
            status=row.status,
            created_at=_utc(row.created_at),  # type: ignore[arg-type]
            message=message,
            votes=tuple(votes),
            outcome=_outcome(row, votes),
            answered_at=_utc(row.answered_at),
        )


def _outcome(row: Row, votes: Sequence[Vote]) -> Outcome | None:
    if row.outcome is None:
        return None
    detail = row.outcome_detail
    return Outcome(
        request_id=row.request_id,
        status=row.outcome,
        by=tuple(detail["by"]),
        at=datetime.fromisoformat(detail["at"]),
        reason=detail["reason"],
        votes=tuple(votes),
    )
