"""Moving aliases and recording lifecycle transitions: the one guarded, recorded way to do either.

Every write takes the model's ledger lock, settles a write a crashed predecessor left in flight,
re-reads the alias (compare-and-set against the version the caller's decision was based on), asks
the lifecycle whether the move is allowed, keeps its intent, sets the alias in MLflow, appends the
move and its transitions to the ledger in one transaction, and copies them onto the MLflow tags
so the UI shows them. A retry therefore finds a move done or does it: never twice, never half.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Literal, TypeVar

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

from promotion import lifecycle
from promotion.lifecycle import State, StateChange, TransitionRefused
from promotion.records import AliasMove, MoveKind
from registry import descriptions
from registry.alias_drift import AliasDrift, record_alias_drift
from registry.client import client, get_alias_version, get_version, set_version_tags
from registry.ledger import Ledger, LockedLedger, PendingWrite, Recorded, ledger_at
from registry.retry import is_transient, retry_transient
from registry.serving import get_model_aliases
from registry.settings import ledger_url, masked

HISTORY_TAG_PREFIX = "alias_move."
STATE_TAG_PREFIX = "lifecycle."
ANY: Literal["any"] = "any"
Evidence = dict[str, float | int | str | None]
T = TypeVar("T")

log = logging.getLogger(__name__)


class MoveRefused(ValueError):
    """An alias move or transition was refused and nothing changed; a retry meets the same refusal."""


class AliasMovedSinceDecision(MoveRefused):
    """The alias no longer points where it did when the decision to move it was taken."""


class AliasMovedOutsideWorkflow(MoveRefused):
    """MLflow shows the alias where the ledger never moved it: someone set it around the workflow."""


class RegistryUnavailable(RuntimeError):
    """MLflow did not answer after retries with backoff; the message says what was left unchanged."""


def current_ledger() -> Ledger:
    """The ledger of the current MLflow tracking URI (or PROMOTION_LEDGER_URL)."""
    return ledger_at(ledger_url(mlflow.get_tracking_uri()))


def alias_history(model_name: str, alias: str | None = None) -> list[AliasMove]:
    """Recorded alias moves of a model, oldest first; only those of `alias` when given."""
    ledger = current_ledger()
    if ledger.pending(model_name) is not None:
        with _writing(ledger, model_name):
            pass  # settles the write a crashed writer left, so history is never half a move
    return ledger.moves(model_name, alias)


def state_history(model_name: str, version: int | None = None) -> list[StateChange]:
    """Recorded lifecycle transitions of a model (or one version), oldest first."""
    return current_ledger().changes(model_name, version)


def version_state(model_name: str, version: int) -> State | None:
    """A version's lifecycle state, None when nothing was recorded about it."""
    changes = current_ledger().changes(model_name, version)
    return changes[-1].to_state if changes else None


def move_alias(
    model_name: str,
    alias: str,
    to_version: int | None,
    *,
    kind: MoveKind,
    actor: str,
    reason: str,
    evidence: Evidence | None = None,
    expected_from: int | None | Literal["any"] = ANY,
    force: bool = False,
    dry_run: bool = False,
) -> AliasMove | None:
    """Point `alias` at `to_version` (None removes it) and record the move; the one way aliases move.

    `expected_from` is the version the alias pointed at when the caller decided (None: unset); when
    it has moved since, the move is refused (AliasMovedSinceDecision) and nothing changes. Moves the
    lifecycle does not allow raise MoveRefused unless `force` is set. Returns the recorded move, or
    None when there was nothing to do: the alias is already there, or this actor already made this
    move (a retried task). `dry_run` returns the move that would be recorded and changes nothing.
    """
    ledger = current_ledger()
    with _writing(ledger, model_name) as book:
        history = book.moves(alias)
        mine = next((m for m in reversed(history) if m.actor == actor), None)
        if mine is not None and (mine.to_version, mine.kind) == (to_version, kind):
            # A retry of a move this actor made: it is done, even if the alias has moved on since.
            return None
        aliases = _read(lambda: get_model_aliases(model_name), model_name, alias)
        current = aliases.get(alias)
        recorded = history[-1].to_version if history else None
        if history and current != recorded:
            drift = AliasDrift(
                model_name=model_name,
                alias=alias,
                detected_at=_now(),
                ledger_version=recorded,
                registry_version=current,
                attempted_by=actor,
                attempted_move=f"{_v(to_version)} ({kind})",
                refused=not force,
            )
            _drifted(ledger, drift, history[-1], dry_run)
        if current == to_version and recorded == to_version:
            return None
        if expected_from != ANY and current not in (expected_from, to_version):
            raise AliasMovedSinceDecision(
                f"{model_name}@{alias} moved since the decision: it points at {_v(current)}, the "
                f"decision was taken when it pointed at {_v(expected_from)}; nothing was moved. "
                "Decide again on the current state."
            )
        if to_version is not None:
            _require_servable(model_name, to_version)
        from_version = current if current != to_version else recorded
        try:
            transitions = lifecycle.plan_move(
                alias=alias,
                from_version=from_version,
                to_version=to_version,
                kind=kind,
                states=book.states(),
                aliases=aliases,
                force=force,
            )
        except TransitionRefused as refusal:
            raise MoveRefused(
                f"{model_name}@{alias} → {_v(to_version)} ({kind}) refused: {refusal}; "
                "nothing was moved"
            ) from refusal
        write = PendingWrite(
            stage="started",
            at=_now(),
            actor=actor,
            reason=reason,
            evidence=dict(evidence or {}),
            forced=any(t.forced for t in transitions),
            alias=alias,
            kind=kind,
            from_version=from_version,
            to_version=to_version,
            transitions=transitions,
        )
        if dry_run:
            every_move = book.moves()
            return _planned_move(write, every_move[-1].sequence + 1 if every_move else 1)
        book.start(write)
        if current != to_version:
            _set_alias_or_settle(book, write)
        done, write = book.record(write)
        _mirror_and_finish(book, done)
        return done.move


def record_transition(
    model_name: str,
    version: int,
    state: State | str,
    *,
    actor: str,
    reason: str,
    evidence: Evidence | None = None,
    force: bool = False,
) -> StateChange | None:
    """Record a lifecycle decision that moves no alias: evaluated, approved, rejected, a canary step.

    Refused (MoveRefused) when the lifecycle does not allow it, unless `force` is set. Returns the
    recorded change, or None when the version is already there or this actor recorded it already.
    """
    target = State(state)
    ledger = current_ledger()
    with _writing(ledger, model_name) as book:
        get_version(model_name, version)  # a missing version fails here, clearly
        changes = book.changes(version)
        last = changes[-1] if changes else None
        evidence = dict(evidence or {})
        if last is not None and (last.to_state, last.actor, last.evidence) == (
            target,
            actor,
            evidence,
        ):
            return None
        try:
            transition = lifecycle.plan_transition(
                version, None if last is None else last.to_state, target, force=force
            )
        except TransitionRefused as refusal:
            raise MoveRefused(f"{model_name} {refusal}; nothing was recorded") from refusal
        if transition is None:
            return None
        write = PendingWrite(
            stage="started",
            at=_now(),
            actor=actor,
            reason=reason,
            evidence=evidence,
            forced=transition.forced,
            transitions=(transition,),
        )
        done, _ = book.record(write)
        _mirror_and_finish(book, done)
        return done.changes[0]


@contextmanager
def _writing(ledger: Ledger, model_name: str) -> Iterator[LockedLedger]:
    """Hold the model's lock, with any write a crashed writer left in flight settled first."""
    with ledger.locked(model_name) as book:
        write = book.pending()
        if write is not None:
            _settle(book, write)
        yield book


def _drifted(ledger: Ledger, drift: AliasDrift, last: AliasMove, dry_run: bool) -> None:
    """Record that MLflow disagrees with the ledger, and refuse the move unless it is forced.

    Every move through the workflow is in the ledger (a crashed one is settled before this runs),
    so an alias elsewhere was set by hand; acting on it would build on a state nobody decided.
    """
    if not dry_run:
        record_alias_drift(ledger.url, drift)
    where = f"{drift.model_name}@{drift.alias}"
    message = (
        f"{where} was moved outside the workflow: MLflow has it at {_v(drift.registry_version)}, "
        f"but the last recorded move ({last.kind} by {last.actor} at {last.at}) left it at "
        f"{_v(last.to_version)}."
    )
    if not drift.refused:
        log.warning("%s Forced by %s: recorded over it.", message, drift.attempted_by)
        return
    raise AliasMovedOutsideWorkflow(
        f"{message} Nothing was moved. Find who set it (only the workflow's account should hold "
        f"MANAGE on registered models), set it back to {_v(last.to_version)} in MLflow, or "
        "record the correction with a forced rollback."
    )


def _settle(book: LockedLedger, write: PendingWrite) -> None:
    """Finish or drop a write left in flight: the alias in MLflow tells whether it happened."""
    model_name = book.model_name
    if write.stage == "started" and write.alias is not None:
        current = _read(lambda: get_alias_version(model_name, write.alias), model_name, write.alias)
        if current != write.to_version:
            log.warning(
                "%s@%s: dropping a move to %s left unfinished by %s; the alias is at %s",
                model_name,
                write.alias,
                _v(write.to_version),
                write.actor,
                _v(current),
            )
            book.finish()
            return
    if write.stage == "started":
        done, write = book.record(write)
    else:
        done = book.recorded(write)
    _mirror_and_finish(book, done)


def _set_alias_or_settle(book: LockedLedger, write: PendingWrite) -> None:
    """Set the alias in MLflow; when MLflow fails for good, settle the write if it can be read."""
    model_name, alias = book.model_name, write.alias
    try:
        _point_alias(model_name, alias, write.to_version)
        return
    except Exception as error:
        if not is_transient(error):
            book.finish()
            raise
        failure = error
    try:
        # One attempt: MLflow has just had its retries.
        landed = get_alias_version.__wrapped__(model_name, alias) == write.to_version
    except Exception:
        raise RegistryUnavailable(
            f"MLflow at {masked(mlflow.get_tracking_uri())} did not answer while moving "
            f"{model_name}@{alias} to {_v(write.to_version)}, after retries with backoff: "
            f"{failure}. The alias was not moved unless the last request reached MLflow before "
            "it failed; the next write or history read of this model settles which, from the ledger."
        ) from failure
    if landed:
        return
    book.finish()
    raise RegistryUnavailable(
        f"MLflow at {masked(mlflow.get_tracking_uri())} failed to move {model_name}@{alias} to "
        f"{_v(write.to_version)} after retries with backoff: {failure}. "
        f"Nothing was moved or recorded: {alias} still points at {_v(write.from_version)}."
    ) from failure


def _mirror_and_finish(book: LockedLedger, done: Recorded) -> None:
    """Copy a recorded write onto the MLflow tags, then forget it; a failed copy is retried later."""
    try:
        _mirror(book.model_name, done)
        descriptions.refresh(book, done)
    except Exception as error:
        if not is_transient(error):
            raise
        log.warning(
            "%s: the move is recorded in the ledger; copying it to MLflow tags failed (%s) and "
            "is retried by the next write or history read of this model",
            book.model_name,
            error,
        )
        return
    book.finish()


def _mirror(model_name: str, done: Recorded) -> None:
    move = done.move
    if move is not None:
        record = {**move.to_json_dict(), "forced": done.forced}
        client().set_registered_model_tag(
            model_name,
            f"{HISTORY_TAG_PREFIX}{move.sequence:06d}",
            json.dumps(record, ensure_ascii=False),
        )
        if move.to_version is not None:
            prefix = f"alias.{move.alias}"
            _tag_if_present(
                model_name,
                move.to_version,
                {
                    f"{prefix}.since": move.at,
                    f"{prefix}.by": move.actor,
                    f"{prefix}.reason": move.reason,
                },
            )
    last_change = {change.version: change for change in done.changes}
    for version, change in last_change.items():
        _tag_if_present(
            model_name,
            version,
            {f"{STATE_TAG_PREFIX}state": change.to_state, f"{STATE_TAG_PREFIX}since": change.at},
        )


def _tag_if_present(model_name: str, version: int, tags: dict[str, str]) -> None:
    try:
        set_version_tags(model_name, version, tags)
    except MlflowException as error:
        if error.error_code != ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            raise


def _require_servable(model_name: str, version: int) -> None:
    try:
        found = get_version(model_name, version)
    except MlflowException as error:
        if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            raise MlflowException(
                f"{model_name} v{version} does not exist (never registered, or deleted); "
                "nothing was moved",
                error_code=RESOURCE_DOES_NOT_EXIST,
            ) from error
        raise
    if found.status != "READY":
        raise MoveRefused(
            f"{model_name} v{version} is {found.status}, not READY; nothing was moved"
        )


# The alias set retries longer than reads (about 30 s): its intent is recorded by then, and a
# tracking server that restarts takes tens of seconds to answer again.
@retry_transient(attempts=8)
def _point_alias(model_name: str, alias: str, version: int | None) -> None:
    if version is None:
        client().delete_registered_model_alias(model_name, alias)
    else:
        client().set_registered_model_alias(model_name, alias, str(version))


def _read(call: Callable[[], T], model_name: str, alias: str) -> T:
    try:
        return call()
    except Exception as error:
        if not is_transient(error):
            raise
        raise RegistryUnavailable(
            f"MLflow at {masked(mlflow.get_tracking_uri())} did not answer while reading "
            f"{model_name}@{alias}, after retries with backoff: {error}. Nothing was moved."
        ) from error


def _planned_move(write: PendingWrite, sequence: int) -> AliasMove:
    return AliasMove(
        sequence=sequence,
        alias=write.alias or "",
        from_version=write.from_version,
        to_version=write.to_version,
        kind=write.kind,  # type: ignore[arg-type]
        at=write.at,
        actor=write.actor,
        reason=write.reason,
        evidence=write.evidence,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _v(version: int | None | str) -> str:
    return "nothing (unset)" if version is None else f"v{version}"
