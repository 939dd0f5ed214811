"""The whole approval path through the real promotion DAG: promote → wait in HITL → signed Slack
click at the approval endpoint → Airflow resumes the task → `champion` moves (or not)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import mlflow
import pytest
from fastapi import FastAPI

import registry
from approval.airflow_api import AirflowHITLClient, AirflowHITLError
from approval.app import INTERACTIONS_PATH, create_app
from approval.records import TaskRef
from approval.reference import ButtonRef
from approval.slack import SlackApprovalHook
from approval.store import DecisionStore
from approval.testing.interactions import SIGNING_SECRET, button_click, signed_headers
from approval.testing.samples import ALICE, BOB, CAROL
from approval.testing.slack_fake import FakeSlack
from demo.lifecycle import Lifecycle, Workspace
from demo.source_data import as_of_for_window, generate_user_features, write_source
from tests.support import write_policy

pytestmark = pytest.mark.integration
MODEL = "user_churn"
AIRFLOW_SETTINGS = (
    "AIRFLOW_HOME",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
    "AIRFLOW__API__BASE_URL",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
)


def wait_for(condition: Callable[[], object], what: str, timeout: float = 120) -> object:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)
    return result


class PromotionInBackground:
    """`airflow dags test promote_<model>` in a thread, since it blocks until the decision."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(lifecycle,), daemon=True)
        self.thread.start()

    def _run(self, lifecycle: Lifecycle) -> None:
        try:
            lifecycle.run_dag(f"promote_{MODEL}")
        except BaseException as error:  # reported by finish()
            self.error = error

    def finish(self) -> None:
        self.thread.join(timeout=180)
        assert not self.thread.is_alive(), "the promotion run did not finish"
        if self.error is not None:
            raise self.error


def test_promotion_moves_champion_only_on_a_signed_approval(
    airflow_server,
    tmp_path: Path,
    fake_slack: FakeSlack,
    slack: SlackApprovalHook,
    serve: Callable[[FastAPI], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    write_policy(
        policies,
        MODEL,
        approval={
            "required": True,
            "channel": "#model-approvals",
            "approvers": [ALICE, BOB],
            # `airflow dags test` triggers as the Airflow user dag_test; say who that is in Slack.
            "identities": {"dag_test": CAROL},
        },
    )
    workspace = Workspace(tmp_path / "ws")
    lifecycle = Lifecycle(workspace, policies)
    lifecycle.reset()
    db_url = f"sqlite:///{tmp_path / 'approval.db'}"
    lifecycle.env.update({key: airflow_server.env[key] for key in AIRFLOW_SETTINGS})
    lifecycle.env.update(
        {
            "APPROVAL_DB_URL": db_url,
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_API_URL": fake_slack.url,
            "MLFLOW_UI_URL": "http://mlflow.test",
        }
    )
    write_source(workspace.source, generate_user_features())
    lifecycle.prepare_airflow()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", workspace.tracking_uri)
    mlflow.set_tracking_uri(workspace.tracking_uri)
    airflow = AirflowHITLClient(
        base_url=airflow_server.url,
        username=airflow_server.username,
        password=airflow_server.password,
    )
    store = DecisionStore.from_url(db_url)
    endpoint = serve(
        create_app(signing_secret=SIGNING_SECRET, store=store, slack=slack, airflow=airflow)
    )

    def awaiting_input(task: TaskRef) -> bool:
        try:
            return airflow.detail(task)["task_instance"]["state"] == "awaiting_input"
        except AirflowHITLError:  # the HITL detail is not written yet
            return False

    def click(approve: bool, user: str) -> None:
        posted = fake_slack.calls_of("chat.postMessage")[-1]
        value = next(b for b in posted.payload["blocks"] if b["type"] == "actions")["elements"][0][
            "value"
        ]
        stored = store.get(ButtonRef.decode(value).request_id)
        wait_for(lambda: awaiting_input(stored.request.task), "the promotion to wait for input")
        body = button_click(user_id=user, value=value, approve=approve, message=stored.message)
        response = httpx.post(
            endpoint + INTERACTIONS_PATH,
            content=body,
            headers=signed_headers(SIGNING_SECRET, int(time.time()), body),
            timeout=30,
        )
        assert response.status_code == 200, response.text

    # v1: no champion yet, the verdict is promote, but nothing moves before the approval.
    lifecycle.run_dag(f"train_{MODEL}", {"as_of": as_of_for_window(1)})
    promotion = PromotionInBackground(lifecycle)
    wait_for(lambda: fake_slack.calls_of("chat.postMessage"), "the approval request in Slack")
    message = json.dumps(fake_slack.calls_of("chat.postMessage")[0].payload)
    assert "v1" in message and "roc_auc" in message
    assert "http://mlflow.test/#/models/user_churn/versions/1" in message
    assert registry.get_alias_version(MODEL, "champion") is None
    click(approve=True, user=ALICE)
    promotion.finish()
    assert registry.get_alias_version(MODEL, "champion") == 1
    tags = registry.get_version(MODEL, 1).tags
    assert (tags["approval.status"], tags["approval.by"]) == ("approved", ALICE)
    assert ALICE in registry.alias_history(MODEL, "champion")[-1].reason

    # v2 wins the evaluation, with its interval in the message, but Bob rejects it.
    lifecycle.run_dag(f"train_{MODEL}", {"as_of": as_of_for_window(2)})
    promotion = PromotionInBackground(lifecycle)
    wait_for(lambda: len(fake_slack.calls_of("chat.postMessage")) == 2, "the second request")
    message = json.dumps(fake_slack.calls_of("chat.postMessage")[1].payload)
    v2 = registry.get_version(MODEL, 2).tags
    assert f"{float(v2['eval.ci_low']):+.4f}" in message, message
    click(approve=False, user=BOB)
    promotion.finish()
    assert registry.get_alias_version(MODEL, "champion") == 1
    tags = registry.get_version(MODEL, 2).tags
    assert (tags["approval.status"], tags["approval.by"]) == ("rejected", BOB)
