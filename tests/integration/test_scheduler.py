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
from pathlib import Path

import mlflow
import pytest

import registry
from demo.lifecycle import Lifecycle, Workspace
from demo.source_data import as_of_for_window, generate_user_features, write_source

pytestmark = pytest.mark.integration
MODEL = "user_churn"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def scheduled_airflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lifecycle]:
    """API server, scheduler (LocalExecutor) and DAG processor on one workspace."""
    port = free_port()
    workspace = Workspace(tmp_path / "ws")
    lifecycle = Lifecycle(workspace)
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
        }
    )
    write_source(workspace.source, generate_user_features())
    lifecycle.prepare_airflow()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", workspace.tracking_uri)
    mlflow.set_tracking_uri(workspace.tracking_uri)
    processes = []
    for command in (
        ["api-server", "--host", "127.0.0.1", "--port", str(port)],
        ["scheduler"],
        ["dag-processor"],
    ):
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
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def dag_runs(workspace: Workspace) -> list[tuple[str, str, str]]:
    with sqlite3.connect(workspace.airflow_home / "airflow.db") as db:
        return list(db.execute("SELECT dag_id, run_type, state FROM dag_run ORDER BY id"))


def test_training_run_makes_the_scheduler_start_the_promotion(scheduled_airflow: Lifecycle) -> None:
    workspace = scheduled_airflow.workspace
    subprocess.run(
        [
            scheduled_airflow.airflow,
            "dags",
            "trigger",
            f"train_{MODEL}",
            "--conf",
            json.dumps({"as_of": as_of_for_window(1)}),
        ],
        env=scheduled_airflow.env,
        check=True,
        capture_output=True,
    )
    expected = [
        (f"train_{MODEL}", "manual", "success"),
        (f"promote_{MODEL}", "asset_triggered", "success"),
    ]
    deadline = time.monotonic() + 360
    while dag_runs(workspace) != expected:
        failed = [run for run in dag_runs(workspace) if run[2] == "failed"]
        assert not failed and time.monotonic() < deadline, (
            f"runs: {dag_runs(workspace)}; see the logs in {workspace.logs}"
        )
        time.sleep(2)
    assert registry.get_alias_version(MODEL, "champion") == 1
    assert registry.get_alias_version(MODEL, "challenger") is None
