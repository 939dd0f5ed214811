"""Failure notices: the notifier posts the model, the DAG, the task and the error line to Slack
(the project's local Slack Web API fake)."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from approval.testing.slack_fake import FakeSlack
from workflow.notify import FailureNotifier, TaskFailure

TOKEN = "xoxb-test"


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    with FakeSlack(token=TOKEN) as fake:
        monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("SLACK_API_URL", fake.url)
        monkeypatch.setenv("AIRFLOW_UI_URL", "http://airflow.example")
        yield fake


def context(error: BaseException) -> dict:
    ti = SimpleNamespace(
        dag_id="train_churn", task_id="validate_window", run_id="manual__2026-02-01", try_number=1
    )
    return {"ti": ti, "exception": error}


def bad_input() -> BaseException:
    try:
        try:
            raise ValueError("training window of churn failed validation:\n- too few rows: 3")
        except ValueError as error:
            raise RuntimeError(str(error)) from error
    except RuntimeError as wrapped:
        return wrapped


def test_the_error_line_names_the_real_error_behind_a_fail_fast_wrapper() -> None:
    failure = TaskFailure.of("churn", context(bad_input()))
    assert failure.error_line == "ValueError: training window of churn failed validation:"
    assert failure.details == ("- too few rows: 3",)


def test_a_failed_task_posts_model_dag_task_and_error_to_the_channel(slack: FakeSlack) -> None:
    FailureNotifier(model_name="churn", channel="#ml-alerts").notify(context(bad_input()))

    (call,) = slack.calls_of("chat.postMessage")
    assert call.payload["channel"] == "#ml-alerts"
    assert call.payload["text"] == (
        "churn: train_churn.validate_window failed: "
        "ValueError: training window of churn failed validation:"
    )
    blocks = " ".join(str(block) for block in call.payload["blocks"])
    assert "- too few rows: 3" in blocks
    assert (
        "http://airflow.example/dags/train_churn/runs/manual__2026-02-01/tasks/validate_window"
        in (blocks)
    )


def test_without_a_channel_the_alert_channel_setting_is_used(
    slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_ALERT_CHANNEL", "#on-call")
    FailureNotifier(model_name="churn").notify(context(RuntimeError("boom")))
    assert [c.payload["channel"] for c in slack.calls_of("chat.postMessage")] == ["#on-call"]


def test_a_notice_slack_refuses_is_logged_not_raised(
    slack: FakeSlack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-revoked")
    FailureNotifier(model_name="churn", channel="#ml-alerts").notify(context(RuntimeError("boom")))
    assert "failure notice not sent: Slack chat.postMessage to #ml-alerts failed" in (
        capsys.readouterr().out
    )
