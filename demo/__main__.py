"""`make demo`: the whole lifecycle on embedded SQLite stores under var/demo/, printed as a timeline."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from demo.lifecycle import PROJECT_ROOT, DagRunFailed, Lifecycle, Workspace
from demo.live import MODEL as LIVE_MODEL
from demo.live import VIEW_PORT, LiveServices, retrain_on_trigger, run_live_lifecycle
from demo.report import announce, print_how_to_look, print_state, print_timeline
from demo.services import ServiceFailed
from demo.source_data import as_of_for_window, generate_user_features, write_source

MODEL = "user_churn"
DEMO_POLICIES = Path(__file__).resolve().parent / "policies"


def main() -> int:
    workspace = Workspace(PROJECT_ROOT / "var" / "demo")
    policies_dir = workspace.root / "policies"
    lifecycle = Lifecycle(workspace, policies_dir)
    # Nothing runs on its own: the demo runs each DAG, and unpauses what the scheduler is to start.
    lifecycle.env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "True"
    lifecycle.reset()
    compose_policies(policies_dir)
    os.environ["MLFLOW_TRACKING_URI"] = workspace.tracking_uri
    started = time.monotonic()

    source = generate_user_features()
    rows = write_source(workspace.source, source)
    print(f"source: {rows} rows of user_features (drifting from 2026-03-20) in {workspace.source}")
    print(f"policies: {', '.join(p.stem for p in sorted(policies_dir.glob('*.yaml')))}")

    services = LiveServices(lifecycle)
    try:
        print("airflow: creating the metadata DB and serializing the DAGs …")
        lifecycle.prepare_airflow()
        services.start_airflow()
        print(
            f"services: Airflow's api-server starting, Slack's fake Web API at {services.slack.url}"
        )
        run_steps(lifecycle, MODEL, offline_steps())
        print_timeline(MODEL)
        services.start_endpoints()
        print("services: the approval endpoint and the gateway answer on loopback")
        run_live_lifecycle(lifecycle, services, source)
        retrain_on_trigger(lifecycle, services, source)
        print_timeline(LIVE_MODEL)
    except (DagRunFailed, ServiceFailed, TimeoutError) as failure:
        print(f"\n✗ {failure}", file=sys.stderr)
        return 1
    finally:
        services.stop()

    print(f"\nDone in {time.monotonic() - started:.0f} s.")
    print_how_to_look(workspace, services.env_file, VIEW_PORT)
    return 0


def compose_policies(directory: Path) -> None:
    """The demo's policies: the shipped ones (policies/) and the demo's own (demo/policies/)."""
    from policies.loader import policy_files

    directory.mkdir(parents=True)
    for path in policy_files() + policy_files(DEMO_POLICIES):
        shutil.copy(path, directory / path.name)


def offline_steps() -> list[tuple[str, dict | None, str]]:
    """user_churn's lifecycle: first champion, drift, a challenger no better, a rollback."""
    return [
        ("train_" + MODEL, {"as_of": as_of_for_window(1)}, "train on window 1 (before the drift)"),
        ("promote_" + MODEL, None, "promote: no champion yet"),
        ("train_" + MODEL, {"as_of": as_of_for_window(2)}, "train on window 2 (after the drift)"),
        ("promote_" + MODEL, None, "promote: challenger vs champion on the fresh holdout"),
        ("train_" + MODEL, {"as_of": as_of_for_window(3)}, "train a week later (same regime)"),
        ("promote_" + MODEL, None, "promote: a challenger no better than the champion"),
        (
            "rollback_" + MODEL,
            # The preflight scores both versions on the newest window: v1 (trained before the
            # drift) scores far below v2 there, so only a forced rollback puts it back.
            {"reason": "demo: one-click rollback", "as_of": as_of_for_window(3), "force": True},
            "rollback, forced past the preflight (v1 scores worse on the newest window)",
        ),
    ]


def run_steps(lifecycle: Lifecycle, model: str, steps: list[tuple[str, dict | None, str]]) -> None:
    """Run each step's DAG through `airflow dags test`, printing the aliases after it."""
    for dag_id, conf, title in steps:
        announce(title, dag_id, conf)
        lifecycle.run_dag(dag_id, conf)
        print_state(model)


if __name__ == "__main__":
    sys.exit(main())
