"""Failure notices: a failed task of any of a model's DAGs posts the model, the DAG, the task and
the error line to Slack.

Shaped like the notifier of Airflow's Slack provider: one class with one `notify`, attached as the
tasks' `on_failure_callback`; the Slack hook of the approval flow owns the client. The class is
cheap to build at DAG parse time: Slack and the settings are touched only when a task fails.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from approval.messages import Message

ALERT_CHANNEL_ENV = "SLACK_ALERT_CHANNEL"
_DETAIL_LINES = 8
_DETAIL_CHARS = 2900  # Slack refuses a section text over 3,000 characters


@dataclass(frozen=True)
class TaskFailure:
    """What a person needs to know about one failed task of a model's DAG."""

    model_name: str
    dag_id: str
    task_id: str
    run_id: str
    try_number: int
    error_line: str
    details: tuple[str, ...] = ()

    @classmethod
    def of(cls, model_name: str, context: Mapping[str, Any]) -> TaskFailure:
        """The failure an Airflow failure callback's context describes."""
        ti = context["ti"]
        error = context.get("exception")
        # Bad input is re-raised as AirflowFailException from the real error: name the real one.
        cause = error.__cause__ if isinstance(error, BaseException) and error.__cause__ else error
        lines = [line.strip() for line in str(error or "").splitlines() if line.strip()]
        kind = type(cause).__name__ if isinstance(cause, BaseException) else "Error"
        first = lines[0] if lines else "no error message (see the task log)"
        return cls(
            model_name=model_name,
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            run_id=ti.run_id,
            try_number=int(getattr(ti, "try_number", 1) or 1),
            error_line=f"{kind}: {first}",
            details=tuple(lines[1 : 1 + _DETAIL_LINES]),
        )


def failure_notice(failure: TaskFailure, airflow_ui_url: str) -> Message:
    """The Slack message of a failed task, with a link to its Airflow run."""
    from approval.messages import Message, escape

    link = (
        f"{airflow_ui_url}/dags/{quote(failure.dag_id, safe='')}/runs/"
        f"{quote(failure.run_id, safe='')}/tasks/{quote(failure.task_id, safe='')}"
    )
    headline = (
        f":red_circle: *{escape(failure.model_name)}*: task `{escape(failure.task_id)}` of "
        f"`{escape(failure.dag_id)}` failed (try {failure.try_number})"
    )
    body = "\n".join(
        [f"`{escape(failure.error_line)}`", *(f"• {escape(line)}" for line in failure.details)]
    )[:_DETAIL_CHARS]
    return Message(
        text=f"{failure.model_name}: {failure.dag_id}.{failure.task_id} failed: "
        f"{failure.error_line}",
        blocks=[
            {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
            {"type": "section", "text": {"type": "mrkdwn", "text": body}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"<{link}|Airflow run {failure.run_id}>"}],
            },
        ],
    )


class FailureNotifier(BaseNotifier):
    """Posts a failed task of a model's DAG to Slack (`channel`, else SLACK_ALERT_CHANNEL).

    Uses the Slack settings of the approval flow (SLACK_BOT_TOKEN, SLACK_API_URL, AIRFLOW_UI_URL).
    Without a token or a channel the notice is logged as not sent; a notice Slack refuses is
    logged too, never raised, so it cannot hide the task's own error.
    """

    def __init__(self, *, model_name: str, channel: str = "") -> None:
        super().__init__()
        self.model_name = model_name
        self.channel = channel

    def notify(self, context: Mapping[str, Any]) -> None:
        """Post the failure the callback context describes."""
        from approval.slack import SlackDeliveryError
        from workflow.approve import ApprovalSettings

        failure = TaskFailure.of(self.model_name, context)
        channel = self.channel or os.environ.get(ALERT_CHANNEL_ENV, "")
        try:
            settings = ApprovalSettings.from_environment(require_store=False)
        except ValueError as missing:
            self.log.warning("failure notice not sent: %s (%s)", missing, failure.error_line)
            return
        if not channel:
            self.log.warning(
                "failure notice not sent: the policy names no approval channel and %s is not set",
                ALERT_CHANNEL_ENV,
            )
            return
        try:
            settings.slack().post_message(channel, failure_notice(failure, settings.airflow_ui_url))
        except SlackDeliveryError as error:
            self.log.error("failure notice not sent: %s", error)
