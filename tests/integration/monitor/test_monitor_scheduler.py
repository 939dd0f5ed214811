"""Under Airflow's own scheduler a fired trigger starts train_<model> through the retrain Asset, and
the version it registers carries the trigger that started it."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
import pandas as pd
import pytest

import registry
from demo.source_data import generate_user_features, write_source
from tests.integration.rollout.support import log_model
from tests.integration.test_scheduler import dag_runs, scheduled_airflow
from tests.support import write_policy

pytestmark = pytest.mark.integration
MODEL = "user_churn"
DAYS = 120


def recent_source(now: datetime) -> pd.DataFrame:
    """The demo's rows, moved so that they end now (a training window ending today has rows)."""
    frame = generate_user_features(days=DAYS, rows_per_day=80)
    frame["created_at"] += now - timedelta(days=DAYS) - frame["created_at"].min().to_pydatetime()
    return frame


def monitor_run_ids(workspace) -> set[str]:
    with sqlite3.connect(workspace.airflow_home / "airflow.db") as db:
        rows = db.execute("SELECT run_id FROM dag_run WHERE dag_id = ?", (f"monitor_{MODEL}",))
        return {run_id for (run_id,) in rows}


def test_a_fired_trigger_starts_training_through_the_asset(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    write_policy(
        policies,
        MODEL,
        triggers={"check_every": "0 0 1 1 *", "data_volume": {"min_new_rows": 500}},
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    with scheduled_airflow(tmp_path, policies) as lifecycle:
        workspace = lifecycle.workspace
        write_source(workspace.source, recent_source(now))
        experiment = mlflow.create_experiment("champions", str(tmp_path / "artifacts"))
        uri, run_id = log_model(experiment, flip_labels=False, strength=1.0)
        registry.ensure_registered_model(MODEL)
        champion = registry.register_version(
            MODEL,
            uri,
            run_id=run_id,
            tags={"lineage.holdout_end": (now - timedelta(days=30)).isoformat()},
            description="",
        ).version
        registry.move_alias(MODEL, "champion", champion, kind="promote", actor="setup", reason="")

        subprocess.run(
            [lifecycle.airflow, "dags", "trigger", f"monitor_{MODEL}"],
            env=lifecycle.env,
            check=True,
            capture_output=True,
        )
        deadline = time.monotonic() + 600
        wanted = {(f"train_{MODEL}", "asset_triggered", "success")}
        while not wanted <= set(dag_runs(workspace)):
            runs = dag_runs(workspace)
            assert not [r for r in runs if r[2] == "failed" and r[0] != f"promote_{MODEL}"], runs
            assert time.monotonic() < deadline, f"runs: {runs}; logs in {workspace.logs}"
            time.sleep(2)

        trained = registry.get_version(MODEL, champion + 1)
        assert trained.tags["lineage.trigger"] == "data_volume"
        detail = json.loads(trained.tags["lineage.trigger_detail"])
        assert (detail["kinds"], detail["champion_version"]) == (["data_volume"], champion)
        # The manual run, or the scheduled one the scheduler starts for the last cron tick.
        assert detail["monitor_run_id"] in monitor_run_ids(workspace)
        run = mlflow.get_run(trained.run_id)
        assert run.data.tags["lineage.trigger"] == "data_volume"
        artifacts = {
            a.path for a in mlflow.MlflowClient().list_artifacts(trained.run_id, "monitoring")
        }
        assert artifacts == {"monitoring/reference_profile.json"}
