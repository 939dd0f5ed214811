"""Against Airflow's own api-server: tokens, HITL answers, and the whole approval path."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from approval.airflow_api import AirflowHITLClient, AirflowHITLError, AlreadyAnswered
from approval.app import INTERACTIONS_PATH, create_app
from approval.records import TaskRef
from approval.reference import ButtonRef
from approval.slack import SlackApprovalHook
from approval.store import DecisionStore
from approval.testing.interactions import SIGNING_SECRET, button_click, signed_headers
from approval.testing.samples import ALICE
from approval.testing.slack_fake import FakeSlack

pytestmark = pytest.mark.integration

PROBE_DAG = Path(__file__).with_name("dags") / "approval_probe.py"


def wait_for(condition: Callable[[], object], what: str, timeout: float = 90) -> object:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)
    return result


def test_a_wrong_password_is_refused_with_a_clear_error(airflow_server) -> None:
    client = AirflowHITLClient(
        base_url=airflow_server.url, username=airflow_server.username, password="wrong"
    )
    with pytest.raises(AirflowHITLError, match="refused a token for 'approval_service'"):
        client.detail(TaskRef("promote_user_churn", "run", "wait_for_approval"))


def test_a_task_without_hitl_detail_is_reported_not_answered(airflow_server) -> None:
    client = AirflowHITLClient(
        base_url=airflow_server.url,
        username=airflow_server.username,
        password=airflow_server.password,
    )
    with pytest.raises(AirflowHITLError, match="HTTP 404"):
        client.respond(
            TaskRef("promote_user_churn", "no-such-run", "wait_for_approval"),
            chosen_option="Approve",
            params_input={},
        )


def test_a_signed_slack_approval_resumes_the_waiting_airflow_task(
    airflow_server,
    tmp_path: Path,
    fake_slack: FakeSlack,
    slack: SlackApprovalHook,
    serve: Callable[[FastAPI], str],
) -> None:
    shutil.copy(PROBE_DAG, airflow_server.home / "dags" / PROBE_DAG.name)
    db_url = f"sqlite:///{tmp_path / 'approval.db'}"
    outcome_file = tmp_path / "outcome.json"
    env = {
        **airflow_server.env,
        "APPROVAL_DB_URL": db_url,
        "APPROVAL_AIRFLOW_USER": airflow_server.username,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_API_URL": fake_slack.url,
        "PROBE_OUTCOME_FILE": str(outcome_file),
    }
    log = (tmp_path / "dag-test.log").open("w")
    run = subprocess.Popen(
        [sys.executable, str(airflow_server.home / "dags" / PROBE_DAG.name)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        posted = wait_for(lambda: fake_slack.calls_of("chat.postMessage"), "the Slack request")
        blocks = posted[0].payload["blocks"]
        value = next(b for b in blocks if b["type"] == "actions")["elements"][0]["value"]
        store = DecisionStore.from_url(db_url)
        stored = store.get(ButtonRef.decode(value).request_id)
        client = AirflowHITLClient(
            base_url=airflow_server.url,
            username=airflow_server.username,
            password=airflow_server.password,
        )
        wait_for(lambda: _awaiting_input(client, stored.request.task), "the task to await input")
        url = serve(
            create_app(signing_secret=SIGNING_SECRET, store=store, slack=slack, airflow=client)
        )
        body = button_click(user_id=ALICE, value=value, message=stored.message)
        response = httpx.post(
            url + INTERACTIONS_PATH,
            content=body,
            headers=signed_headers(SIGNING_SECRET, int(time.time()), body),
            timeout=30,
        )
        assert response.status_code == 200, response.text

        assert run.wait(timeout=90) == 0, (tmp_path / "dag-test.log").read_text()[-3000:]
        tags = json.loads(outcome_file.read_text())
        assert (tags["approval.status"], tags["approval.by"]) == ("approved", ALICE)
        detail = client.detail(stored.request.task)
        assert detail["chosen_options"] == ["Approve"]
        assert detail["responded_by_user"]["id"] == airflow_server.username
        assert detail["params_input"]["decided_by"] == ALICE
        final = json.dumps(fake_slack.messages[(stored.message.channel, stored.message.ts)])
        assert f"*Approved* by <@{ALICE}>" in final
        with pytest.raises(AlreadyAnswered):
            client.respond(stored.request.task, chosen_option="Reject", params_input={})
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGTERM)
            run.wait(timeout=20)
        log.close()


def _awaiting_input(client: AirflowHITLClient, task: TaskRef) -> bool:
    try:
        return client.detail(task)["task_instance"]["state"] == "awaiting_input"
    except AirflowHITLError:
        return False
