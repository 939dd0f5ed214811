"""An alias moved around the workflow (straight in MLflow) is noticed by the next move: refused
with the reason, and recorded in the ledger database for the monitoring view."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

import registry
from registry import client as registry_client
from registry.alias_drift import read_alias_drifts
from registry.settings import ledger_url

MODEL = "churn"


@pytest.fixture
def versions(mlflow_store: str, tmp_path: Path) -> list[int]:
    registry.ensure_registered_model(MODEL)
    return [
        registry.register_version(
            MODEL, (tmp_path / f"model{i}").as_uri(), run_id=None, tags={}, description=""
        ).version
        for i in (1, 2, 3)
    ]


def promote(to: int, actor: str = "promote_churn/run-1", **options):
    return registry.move_alias(
        MODEL, "champion", to, kind="promote", actor=actor, reason="test", **options
    )


def drifts():
    return read_alias_drifts(ledger_url(mlflow.get_tracking_uri()), MODEL)


def test_a_champion_set_by_hand_makes_the_next_move_refuse_with_the_reason(versions) -> None:
    promote(1)
    registry_client.client().set_registered_model_alias(MODEL, "champion", "3")
    with pytest.raises(registry.AliasMovedOutsideWorkflow) as refused:
        promote(2, actor="promote_churn/run-2", expected_from=1)
    message = str(refused.value)
    assert "churn@champion was moved outside the workflow: MLflow has it at v3" in message
    assert "left it at v1" in message and "Nothing was moved" in message
    assert registry.get_alias_version(MODEL, "champion") == 3
    assert len(registry.alias_history(MODEL)) == 1
    (drift,) = drifts()
    assert (drift.alias, drift.ledger_version, drift.registry_version) == ("champion", 1, 3)
    assert (drift.attempted_by, drift.attempted_move, drift.refused) == (
        "promote_churn/run-2",
        "v2 (promote)",
        True,
    )


def test_an_alias_removed_by_hand_is_drift_too(versions) -> None:
    promote(1)
    registry_client.client().delete_registered_model_alias(MODEL, "champion")
    with pytest.raises(registry.AliasMovedOutsideWorkflow, match="MLflow has it at nothing"):
        promote(2, actor="promote_churn/run-2")


def test_every_refused_move_is_recorded_newest_first(versions) -> None:
    promote(1)
    registry_client.client().set_registered_model_alias(MODEL, "champion", "3")
    for run in ("run-2", "run-3"):
        with pytest.raises(registry.AliasMovedOutsideWorkflow):
            promote(2, actor=f"promote_churn/{run}")
    assert [d.attempted_by for d in drifts()] == ["promote_churn/run-3", "promote_churn/run-2"]


def test_a_forced_move_records_the_correction_over_the_drift(versions) -> None:
    promote(1)
    registry_client.client().set_registered_model_alias(MODEL, "champion", "3")
    moved = registry.move_alias(
        MODEL,
        "champion",
        1,
        kind="rollback",
        actor="rollback_churn/run-1",
        reason="undo",
        force=True,
    )
    assert moved is not None and (moved.from_version, moved.to_version) == (3, 1)
    assert registry.get_alias_version(MODEL, "champion") == 1
    (drift,) = drifts()
    assert drift.refused is False
    promote(2, actor="promote_churn/run-2")  # in step again: moves go on
    assert registry.get_alias_version(MODEL, "champion") == 2


def test_a_dry_run_reports_the_drift_without_recording_it(versions) -> None:
    promote(1)
    registry_client.client().set_registered_model_alias(MODEL, "champion", "3")
    with pytest.raises(registry.AliasMovedOutsideWorkflow):
        promote(2, actor="promote_churn/run-2", dry_run=True)
    assert drifts() == []


def test_the_refusal_reaches_slack_as_the_failed_tasks_notice(
    versions, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowFailException

    from approval.testing.slack_fake import FakeSlack
    from workflow.notify import FailureNotifier

    promote(1)
    registry_client.client().set_registered_model_alias(MODEL, "champion", "3")
    try:
        try:
            promote(2, actor="promote_churn/run-2")
        except registry.MoveRefused as refusal:  # what the DAG's fail-fast wrapper does
            raise AirflowFailException(str(refusal)) from refusal
    except AirflowFailException as failed:
        error = failed
    ti = SimpleNamespace(
        dag_id="promote_churn", task_id="promote", run_id="manual__1", try_number=1
    )
    with FakeSlack(token="xoxb-test") as slack:
        monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
        monkeypatch.setenv("SLACK_API_URL", slack.url)
        FailureNotifier(model_name=MODEL, channel="#ml-alerts").notify(
            {"ti": ti, "exception": error}
        )
        (posted,) = slack.calls_of("chat.postMessage")
    assert posted.payload["channel"] == "#ml-alerts"
    assert (
        "AliasMovedOutsideWorkflow: churn@champion was moved outside the workflow"
        in (posted.payload["text"])
    )
