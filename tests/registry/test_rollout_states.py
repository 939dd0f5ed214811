"""Rollout states in the ledger database (SQLite and PostgreSQL), saved by compare-and-set, and
their mirror on the MLflow version."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

import registry
from promotion import rollout_state as rs
from promotion.rollout_state import RolloutState, RolloutStateError
from registry.ledger import engine_with_tables
from registry.rollout_states import (
    RolloutStateConflict,
    metadata,
    read_state,
    rollout_states,
    write_state,
)

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def canary(model: str = "churn", version: int = 2) -> RolloutState:
    return rs.start(
        model,
        version,
        mode="canary",
        champion=1,
        started_by="promote_churn",
        traffic_steps=(0.2, 0.5),
        now=T0,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def test_a_saved_state_reads_back_at_its_new_revision(ledger: str) -> None:
    saved = write_state(ledger, canary())
    assert saved.revision == 1
    assert read_state(ledger, "churn", 2) == saved
    assert read_state(ledger, "churn", 3) is None


def test_each_save_from_the_revision_read_moves_the_revision_on(ledger: str) -> None:
    first = write_state(ledger, canary())
    stepped = write_state(ledger, rs.step_up(first, (0.2, 0.5), ["step 1 passed"], {}, T0))
    assert stepped.revision == 2
    assert (read_state(ledger, "churn", 2).step, read_state(ledger, "churn", 2).share) == (2, 0.5)


def test_a_save_from_a_stale_revision_is_refused_and_writes_nothing(ledger: str) -> None:
    read_by_both = write_state(ledger, canary())
    first = write_state(ledger, rs.record_wait(read_by_both, ["waiting for labels"], {}, T0))
    with pytest.raises(RolloutStateConflict, match=r"churn v2: .*read at revision 1 .* revision 2"):
        write_state(ledger, rs.step_up(read_by_both, (0.2, 0.5), ["passed"], {}, T0))
    assert read_state(ledger, "churn", 2) == first


def test_a_second_first_save_of_the_same_version_is_refused(ledger: str) -> None:
    write_state(ledger, canary())
    with pytest.raises(RolloutStateConflict, match="read at revision 0"):
        write_state(ledger, canary())


def test_a_row_that_is_not_a_state_names_the_version_and_field(ledger: str) -> None:
    saved = write_state(ledger, canary())
    broken = json.loads(saved.to_json()) | {"step": "two"}
    with engine_with_tables(ledger, metadata).begin() as connection:
        connection.execute(
            sa.update(rollout_states)
            .where(rollout_states.c.model_name == "churn")
            .values(state=json.dumps(broken))
        )
    with pytest.raises(
        RolloutStateError, match="churn v2: ledger: rollout state: field 'step': must be an int"
    ):
        read_state(ledger, "churn", 2)


@pytest.fixture
def version(mlflow_store: str, tmp_path: Path) -> int:
    registry.ensure_registered_model("churn")
    for i in (1, 2):
        registry.register_version(
            "churn", (tmp_path / f"m{i}").as_uri(), run_id=None, tags={}, description=""
        )
    return 2


def test_a_save_mirrors_the_state_and_the_canarys_share_onto_the_version(version: int) -> None:
    saved = registry.save_rollout_state(canary())
    tags = registry.get_version("churn", version).tags
    assert RolloutState.from_json(tags[rs.STATE_TAG], "churn v2") == saved
    assert tags[rs.SHARE_TAG] == "0.2"
    assert registry.rollout_state("churn", version) == saved


def test_a_version_without_a_rollout_has_no_state(version: int) -> None:
    assert registry.rollout_state("churn", version) is None


def test_loose_tags_of_the_previous_release_are_moved_into_the_ledger_once(version: int) -> None:
    registry.set_version_tags(
        "churn",
        version,
        {
            "rollout.mode": "canary",
            "rollout.started_at": T0.isoformat(),
            "rollout.started_by": "promote_churn",
            "rollout.champion_version": "1",
            "rollout.step": "1",
            "rollout.step_starts": json.dumps([T0.isoformat()]),
            "rollout.canary_share": "0.2",
            "rollout.status": "waiting for labels: 10 of 100",
        },
    )
    upgraded = registry.rollout_state("churn", version)
    assert upgraded == dataclasses.replace(
        canary(), status="waiting for labels: 10 of 100", revision=1
    )
    tags = registry.get_version("churn", version).tags
    assert {k for k in tags if k.startswith("rollout.")} == {rs.STATE_TAG, rs.SHARE_TAG}
    assert registry.rollout_state("churn", version) == upgraded
