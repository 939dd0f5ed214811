"""The Asset chain under Airflow's own scheduler: a triggered training run registers a challenger,
and the scheduler starts promote_<model> by itself; nobody triggers the promotion."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest

import registry
from approval.testing.samples import ALICE
from approval.testing.slack_fake import FakeSlack
from demo.lifecycle import Lifecycle, Workspace
from demo.source_data import as_of_for_window, generate_user_features, write_source
from tests.support import write_policy

pytestmark = pytest.mark.integration
MODEL = "user_churn"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def scheduled_airflow(
    root: Path, policies_dir: Path | None = None, extra_env: dict[str, str] | None = None
) -> Iterator[Lifecycle]:
    """API server, scheduler (LocalExecutor), DAG processor and triggerer on one workspace."""
    port = free_port()
    workspace = Workspace(root / "ws")
    lifecycle = Lifecycle(workspace, policies_dir)
    lifecycle.reset()
    lifecycle.env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
            "AIRFLOW__API__SECRET_KEY": uuid.uuid4().hex,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            **(extra_env or {}),
        }
    )
    write_source(workspace.source, generate_user_features())
    lifecycle.prepare_airflow()
    mlflow.set_tracking_uri(workspace.tracking_uri)
    commands = (
        ["api-server", "--host", "127.0.0.1", "--port", str(port)],
        ["scheduler"],
        ["dag-processor"],
        ["triggerer"],
    )
    processes = []
    for command in commands:
        log = (workspace.logs / f"{command[0]}.log").open("w")
        processes.append(
            subprocess.Popen(
                [lifecycle.airflow, *command],
                env=lifecycle.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    try:
        yield lifecycle
    finally:
        mlflow.set_tracking_uri(None)
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def trigger_training(lifecycle: Lifecycle, window: int) -> None:
    subprocess.run(
        [
            lifecycle.airflow,
            "dags",
            "trigger",
            f"train_{MODEL}",
            "--conf",
            json.dumps({"as_of": as_of_for_window(window)}),
        ],
        env=lifecycle.env,
        check=True,
        capture_output=True,
    )


def wait_for_runs(
    workspace: Workspace, expected: list[tuple[str, str, str]], timeout: float
) -> None:
    """Wait until the DAG runs, in order, are exactly `expected` (dag_id, run_type, state)."""
    deadline = time.monotonic() + timeout
    while dag_runs(workspace) != expected:
        failed = [run for run in dag_runs(workspace) if run[2] == "failed"]
        assert not failed and time.monotonic() < deadline, (
            f"runs: {dag_runs(workspace)}; see the logs in {workspace.logs}\n"
            + failed_task_logs(workspace)
        )
        time.sleep(2)


def failed_task_logs(workspace: Workspace, lines: int = 30) -> str:
    """The last lines of each failed task's log, so a failure in CI shows its cause."""
    with sqlite3.connect(workspace.airflow_home / "airflow.db") as db:
        failed = db.execute(
            "SELECT dag_id, task_id FROM task_instance WHERE state IN ('failed', 'up_for_retry')"
        ).fetchall()
    excerpts = []
    for dag_id, task_id in failed:
        pattern = f"dag_id={dag_id}/*/task_id={task_id}/*.log"
        for log in sorted((workspace.airflow_home / "logs").glob(pattern)):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            excerpts.append(f"--- {dag_id}.{task_id} ({log.name}) ---\n" + "\n".join(tail))
    return "\n".join(excerpts) or "no failed task logs found"


def dag_runs(workspace: Workspace) -> list[tuple[str, str, str]]:
    with sqlite3.connect(workspace.airflow_home / "airflow.db") as db:
        return list(db.execute("SELECT dag_id, run_type, state FROM dag_run ORDER BY id"))


def test_training_run_makes_the_scheduler_start_the_promotion(tmp_path: Path) -> None:
    with scheduled_airflow(tmp_path) as lifecycle:
        trigger_training(lifecycle, window=1)
        wait_for_runs(
            lifecycle.workspace,
            [
                (f"train_{MODEL}", "manual", "success"),
                (f"promote_{MODEL}", "asset_triggered", "success"),
            ],
            timeout=360,
        )
        assert registry.get_alias_version(MODEL, "champion") == 1
        assert registry.get_alias_version(MODEL, "challenger") is None


def test_an_approval_nobody_gives_in_time_rejects_and_moves_nothing(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    write_policy(
        policies,
        MODEL,
        approval={
            "required": True,
            "channel": "#model-approvals",
            "approvers": [ALICE],
            "timeout_minutes": 1,
        },
    )
    with FakeSlack(token="xoxb-test") as slack:
        settings = {
            "APPROVAL_DB_URL": f"sqlite:///{tmp_path / 'approval.db'}",
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_API_URL": slack.url,
        }
        with scheduled_airflow(tmp_path, policies, settings) as lifecycle:
            trigger_training(lifecycle, window=1)
            wait_for_runs(
                lifecycle.workspace,
                [
                    (f"train_{MODEL}", "manual", "success"),
                    (f"promote_{MODEL}", "asset_triggered", "success"),
                ],
                timeout=420,
            )
            assert registry.get_alias_version(MODEL, "champion") is None
            assert registry.get_alias_version(MODEL, "challenger") is None  # rejected
            assert registry.get_version(MODEL, 1).tags["approval.status"] == "expired"
        assert len(slack.calls_of("chat.postMessage")) == 1
        [final] = slack.messages.values()  # the request, as its last update left it
        assert "xpired" in json.dumps(final)
