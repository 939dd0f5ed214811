"""Kill the task process at each step of a promotion and a rollback; Airflow reruns it.

One DAG run (tests/integration/registry/dags/registry_faults.py) holds one chain per fault point,
each on its own model. The apply task's first try is killed with SIGKILL at its fault point;
Airflow's LocalExecutor sees the process die and its retry reruns the task. Afterwards every model
must satisfy the invariants: `champion` points at a version that passed its gates or was explicitly
rolled back to, each move of the run is recorded exactly once (ledger and MLflow tags alike), no
write is left half done, no alias points at a missing version, and each move is notified once.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import registry
from promotion.lifecycle import State
from registry import moves
from registry.client import client
from registry.serving import get_model_aliases
from tests.registry.support import save_loadable_model

pytestmark = pytest.mark.integration

PROMOTE_FAULTS = (
    "after_decision",
    "before_alias_set",
    "after_alias_set",
    "after_history_write",
    "after_mirror",
    "between_moves",
    "before_notification",
)
ROLLBACK_FAULTS = (
    "after_plan",
    "canary_after_alias_set",
    "before_alias_set",
    "after_alias_set",
    "after_history_write",
    "after_mirror",
    "before_rollback_tags",
    "before_notification",
)
SCENARIOS = [("promote", fault) for fault in PROMOTE_FAULTS] + [
    ("rollback", fault) for fault in ROLLBACK_FAULTS
]


@dataclass(frozen=True)
class FaultRun:
    airflow_db: Path
    outbox: Path


def model_of(flow: str, fault: str) -> str:
    return f"{flow}_{fault}"


def set_up_promotion(model: str, source: Path) -> None:
    """v1 champion, v2 the evaluated challenger."""
    for _ in range(2):
        registry.register_version(model, str(source), run_id=None, tags={}, description="")
    registry.move_alias(model, "challenger", 1, kind="candidate", actor="train/1", reason="new")
    registry.move_alias(model, "champion", 1, kind="promote", actor="promote/1", reason="first")
    registry.move_alias(model, "challenger", 2, kind="candidate", actor="train/2", reason="new")
    registry.record_transition(model, 2, "evaluated", actor="promote/2", reason="wins")


def set_up_rollback(model: str, source: Path, with_canary: bool) -> None:
    """v1 then v2 promoted; with a canary, v3 serves a share of traffic."""
    for _ in range(3):
        registry.register_version(model, str(source), run_id=None, tags={}, description="")
    registry.move_alias(model, "champion", 1, kind="promote", actor="promote/1", reason="first")
    registry.move_alias(model, "champion", 2, kind="promote", actor="promote/2", reason="wins")
    if with_canary:
        registry.move_alias(model, "canary", 3, kind="promote", actor="rollout/3", reason="5%")


@pytest.fixture(scope="module")
def fault_run(airflow_executor, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultRun]:
    """Set up one model per scenario, then run the fault DAG once through Airflow."""
    import mlflow

    root = tmp_path_factory.mktemp("faults")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    source = save_loadable_model(root / "model")
    outbox = root / "outbox.txt"
    scenarios = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        mlflow.set_tracking_uri(tracking_uri)
        for flow, fault in SCENARIOS:
            model = model_of(flow, fault)
            registry.ensure_registered_model(model)
            if flow == "promote":
                set_up_promotion(model, source)
            else:
                set_up_rollback(model, source, with_canary=fault == "canary_after_alias_set")
            scenarios.append({"model": model, "flow": flow, "fault": fault, "outbox": str(outbox)})
        (root / "scenarios.json").write_text(json.dumps(scenarios))
        airflow_executor.dags_test(
            "registry_faults",
            {"MLFLOW_TRACKING_URI": tracking_uri, "REGISTRY_FAULTS": str(root / "scenarios.json")},
            timeout_s=600,
        )
        yield FaultRun(airflow_db=airflow_executor.home / "airflow.db", outbox=outbox)
        mlflow.set_tracking_uri(None)


def run_moves(model: str) -> list[tuple[str, int | None, int | None, str]]:
    return [
        (m.alias, m.from_version, m.to_version, m.kind)
        for m in registry.alias_history(model)
        if m.actor.startswith("registry_faults/")
    ]


def assert_recorded_once_everywhere(model: str, run: FaultRun) -> None:
    ledger = moves.current_ledger()
    assert ledger.pending(model) is None, "a write was left half done"
    history = ledger.moves(model)
    tags = client().get_registered_model(model).tags
    mirrored = {k: json.loads(v) for k, v in tags.items() if k.startswith("alias_move.")}
    assert sorted(mirrored) == [f"alias_move.{m.sequence:06d}" for m in history]
    for move in history:
        copy = mirrored[f"alias_move.{move.sequence:06d}"]
        assert (copy["alias"], copy["from_version"], copy["to_version"], copy["actor"]) == (
            move.alias,
            move.from_version,
            move.to_version,
            move.actor,
        )
    for alias, version in get_model_aliases(model).items():
        assert registry.get_version(model, version).status == "READY", (alias, version)
    notified = [
        line for line in run.outbox.read_text().splitlines() if line.startswith(f"{model} ")
    ]
    run_sequences = [m.sequence for m in history if m.actor.startswith("registry_faults/")]
    assert sorted(notified) == sorted(
        f"{model} #{m.sequence} {m.alias} → {m.to_version}"
        for m in history
        if m.sequence in run_sequences
    )


def apply_tries(run: FaultRun, flow: str, fault: str) -> tuple[str, int]:
    index = SCENARIOS.index((flow, fault))
    with sqlite3.connect(run.airflow_db) as db:
        return db.execute(
            "SELECT state, try_number FROM task_instance WHERE dag_id = 'registry_faults' "
            "AND task_id = ?",
            (f"apply_{index}",),
        ).fetchone()


@pytest.mark.parametrize("fault", PROMOTE_FAULTS)
def test_a_promotion_killed_mid_way_completes_once_when_airflow_reruns_it(
    fault_run: FaultRun, fault: str
) -> None:
    model = model_of("promote", fault)
    assert apply_tries(fault_run, "promote", fault) == ("success", 2)
    assert registry.get_alias_version(model, "champion") == 2
    assert registry.get_alias_version(model, "challenger") is None
    assert run_moves(model) == [
        ("champion", 1, 2, "promote"),
        ("challenger", 2, None, "promote"),
    ]
    champion = registry.state_history(model, 2)
    assert [c.to_state for c in champion][-2:] == [State.EVALUATED, State.CHAMPION]
    assert registry.version_state(model, 1) is State.RETIRED
    assert_recorded_once_everywhere(model, fault_run)


@pytest.mark.parametrize("fault", ROLLBACK_FAULTS)
def test_a_rollback_killed_mid_way_completes_once_when_airflow_reruns_it(
    fault_run: FaultRun, fault: str
) -> None:
    model = model_of("rollback", fault)
    assert apply_tries(fault_run, "rollback", fault) == ("success", 2)
    assert registry.get_alias_version(model, "champion") == 1
    expected = [("champion", 2, 1, "rollback")]
    if fault == "canary_after_alias_set":
        expected = [("canary", 3, None, "rollback"), *expected]
        assert registry.version_state(model, 3) is State.REVERTED
    assert get_model_aliases(model).get("canary") is None
    assert run_moves(model) == expected
    assert registry.state_history(model, 1)[-1].cause == "rollback"
    assert registry.version_state(model, 1) is State.CHAMPION
    assert registry.version_state(model, 2) is State.ROLLED_BACK
    assert (
        registry.get_version(model, 2)
        .tags["promotion.rolled_back_by"]
        .startswith("registry_faults/")
    )
    assert_recorded_once_everywhere(model, fault_run)
