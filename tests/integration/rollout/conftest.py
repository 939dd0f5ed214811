"""Fixtures of the rollout's integration tests: one workspace (MLflow store, Airflow home) with a
policy per scenario, a gateway under real uvicorn serving every scenario's model, a fake Slack,
and a way to run rollout_<model> through `airflow dags test` while a test drives traffic."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from approval.testing.slack_fake import FakeSlack
from demo.lifecycle import Lifecycle, Workspace
from demo.services import start_gateway
from policies import load_policy
from tests.integration.rollout.support import (
    API_TOKEN,
    BASE_ROLLOUT,
    CHANNEL,
    SCENARIOS,
    WORSE2_INTERCEPT_SHIFT,
    Rig,
    log_model,
)
from tests.support import write_policy

STARTUP_TIMEOUT_S = 90


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    import mlflow

    import registry

    root = tmp_path_factory.mktemp("rollout")
    workspace = Workspace(root)
    policies_dir = root / "policies"
    policies_dir.mkdir()
    policies = {
        model: load_policy(
            write_policy(
                policies_dir,
                model,
                approval={"channel": CHANNEL},
                rollout={**BASE_ROLLOUT, **scenario.rollout},
            )
        )
        for model, scenario in SCENARIOS.items()
    }
    previous_uri = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = workspace.tracking_uri
    mlflow.set_tracking_uri(workspace.tracking_uri)
    experiment = mlflow.create_experiment(
        "rollout-tests", artifact_location=str(root / "artifacts")
    )
    logged = {
        "champion": log_model(experiment, flip_labels=False, strength=0.01),
        "good": log_model(experiment, flip_labels=False, strength=1.0),
        "flipped": log_model(experiment, flip_labels=True, strength=1.0),
        "worse2": log_model(
            experiment, flip_labels=False, strength=0.01, intercept_shift=WORSE2_INTERCEPT_SHIFT
        ),
    }
    versions = {}
    for model, scenario in SCENARIOS.items():
        registry.ensure_registered_model(model)
        numbers = []
        for kind in ("champion", scenario.challenger):
            uri, run_id = logged[kind]
            info = registry.register_version(model, uri, run_id=run_id, tags={}, description="")
            numbers.append(info.version)
        registry.move_alias(model, "champion", numbers[0], kind="promote", actor="setup", reason="")
        registry.move_alias(
            model, "challenger", numbers[1], kind="candidate", actor="setup", reason=""
        )
        versions[model] = (numbers[0], numbers[1])

    log_url = f"sqlite:///{root / 'predictions.db'}"
    gateway = start_gateway(
        list(SCENARIOS),
        tracking_uri=workspace.tracking_uri,
        log_url=log_url,
        api_token=API_TOKEN,
        log=root / "gateway.log",
        env=dict(os.environ),
    )
    slack = FakeSlack().start()
    try:
        gateway.wait_ready("/ready", STARTUP_TIMEOUT_S)
        lifecycle = Lifecycle(workspace, policies_dir)
        workspace.logs.mkdir(parents=True, exist_ok=True)
        lifecycle.env.update(
            {"GATEWAY_LOG_URL": log_url, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_API_URL": slack.url}
        )
        lifecycle.prepare_airflow()
        rig = Rig(lifecycle, gateway.url, log_url, slack, policies, versions)
        yield rig
        for run in rig.runs:
            run.stop()
    finally:
        slack.stop()
        gateway.stop()
        mlflow.set_tracking_uri(None)
        if previous_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous_uri
