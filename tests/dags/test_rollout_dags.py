"""rollout_<model> parses through Airflow's DagBag, exists only where a policy asks for a rollout,
and waits without holding a worker slot."""

from __future__ import annotations

from pathlib import Path

from tests.dags.parsing import run_on_dag_folder
from tests.support import write_policy

SCRIPT = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
dags = {}
for dag_id, dag in bag.dags.items():
    if dag_id.startswith("rollout_"):
        dags[dag_id] = {
            "schedule": [asset.uri for asset in dag.schedule],
            "max_active_runs": dag.max_active_runs,
            "tasks": {
                t.task_id: {
                    "upstream": sorted(t.upstream_task_ids),
                    "trigger_rule": getattr(t.trigger_rule, "value", t.trigger_rule),
                    "mode": getattr(t, "mode", None),
                    "poke_interval": getattr(t, "poke_interval", None),
                }
                for t in dag.tasks
            },
        }
print(json.dumps({"dag_ids": sorted(bag.dag_ids), "errors": {k: str(v) for k, v in
      bag.import_errors.items()}, "rollouts": dags}))
"""


def parse(policies_dir: Path) -> dict:
    return run_on_dag_folder(SCRIPT, {"PROMOTION_POLICIES_DIR": str(policies_dir)})


def test_only_policies_with_a_canary_or_shadow_get_a_rollout_dag(tmp_path: Path) -> None:
    write_policy(tmp_path, "plain")
    write_policy(tmp_path, "canaried", rollout={"mode": "canary"})
    write_policy(tmp_path, "shadowed", rollout={"mode": "shadow"})
    parsed = parse(tmp_path)
    assert parsed["errors"] == {}
    assert sorted(parsed["rollouts"]) == ["rollout_canaried", "rollout_shadowed"]
    assert "rollout_plain" not in parsed["dag_ids"]


def test_rollout_runs_on_the_promotions_asset_one_run_at_a_time(tmp_path: Path) -> None:
    write_policy(tmp_path, "canaried", rollout={"mode": "canary"})
    dag = parse(tmp_path)["rollouts"]["rollout_canaried"]
    assert dag["schedule"] == ["model-registry://canaried/rollout"]
    assert dag["max_active_runs"] == 1


def test_checks_wait_in_reschedule_mode_at_the_policys_interval(tmp_path: Path) -> None:
    write_policy(
        tmp_path,
        "canaried",
        rollout={"mode": "canary", "check_interval_seconds": 30, "guard_window_minutes": 60},
    )
    tasks = parse(tmp_path)["rollouts"]["rollout_canaried"]["tasks"]
    for sensor in ("watch_rollout", "guard_champion"):
        assert (tasks[sensor]["mode"], tasks[sensor]["poke_interval"]) == ("reschedule", 30.0)


def test_a_watch_that_fails_reverts_the_rollout(tmp_path: Path) -> None:
    write_policy(tmp_path, "canaried", rollout={"mode": "canary"})
    tasks = parse(tmp_path)["rollouts"]["rollout_canaried"]["tasks"]
    assert tasks["revert_unfinished"]["upstream"] == ["watch_rollout"]
    assert tasks["revert_unfinished"]["trigger_rule"] == "one_failed"


def test_guard_window_tasks_exist_only_when_the_policy_sets_a_window(tmp_path: Path) -> None:
    write_policy(tmp_path, "unguarded", rollout={"mode": "canary"})
    write_policy(tmp_path, "guarded", rollout={"mode": "canary", "guard_window_minutes": 60})
    rollouts = parse(tmp_path)["rollouts"]
    assert "guard_champion" not in rollouts["rollout_unguarded"]["tasks"]
    assert rollouts["rollout_guarded"]["tasks"]["settle_guard"]["upstream"] == [
        "conclude_rollout",
        "guard_champion",
    ]
