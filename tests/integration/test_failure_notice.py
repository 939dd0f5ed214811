"""A failed task of a model's DAG, run through Airflow (`airflow dags test`), posts a Slack notice
to the project's local Slack Web API fake naming the model, the DAG, the task and the error."""

from __future__ import annotations

from pathlib import Path

import pytest

from approval.testing.slack_fake import FakeSlack
from demo.lifecycle import DagRunFailed, Lifecycle, Workspace
from demo.source_data import as_of_for_window, generate_user_features, write_source
from tests.support import write_policy

pytestmark = pytest.mark.integration
TOKEN = "xoxb-failure-notice"


def test_a_failed_training_task_posts_a_slack_notice(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    write_policy(policies, "tiny_churn", validation__min_rows=100_000)
    with FakeSlack(token=TOKEN) as slack:
        lifecycle = Lifecycle(Workspace(tmp_path / "ws"), policies)
        lifecycle.env.update(
            SLACK_BOT_TOKEN=TOKEN,
            SLACK_API_URL=slack.url,
            SLACK_ALERT_CHANNEL="#ml-alerts",
            AIRFLOW_UI_URL="http://airflow.test",
        )
        lifecycle.reset()
        write_source(lifecycle.workspace.source, generate_user_features())
        lifecycle.prepare_airflow()

        with pytest.raises(DagRunFailed, match="too few rows"):
            lifecycle.run_dag("train_tiny_churn", {"as_of": as_of_for_window(1)})

        (notice,) = slack.calls_of("chat.postMessage")
    assert notice.payload["channel"] == "#ml-alerts"
    assert notice.payload["text"].startswith(
        "tiny_churn: train_tiny_churn.validate_window failed: DataValidationError: training window "
    )
    details = " ".join(str(block) for block in notice.payload["blocks"])
    assert "too few rows: " in details and "validation.min_rows=100000" in details
    assert "http://airflow.test/dags/train_tiny_churn/runs/manual__" in details
