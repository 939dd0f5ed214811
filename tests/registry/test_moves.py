"""Guarded, recorded alias moves on a real (SQLite) MLflow store with the ledger beside it."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import tenacity
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

import registry
from promotion.lifecycle import State
from registry import client as registry_client
from registry import moves

MODEL = "churn"


@pytest.fixture
def versions(mlflow_store: str, tmp_path: Path) -> list[int]:
    registry.ensure_registered_model(MODEL)
    return [
        registry.register_version(
            MODEL, (tmp_path / f"model{i}").as_uri(), run_id=None, tags={}, description=""
        ).version
        for i in (1, 2, 3, 4)
    ]


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries without waiting, so failure paths run in milliseconds."""
    for retried in (moves._point_alias, moves.get_model_aliases, registry_client.get_alias_version):
        monkeypatch.setattr(retried.retry, "wait", tenacity.wait_none())


def promote(to: int | None, actor: str = "promote_churn/run-1", **options):
    return registry.move_alias(
        MODEL, "champion", to, kind="promote", actor=actor, reason="test", **options
    )


def rollback(to: int, actor: str = "rollback_churn/run-1", **options):
    return registry.move_alias(
        MODEL, "champion", to, kind="rollback", actor=actor, reason="test", **options
    )


def champion() -> int | None:
    return registry.get_alias_version(MODEL, "champion")


def history() -> list[tuple[int | None, int | None, str]]:
    return [(m.from_version, m.to_version, m.kind) for m in registry.alias_history(MODEL)]


def mirrored() -> list[dict]:
    tags = registry_client.client().get_registered_model(MODEL).tags
    return [
        json.loads(value) for key, value in sorted(tags.items()) if key.startswith("alias_move.")
    ]


class Crash(BaseException):
    """Stands for the process dying: no handler in the registry catches it."""


def test_a_move_based_on_a_stale_decision_is_refused_and_moves_nothing(versions) -> None:
    promote(1)
    promote(2, actor="promote_churn/run-2")
    with pytest.raises(registry.AliasMovedSinceDecision, match="points at v2, the decision was"):
        promote(3, actor="promote_churn/run-3", expected_from=1)
    assert champion() == 2
    assert history() == [(None, 1, "promote"), (1, 2, "promote")]


def test_a_move_based_on_the_current_alias_goes_through(versions) -> None:
    promote(1)
    moved = promote(2, actor="promote_churn/run-2", expected_from=1)
    assert (moved.from_version, moved.to_version) == (1, 2)
    assert champion() == 2


def test_expecting_no_champion_refuses_once_one_was_promoted(versions) -> None:
    promote(1)
    with pytest.raises(registry.AliasMovedSinceDecision, match="pointed at nothing"):
        promote(2, actor="promote_churn/run-2", expected_from=None)


def test_a_rejected_version_is_not_made_champion_without_force(versions) -> None:
    registry.record_transition(MODEL, 3, "rejected", actor="eval", reason="loses on the holdout")
    with pytest.raises(registry.MoveRefused, match="v3: rejected → champion by promote"):
        promote(3)
    assert champion() is None and history() == []


def test_force_makes_a_rejected_version_champion_and_the_record_says_forced(versions) -> None:
    registry.record_transition(MODEL, 3, "rejected", actor="eval", reason="loses on the holdout")
    promote(3, force=True)
    assert champion() == 3
    assert mirrored()[-1]["forced"] is True
    assert registry.state_history(MODEL, 3)[-1].forced


def test_a_rollback_to_a_version_that_never_was_champion_is_refused(versions) -> None:
    promote(1)
    with pytest.raises(registry.MoveRefused, match="it was never champion"):
        rollback(2)
    assert champion() == 1


def test_a_retried_move_is_not_made_again_after_the_alias_moved_on(versions) -> None:
    promote(1)
    promote(2, actor="promote_churn/run-2")
    rollback(1)
    assert promote(2, actor="promote_churn/run-2", expected_from=1) is None
    assert champion() == 1
    assert len(history()) == 3


def test_moves_record_the_lifecycle_and_show_it_on_the_versions(versions) -> None:
    registry.move_alias(MODEL, "challenger", 1, kind="candidate", actor="train", reason="new")
    promote(1)
    promote(2, actor="promote_churn/run-2")
    assert registry.version_state(MODEL, 1) is State.RETIRED
    assert registry.version_state(MODEL, 2) is State.CHAMPION
    assert [c.to_state for c in registry.state_history(MODEL, 1)] == [
        State.CANDIDATE,
        State.EVALUATED,
        State.CHAMPION,
        State.RETIRED,
    ]
    assert registry.get_version(MODEL, 1).tags["lifecycle.state"] == "retired"


def test_recording_an_approval_before_an_evaluation_is_refused(versions) -> None:
    with pytest.raises(registry.MoveRefused, match="approved by record is reached only from"):
        registry.record_transition(MODEL, 1, "approved", actor="slack:U1", reason="looks good")
    assert registry.version_state(MODEL, 1) is None


def test_recording_the_same_decision_twice_records_it_once(versions) -> None:
    first = registry.record_transition(MODEL, 1, "evaluated", actor="run-1", reason="wins")
    again = registry.record_transition(MODEL, 1, "evaluated", actor="run-1", reason="wins")
    assert first is not None and again is None
    assert len(registry.state_history(MODEL, 1)) == 1


def test_a_crash_after_the_alias_was_set_is_recorded_once_by_the_next_reader(
    versions, monkeypatch: pytest.MonkeyPatch
) -> None:
    promote(1)
    set_alias = moves._point_alias

    def set_then_die(*args) -> None:
        set_alias(*args)
        raise Crash

    monkeypatch.setattr(moves, "_point_alias", set_then_die)
    with pytest.raises(Crash):
        promote(2, actor="promote_churn/run-2")
    monkeypatch.setattr(moves, "_point_alias", set_alias)
    assert champion() == 2
    assert history() == [(None, 1, "promote"), (1, 2, "promote")]
    assert [m["to_version"] for m in mirrored()] == [1, 2]
    assert promote(2, actor="promote_churn/run-2") is None  # the task's retry
    assert len(history()) == 2


def test_a_crash_before_the_alias_was_set_leaves_no_record(
    versions, monkeypatch: pytest.MonkeyPatch
) -> None:
    promote(1)
    set_alias = moves._point_alias

    def die(*args) -> None:
        raise Crash

    monkeypatch.setattr(moves, "_point_alias", die)
    with pytest.raises(Crash):
        promote(2, actor="promote_churn/run-2")
    monkeypatch.setattr(moves, "_point_alias", set_alias)
    assert history() == [(None, 1, "promote")]
    assert champion() == 1
    assert registry.version_state(MODEL, 2) is None


def test_a_crash_before_the_tags_were_written_is_mirrored_later(
    versions, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = moves._mirror

    def die(*args) -> None:
        raise Crash

    monkeypatch.setattr(moves, "_mirror", die)
    with pytest.raises(Crash):
        promote(1)
    monkeypatch.setattr(moves, "_mirror", mirror)
    assert mirrored() == []
    assert history() == [(None, 1, "promote")]
    assert [m["to_version"] for m in mirrored()] == [1]
    assert registry.get_version(MODEL, 1).tags["lifecycle.state"] == "champion"


def test_the_history_is_the_ledger_not_the_tags(versions) -> None:
    promote(1)
    registry_client.client().delete_registered_model_tag(MODEL, "alias_move.000001")
    assert history() == [(None, 1, "promote")]


def test_mlflow_answering_5xx_mid_move_is_retried_and_the_move_made_once(
    versions, no_backoff, monkeypatch: pytest.MonkeyPatch
) -> None:
    promote(1)
    mlflow_client = registry_client.client()
    real_set = mlflow_client.set_registered_model_alias
    failures = iter(range(3))

    def flaky_set(*args) -> None:
        if next(failures, None) is not None:
            raise MlflowException("503 Service Unavailable", error_code=TEMPORARILY_UNAVAILABLE)
        real_set(*args)

    monkeypatch.setattr(mlflow_client, "set_registered_model_alias", flaky_set)
    promote(2, actor="promote_churn/run-2")
    assert champion() == 2
    assert history() == [(None, 1, "promote"), (1, 2, "promote")]


def test_mlflow_down_for_good_fails_clearly_with_the_alias_untouched(
    versions, no_backoff, monkeypatch: pytest.MonkeyPatch
) -> None:
    promote(1)
    mlflow_client = registry_client.client()

    def down(*args) -> None:
        raise MlflowException("503 Service Unavailable", error_code=TEMPORARILY_UNAVAILABLE)

    monkeypatch.setattr(mlflow_client, "set_registered_model_alias", down)
    with pytest.raises(registry.RegistryUnavailable, match="champion still points at v1"):
        promote(2, actor="promote_churn/run-2")
    assert champion() == 1
    assert history() == [(None, 1, "promote")]
    assert moves.current_ledger().pending(MODEL) is None


def test_a_second_writer_waits_for_the_first_to_finish(versions) -> None:
    promote(1)
    ledger = moves.current_ledger()
    finished: list[float] = []

    def second_writer() -> None:
        promote(2, actor="promote_churn/run-2", expected_from=1)
        finished.append(time.monotonic())

    with ledger.locked(MODEL):
        writer = threading.Thread(target=second_writer)
        writer.start()
        time.sleep(0.5)
        released = time.monotonic()
        assert finished == [] and champion() == 1
    writer.join(30)
    assert finished and finished[0] >= released
    assert champion() == 2


def test_a_lock_held_too_long_fails_with_a_clear_message(versions) -> None:
    ledger = moves.current_ledger()
    with ledger.locked(MODEL):
        outcome: list[BaseException] = []

        def impatient() -> None:
            try:
                with ledger.locked(MODEL, timeout_s=0.2):
                    pass
            except registry.LockTimeout as error:
                outcome.append(error)

        waiter = threading.Thread(target=impatient)
        waiter.start()
        waiter.join(10)
    assert "another writer has held the model's alias lock" in str(outcome[0])


def test_a_dry_run_returns_the_move_and_changes_nothing(versions) -> None:
    promote(1)
    planned = promote(2, actor="promote_churn/run-2", dry_run=True)
    assert (planned.sequence, planned.from_version, planned.to_version) == (2, 1, 2)
    assert champion() == 1 and len(history()) == 1


def test_a_rollback_while_a_canary_runs_is_refused_until_it_is_cleared(versions) -> None:
    promote(1)
    promote(2, actor="promote_churn/run-2")
    registry.move_alias(MODEL, "canary", 3, kind="promote", actor="rollout", reason="step 1")
    with pytest.raises(registry.MoveRefused, match="canary v3 is still running"):
        rollback(1)
    registry.move_alias(MODEL, "canary", None, kind="rollback", actor="rb", reason="clear")
    rollback(1)
    assert champion() == 1
    assert registry.version_state(MODEL, 3) is State.REVERTED
