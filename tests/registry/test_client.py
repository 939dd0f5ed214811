"""The registry edge against a real (SQLite) MLflow store."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException

import registry

MODEL = "churn"


@pytest.fixture
def versions(mlflow_store: str, tmp_path: Path) -> list[int]:
    registry.ensure_registered_model(MODEL)
    return [
        registry.register_version(
            MODEL,
            (tmp_path / f"model{i}").as_uri(),
            run_id=None,
            tags={"lineage.n": str(i)},
            description="",
        ).version
        for i in (1, 2, 3)
    ]


def move(to: int | None, alias: str = "champion", kind: str = "promote"):
    return registry.move_alias(
        MODEL, alias, to, kind=kind, actor="promote_churn/run-1", reason="test"
    )  # type: ignore[arg-type]


def test_alias_move_is_recorded_with_from_and_to(versions: list[int]) -> None:
    move(1)
    recorded = move(2)
    assert registry.get_alias_version(MODEL, "champion") == 2
    assert (recorded.from_version, recorded.to_version, recorded.sequence) == (1, 2, 2)
    history = registry.alias_history(MODEL, "champion")
    assert [(m.from_version, m.to_version) for m in history] == [(None, 1), (1, 2)]
    assert registry.get_version(MODEL, 2).tags["alias.champion.by"] == "promote_churn/run-1"


def test_rerunning_a_move_changes_nothing(versions: list[int]) -> None:
    move(1)
    assert move(1) is None
    assert len(registry.alias_history(MODEL)) == 1


def test_an_alias_set_without_a_record_is_not_taken_for_the_workflows_move(
    versions: list[int],
) -> None:
    # A crashed move leaves its intent in the ledger and is settled from it; an alias set with
    # no record at all was set around the workflow, even when it is where the move would go.
    move(1)
    registry.client.client().set_registered_model_alias(MODEL, "champion", "2")
    with pytest.raises(registry.AliasMovedOutsideWorkflow):
        move(2)
    assert len(registry.alias_history(MODEL, "champion")) == 1


def test_removing_an_alias_is_recorded(versions: list[int]) -> None:
    move(3, alias="challenger", kind="candidate")
    removed = move(None, alias="challenger", kind="reject")
    assert registry.get_alias_version(MODEL, "challenger") is None
    assert (removed.from_version, removed.to_version) == (3, None)


def test_moving_to_a_missing_version_moves_nothing(versions: list[int]) -> None:
    move(1)
    with pytest.raises(MlflowException):
        move(42)
    assert registry.get_alias_version(MODEL, "champion") == 1
    assert len(registry.alias_history(MODEL)) == 1


def test_unset_alias_and_unknown_model_read_as_none(versions: list[int]) -> None:
    assert registry.get_alias_version(MODEL, "champion") is None
    assert registry.get_alias_version("no_such_model", "champion") is None
    assert registry.alias_history("no_such_model") == []


def test_version_found_by_lineage_tag(versions: list[int]) -> None:
    assert registry.find_version_by_tag(MODEL, "lineage.n", "2").version == 2
    assert registry.find_version_by_tag(MODEL, "lineage.n", "9") is None
