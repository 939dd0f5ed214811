"""Test-only DAG: promotions and rollbacks whose task process is killed (SIGKILL) at a chosen step.

One chain of tasks per scenario listed in the JSON file named by REGISTRY_FAULTS, each on a model of
its own: decide → apply → notify for a promotion, plan → apply → notify for a rollback (the real
`workflow.rollback` task bodies). On its first try, an apply task arms its scenario's fault point
and dies there; Airflow's own retry reruns it. The promotion's apply makes the same registry calls
as `promote_<model>` (the champion moved by compare-and-set, then the challenger cleared).
"""

from __future__ import annotations

import json
import os
import signal
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from airflow.sdk import dag, get_current_context, task

import registry
from policies.loader import POLICIES_DIR
from policies.schema import Policy
from registry import moves
from registry.ledger import LockedLedger
from workflow import rollback
from workflow.runs import RunContext

SCENARIOS = json.loads(Path(os.environ["REGISTRY_FAULTS"]).read_text())
RETRY = {"retries": 2, "retry_delay": timedelta(seconds=1)}


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _wrap(owner: object, name: str, *, before: bool, alias: str | None = None) -> None:
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        hit = alias is None or alias in args
        if before and hit:
            _die()
        result = original(*args, **kwargs)
        if hit:
            _die()
        return result

    setattr(owner, name, wrapper)


ARM = {
    "before_alias_set": lambda: _wrap(moves, "_point_alias", before=True),
    "after_alias_set": lambda: _wrap(moves, "_point_alias", before=False),
    "canary_after_alias_set": lambda: _wrap(moves, "_point_alias", before=False, alias="canary"),
    "after_history_write": lambda: _wrap(LockedLedger, "record", before=False),
    "after_mirror": lambda: _wrap(moves, "_mirror", before=False),
    "between_moves": lambda: _wrap(registry, "move_alias", before=True, alias="challenger"),
    "before_rollback_tags": lambda: _wrap(registry, "set_version_tags", before=True),
}


def _first_try() -> bool:
    return get_current_context()["ti"].try_number == 1


def _arm(fault: str) -> None:
    """Die now for a fault at the start of the task; else arm the wrapper that dies later."""
    if not _first_try():
        return
    if fault in ("after_decision", "after_plan"):
        _die()
    if fault in ARM:
        ARM[fault]()


def _run() -> RunContext:
    dag_run = get_current_context()["dag_run"]
    return RunContext(dag_id=dag_run.dag_id, run_id=dag_run.run_id)


def _policy(model: str) -> Policy:
    data = yaml.safe_load((POLICIES_DIR / "user_churn.yaml").read_text())
    return Policy.model_validate({**data, "model_name": model})


def _notify(scenario: dict, result: dict) -> None:
    """Stand-in for the Slack notice: one line per move of this run, kept once."""
    outbox = Path(scenario["outbox"])
    sent = set(outbox.read_text().splitlines()) if outbox.exists() else set()
    for move in registry.alias_history(scenario["model"]):
        line = f"{scenario['model']} #{move.sequence} {move.alias} → {move.to_version}"
        if move.actor == result["actor"] and line not in sent:
            with outbox.open("a") as out:
                out.write(line + "\n")


def build_promotion(index: int, scenario: dict) -> None:
    model, fault = scenario["model"], scenario["fault"]

    @task(task_id=f"decide_{index}")
    def decide() -> dict:
        return {
            "champion": registry.get_alias_version(model, "champion"),
            "challenger": registry.get_alias_version(model, "challenger"),
            "action": "promote",
        }

    @task(task_id=f"apply_{index}", **RETRY)
    def apply(decision: dict) -> dict:
        _arm(fault)
        run = _run()
        registry.set_version_tags(model, decision["challenger"], {"promotion.verdict": "promote"})
        registry.move_alias(
            model,
            "champion",
            decision["challenger"],
            kind="promote",
            actor=run.actor,
            reason="challenger wins",
            evidence={"challenger_score": 0.8, "champion_score": 0.7},
            expected_from=decision["champion"],
        )
        registry.move_alias(
            model,
            "challenger",
            None,
            kind="promote",
            actor=run.actor,
            reason="evaluated: promote",
            expected_from=decision["challenger"],
        )
        if fault == "before_notification" and _first_try():
            _die()
        return {"actor": run.actor}

    @task(task_id=f"notify_{index}", **RETRY)
    def notify(result: dict) -> None:
        _notify(scenario, result)

    notify(apply(decide()))


def build_rollback(index: int, scenario: dict) -> None:
    model, fault = scenario["model"], scenario["fault"]

    @task(task_id=f"plan_{index}")
    def plan() -> dict:
        return rollback.plan(_policy(model), None, False, _run()).to_xcom()

    @task(task_id=f"apply_{index}", **RETRY)
    def apply(planned: dict) -> dict:
        _arm(fault)
        run = _run()
        rollback.apply(
            _policy(model),
            rollback.PlannedRollback.from_xcom(planned),
            "fault-injection rollback",
            run,
        )
        if fault == "before_notification" and _first_try():
            _die()
        return {"actor": run.actor}

    @task(task_id=f"notify_{index}", **RETRY)
    def notify(result: dict) -> None:
        _notify(scenario, result)

    notify(apply(plan()))


@dag(schedule=None, start_date=datetime(2026, 1, 1), catchup=False, max_active_runs=1)
def registry_faults():
    for index, scenario in enumerate(SCENARIOS):
        builder = build_promotion if scenario["flow"] == "promote" else build_rollback
        builder(index, scenario)


registry_faults()
