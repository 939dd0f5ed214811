"""The rollback task bodies: what they put back, what they refuse and why, and their retries."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import registry
from policies.loader import load_policy
from promotion.decisions import NothingToRollBack
from promotion.lifecycle import State
from tests.registry.support import save_loadable_model
from tests.support import write_policy
from workflow import rollback
from workflow.params import ParamError
from workflow.runs import RunContext

MODEL = "churn"
RUN = RunContext(dag_id="rollback_churn", run_id="manual__1")


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_loadable_model(tmp_path_factory.mktemp("model") / "model")


@pytest.fixture
def policy(tmp_path: Path):
    return load_policy(write_policy(tmp_path, MODEL))


@pytest.fixture
def versions(mlflow_store: str, saved_model: Path, tmp_path: Path) -> list[int]:
    """Four loadable versions; v1 then v2 promoted to champion."""
    registry.ensure_registered_model(MODEL)
    found = [
        registry.register_version(
            MODEL, str(saved_model), run_id=None, tags={}, description=""
        ).version
        for _ in range(4)
    ]
    for version, run in ((1, "promote_churn/run-1"), (2, "promote_churn/run-2")):
        registry.move_alias(MODEL, "champion", version, kind="promote", actor=run, reason="wins")
    return found


def champion() -> int | None:
    return registry.get_alias_version(MODEL, "champion")


def test_default_params_put_the_previous_champion_back(policy, versions) -> None:
    planned = rollback.plan(policy, None, False)
    assert (planned.from_version, planned.to_version) == (2, 1)
    rollback.apply(policy, planned, "bad predictions", RUN)
    assert champion() == 1
    assert registry.version_state(MODEL, 2) is State.ROLLED_BACK
    assert registry.get_version(MODEL, 2).tags["promotion.rollback_reason"] == "bad predictions"


def test_a_retried_apply_finds_its_rollback_done_and_moves_nothing(policy, versions) -> None:
    planned = rollback.plan(policy, None, False)
    rollback.apply(policy, planned, "bad predictions", RUN)
    rollback.apply(policy, planned, "bad predictions", RUN)
    assert champion() == 1
    assert [m.kind for m in registry.alias_history(MODEL, "champion")] == [
        "promote",
        "promote",
        "rollback",
    ]


def test_a_rerun_of_a_run_that_rolled_back_does_not_undo_its_own_rollback(policy, versions) -> None:
    rollback.apply(policy, rollback.plan(policy, None, False, RUN), "bad predictions", RUN)
    again = rollback.plan(policy, None, False, RUN)
    rollback.apply(policy, again, "bad predictions", RUN)
    assert champion() == 1
    assert len(registry.alias_history(MODEL, "champion")) == 3


def test_a_rollback_planned_before_another_move_is_refused_and_moves_nothing(
    policy, versions
) -> None:
    planned = rollback.plan(policy, None, False)
    registry.move_alias(
        MODEL, "champion", 3, kind="promote", actor="promote_churn/run-3", reason=""
    )
    with pytest.raises(NothingToRollBack, match="moved since the decision: it points at v3"):
        rollback.apply(policy, planned, "bad predictions", RUN)
    assert champion() == 3


def test_a_rollback_during_a_canary_clears_the_canary_first(policy, versions) -> None:
    registry.move_alias(MODEL, "canary", 3, kind="promote", actor="rollout", reason="step 1")
    planned = rollback.plan(policy, None, False)
    rollback.apply(policy, planned, "canary errors", RUN)
    assert registry.get_alias_version(MODEL, "canary") is None
    assert champion() == 1
    assert [(m.alias, m.to_version) for m in registry.alias_history(MODEL)][-2:] == [
        ("canary", None),
        ("champion", 1),
    ]
    assert registry.version_state(MODEL, 3) is State.REVERTED


def test_a_canary_started_after_the_plan_stops_the_rollback(policy, versions) -> None:
    planned = rollback.plan(policy, None, False)
    registry.move_alias(MODEL, "canary", 3, kind="promote", actor="rollout", reason="step 1")
    with pytest.raises(NothingToRollBack, match="canary v3 is still running"):
        rollback.apply(policy, planned, "bad predictions", RUN)
    assert champion() == 2


def test_a_version_that_never_was_champion_needs_force(policy, versions) -> None:
    with pytest.raises(NothingToRollBack, match="never champion; set force=true"):
        rollback.plan(policy, 4, False)
    rollback.apply(policy, rollback.plan(policy, 4, True), "hotfix build", RUN)
    assert champion() == 4
    assert registry.state_history(MODEL, 4)[-1].forced


def test_a_deleted_target_is_refused(policy, versions) -> None:
    registry.client.client().delete_model_version(MODEL, "1")
    with pytest.raises(NothingToRollBack, match="version 1 cannot be read from the registry"):
        rollback.plan(policy, None, False)
    assert champion() == 2


def test_a_target_whose_artifacts_no_longer_load_is_refused(
    policy, saved_model: Path, mlflow_store: str, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(saved_model, broken)
    (broken / "model.skops").unlink()
    registry.ensure_registered_model(MODEL)
    for source in (broken, saved_model):
        registry.register_version(MODEL, str(source), run_id=None, tags={}, description="")
    for version, run in ((1, "promote_churn/run-1"), (2, "promote_churn/run-2")):
        registry.move_alias(MODEL, "champion", version, kind="promote", actor=run, reason="wins")
    with pytest.raises(NothingToRollBack, match="version 1's artifacts no longer load"):
        rollback.plan(policy, None, False)
    assert champion() == 2


@pytest.mark.parametrize("force", [False, True])
def test_a_version_param_naming_no_version_is_refused_by_name(policy, versions, force) -> None:
    with pytest.raises(
        ParamError, match="DAG param version: churn has no version 9 in the registry"
    ):
        rollback.plan(policy, 9, force)
    assert champion() == 2
    assert len(registry.alias_history(MODEL, "champion")) == 2
