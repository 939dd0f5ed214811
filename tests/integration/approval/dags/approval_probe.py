"""Test DAG: the approval steps of the promotion DAG, without training or MLflow.

open_request posts the Slack message, wait_for_approval parks in Airflow's HITL state until the
endpoint (or the UI) answers, settle records the outcome and tells Slack. The test supplies the
store, Slack and Airflow settings through the environment.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param, dag, task

from approval import hitl

SERVICE_USER = os.environ.get("APPROVAL_AIRFLOW_USER", "approval_service")


@dag(schedule=None, catchup=False, tags=["test"])
def approval_probe():
    """Open an approval request, wait for the decision, settle it."""

    @task
    def open_request(**context) -> str:
        from datetime import UTC, datetime

        from approval.records import TaskRef
        from approval.service import request_approval
        from approval.slack import SlackApprovalHook
        from approval.store import DecisionStore
        from approval.testing.samples import sample_config, sample_request

        ti = context["ti"]
        request = sample_request(task=TaskRef(ti.dag_id, ti.run_id, "wait_for_approval"))
        store = DecisionStore.from_url(os.environ["APPROVAL_DB_URL"])
        store.create_tables()
        slack = SlackApprovalHook(
            token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]
        )
        request_approval(request, sample_config(), store=store, slack=slack, now=datetime.now(UTC))
        return request.request_id

    wait_for_approval = HITLOperator(
        task_id="wait_for_approval",
        subject="Promote user_churn v7?",
        body="Answer with the buttons in Slack; the promotion re-checks the registry first.",
        options=list(hitl.OPTIONS),
        defaults=list(hitl.DEFAULTS),
        multiple=False,
        params={name: Param("", type="string") for name in hitl.PARAMS},
        assigned_users=[{"id": SERVICE_USER, "name": SERVICE_USER}],
        response_timeout=timedelta(minutes=10),
    )

    @task
    def settle(request_id: str, answer: dict) -> None:
        from datetime import UTC, datetime

        from approval.hitl import HITLAnswer
        from approval.records import CurrentAliases
        from approval.service import finish_approval
        from approval.slack import SlackApprovalHook
        from approval.store import DecisionStore

        outcome = finish_approval(
            request_id,
            HITLAnswer.from_xcom(answer),
            store=DecisionStore.from_url(os.environ["APPROVAL_DB_URL"]),
            slack=SlackApprovalHook(
                token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]
            ),
            current=CurrentAliases(champion=5, challenger=7),
            service_user_id=SERVICE_USER,
            now=datetime.now(UTC),
        )
        with open(os.environ["PROBE_OUTCOME_FILE"], "w") as out:
            json.dump(outcome.tags(), out)

    request_id = open_request()
    request_id >> wait_for_approval
    settle(request_id, wait_for_approval.output)


approval_probe_dag = approval_probe()

if __name__ == "__main__":
    approval_probe_dag.test()
