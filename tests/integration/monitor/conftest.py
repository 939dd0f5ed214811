"""Fixtures of the monitor's integration tests: one workspace (MLflow store, Airflow home, source
database) with a policy per scenario, a champion per model registered with its lineage, and the
serving gateway under real uvicorn for the traffic and labels the monitor reads."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from demo.lifecycle import Lifecycle, Workspace
from demo.services import start_gateway
from tests.integration.monitor.support import (
    API_TOKEN,
    SCENARIOS,
    Rig,
    champion_tags,
    source_rows,
    write_rows,
)
from tests.integration.rollout.support import log_model
from tests.support import write_policy

STARTUP_TIMEOUT_S = 90


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    import mlflow

    import registry
    from workflow.profile import log_profile

    root = tmp_path_factory.mktemp("monitor")
    workspace = Workspace(root)
    policies_dir = root / "policies"
    policies_dir.mkdir()
    now = datetime.now(UTC).replace(tzinfo=None)
    source_url = f"sqlite:///{root / 'source.db'}"
    rows = source_rows(now - timedelta(days=40), now - timedelta(days=10), 3000)
    write_rows(source_url, rows)
    training_window = rows[rows["created_at"] < now - timedelta(days=24)]
    for model, scenario in SCENARIOS.items():
        write_policy(
            policies_dir,
            model,
            source__conn_id=None,
            source__url=scenario.source_url or source_url,
            source__features={
                "numeric": ["sessions_7d", "days_since_signup"],
                "categorical": ["plan"],
            },
            triggers=scenario.triggers,
        )
    previous_uri = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = workspace.tracking_uri
    mlflow.set_tracking_uri(workspace.tracking_uri)
    experiment = mlflow.create_experiment(
        "monitor-tests", artifact_location=str(root / "artifacts")
    )
    # An earlier test of the session may have left another experiment active, and MLflow
    # refuses to resume a run of one experiment while another is active.
    mlflow.set_experiment(experiment_id=experiment)
    for model, scenario in SCENARIOS.items():
        uri, run_id = log_model(experiment, flip_labels=False, strength=1.0)
        if scenario.profile:
            with mlflow.start_run(run_id=run_id):
                log_profile(training_window, scenario.features)
        registry.ensure_registered_model(model)
        version = registry.register_version(
            model, uri, run_id=run_id, tags=champion_tags(now), description=""
        ).version
        registry.move_alias(model, "champion", version, kind="promote", actor="setup", reason="")

    log_url = f"sqlite:///{root / 'predictions.db'}"
    gateway = start_gateway(
        list(SCENARIOS),
        tracking_uri=workspace.tracking_uri,
        log_url=log_url,
        api_token=API_TOKEN,
        log=root / "gateway.log",
        env=dict(os.environ),
    )
    try:
        gateway.wait_ready("/ready", STARTUP_TIMEOUT_S)
        lifecycle = Lifecycle(workspace, policies_dir)
        workspace.logs.mkdir(parents=True, exist_ok=True)
        lifecycle.env["GATEWAY_LOG_URL"] = log_url
        lifecycle.prepare_airflow()
        yield Rig(lifecycle, gateway.url, source_url, now)
    finally:
        gateway.stop()
        mlflow.set_tracking_uri(None)
        if previous_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous_uri
