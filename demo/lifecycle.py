"""Run the workflow's DAGs through Airflow itself (`airflow dags test`) on a self-contained workspace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SOURCE_CONN_ID = "user_features_db"


class DagRunFailed(RuntimeError):
    """A DAG run ended failed; the message carries the task errors from its log."""


@dataclass(frozen=True)
class Workspace:
    """Every store of one lifecycle (MLflow, Airflow metadata, source data) under one folder.

    SQLite files by default; `mlflow_uri` and `source_url` can point at PostgreSQL instead.
    """

    root: Path
    mlflow_uri: str = ""
    source_url: str = ""

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_uri or f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def source(self) -> str:
        return self.source_url or f"sqlite:///{self.root / 'source.db'}"

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def environment(self, policies_dir: Path | None = None) -> dict[str, str]:
        """The environment every Airflow command of this workspace runs with."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "MLFLOW_", "PROMOTION_"))
        }
        env.update(
            {
                "AIRFLOW_HOME": str(self.airflow_home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.airflow_home / 'airflow.db'}",
                f"AIRFLOW_CONN_{SOURCE_CONN_ID.upper()}": self.source,
                "MLFLOW_TRACKING_URI": self.tracking_uri,
                "PROMOTION_ARTIFACT_ROOT": (self.root / "artifacts").as_uri(),
                "PROMOTION_WORK_DIR": str(self.root / "work"),
                # Read by the DAG file: rollback_<model>'s form shows the champion and target.
                "PROMOTION_CHAMPIONS_DIR": str(self.root / "champions"),
                "GIT_PYTHON_REFRESH": "quiet",
            }
        )
        if policies_dir is not None:
            env["PROMOTION_POLICIES_DIR"] = str(policies_dir)
        return env


class Lifecycle:
    """Drives Airflow's CLI for one workspace and keeps each command's output as a log file."""

    def __init__(self, workspace: Workspace, policies_dir: Path | None = None) -> None:
        self.workspace = workspace
        self.env = workspace.environment(policies_dir)
        self.airflow = str(Path(sys.executable).with_name("airflow"))
        self._step = 0

    def reset(self) -> None:
        """Start from empty stores (the SQLite files and folders of the workspace)."""
        shutil.rmtree(self.workspace.root, ignore_errors=True)
        self.workspace.logs.mkdir(parents=True)

    def prepare_airflow(self) -> None:
        """Create Airflow's metadata DB and serialize the DAGs, as the DAG processor would."""
        self.workspace.airflow_home.mkdir(parents=True, exist_ok=True)
        self._airflow("db-migrate", "db", "migrate")
        self._airflow("pools-import", "pools", "import", str(self._write_pools()))
        self._airflow("dags-reserialize", "dags", "reserialize")

    def _write_pools(self) -> Path:
        """One single-slot pool per model (its alias-moving tasks never run at the same time) and
        the training pool."""
        from policies import load_valid_policies
        from policies.resources import TrainingResources, airflow_pools

        policies, _ = load_valid_policies(self.env.get("PROMOTION_POLICIES_DIR"))
        pools = airflow_pools(policies, TrainingResources.from_environment(self.env))
        path = self.workspace.airflow_home / "pools.json"
        path.write_text(json.dumps(pools, indent=2))
        return path

    def run_dag(self, dag_id: str, conf: dict | None = None) -> Path:
        """Run one DAG through `airflow dags test`; raise DagRunFailed with the task errors."""
        return self.start_dag(dag_id, conf).wait()

    def start_dag(self, dag_id: str, conf: dict | None = None) -> BackgroundRun:
        """Start `airflow dags test` of one DAG in the background, for a run that waits on
        something the caller does meanwhile (an approval click, live traffic)."""
        args = ["dags", "test", dag_id]
        if conf:
            args += ["--conf", json.dumps(conf)]
        return self._start(dag_id, *args)

    def _airflow(self, label: str, *args: str) -> Path:
        return self._start(label, *args).wait()

    def _start(self, label: str, *args: str) -> BackgroundRun:
        self._step += 1
        log = self.workspace.logs / f"{self._step:02d}-{label}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [self.airflow, *args],
                env=self.env,
                cwd=PROJECT_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return BackgroundRun(f"airflow {' '.join(args)}", process, log)


@dataclass
class BackgroundRun:
    """One Airflow command running in the background, its output in `log`."""

    command: str
    process: subprocess.Popen
    log: Path

    def done(self) -> bool:
        """Whether the command has ended, however it ended."""
        return self.process.poll() is not None

    def wait(self, timeout_s: float | None = None) -> Path:
        """Wait for the command to end; raise DagRunFailed with the task errors unless it
        succeeded, or when it still runs after `timeout_s` (then it is stopped)."""
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise DagRunFailed(
                f"`{self.command}` not done within {timeout_s:.0f} s (log: {self.log})"
            ) from None
        if code != 0:
            raise DagRunFailed(
                f"`{self.command}` failed (log: {self.log}):\n{task_errors(self.log)}"
            )
        return self.log

    def stop(self) -> None:
        """Kill the command if it still runs."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def task_errors(log: Path, limit: int = 12) -> str:
    """The exception lines of a run's log: what a user needs to see of a failed run."""
    lines = log.read_text(errors="replace").splitlines()
    errors = [
        line.strip()
        for line in lines
        if any(marker in line for marker in ("Error:", "Exception:", "failed validation", "- "))
        and not line.lstrip().startswith(("File ", "^"))
    ]
    return "\n".join(errors[-limit:]) or "\n".join(lines[-limit:])
