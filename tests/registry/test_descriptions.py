"""The MLflow pages after moves on a real (SQLite) registry: each version's description opens with
its current state, the registered model's ends with the alias history, newest first."""

from __future__ import annotations

from pathlib import Path

import pytest

import registry
from registry import client as registry_client

MODEL = "churn"


@pytest.fixture
def versions(mlflow_store: str, tmp_path: Path) -> list[int]:
    registry.ensure_registered_model(MODEL, "Churn model of the demo.")
    return [
        registry.register_version(
            MODEL,
            (tmp_path / f"model{i}").as_uri(),
            run_id=None,
            tags={},
            description=f"Candidate trained on window {i}.",
        ).version
        for i in (1, 2)
    ]


def move(alias: str, to: int | None, kind: str, actor: str, reason: str, **evidence) -> None:
    registry.move_alias(MODEL, alias, to, kind=kind, actor=actor, reason=reason, evidence=evidence)  # type: ignore[arg-type]


def description(version: int) -> str:
    return registry_client.client().get_model_version(MODEL, str(version)).description


def promote_then_roll_back() -> None:
    move("champion", 1, "promote", "promote_churn/run-1", "first champion", roc_auc=0.8123456789)
    move("champion", 2, "promote", "promote_churn/run-2", "better", improvement=0.0312345678)
    move("champion", 1, "rollback", "rollback_churn/run-3 (triggered by alice)", "bad live AUC")


def test_after_a_rollback_each_version_says_what_it_is_now(versions: list[int]) -> None:
    promote_then_roll_back()

    restored, rolled_back = description(1), description(2)
    assert restored.startswith("**State: champion** again since ")
    assert (
        "put back by a rollback by `rollback_churn/run-3 (triggered by alice)`: bad live AUC"
        in (restored)
    )
    assert "Aliases now: `champion`." in restored
    assert restored.endswith("Candidate trained on window 1.")
    assert rolled_back.startswith("**State: rolled back** on ")
    assert "by `rollback_churn/run-3 (triggered by alice)`: bad live AUC;" in rolled_back
    assert "champion is now v1. Holds no alias." in rolled_back


def test_a_version_that_left_an_alias_loses_the_alias_tags(versions: list[int]) -> None:
    promote_then_roll_back()

    tags = registry.get_version(MODEL, 2).tags
    assert not [key for key in tags if key.startswith("alias.champion.")]
    assert registry.get_version(MODEL, 1).tags["alias.champion.by"].startswith("rollback_churn")


def test_the_evaluation_summary_stays_below_the_state_line(versions: list[int]) -> None:
    from registry.evaluation import record_evaluation

    move("challenger", 2, "candidate", "train_churn/run-1", "new candidate")
    record_evaluation(MODEL, 2, {}, "**Evaluation: promote** (roc_auc, superiority)")

    state, evaluation, note = description(2).split("\n\n---\n\n")
    assert state.startswith("**State: candidate** since ")
    assert "Aliases now: `challenger`." in state
    assert (evaluation, note) == (
        "**Evaluation: promote** (roc_auc, superiority)",
        "Candidate trained on window 2.",
    )


def test_the_model_description_ends_with_the_history_newest_first(versions: list[int]) -> None:
    promote_then_roll_back()

    text = registry_client.client().get_registered_model(MODEL).description
    base, history = text.split("\n\n---\n\n")
    assert base == "Churn model of the demo."
    rows = [line for line in history.splitlines() if line.startswith("| ") and "UTC" in line]
    assert [row.split(" | ")[1:4] for row in rows] == [
        ["`champion`", "v2 → v1", "rollback"],
        ["`champion`", "v1 → v2", "promote"],
        ["`champion`", "— → v1", "promote"],
    ]
    assert "improvement 0.03123" in rows[1] and "roc_auc 0.8123" in rows[2]
    assert "\\u" not in text and "0.8123456789" not in text


def test_history_tags_are_json_without_unicode_escapes(versions: list[int]) -> None:
    move("champion", 1, "promote", "promote_churn/run-1", "roc_auc 0.80 → 0.82")

    tags = registry_client.client().get_registered_model(MODEL).tags
    assert tags["alias_move.000001"].count("→") == 1
