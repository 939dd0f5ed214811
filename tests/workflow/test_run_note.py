"""The run's note through Airflow's REST API: what is sent, and that a failure never raises."""

from __future__ import annotations

import json

import httpx
import pytest

from workflow.run_note import NOTE_LIMIT, RunNoteWriter, fitted_note, set_run_note
from workflow.runs import RunContext

RUN = RunContext(dag_id="rollback_churn", run_id="manual__2026-06-30T12:00:00+00:00")


def writer(handler) -> RunNoteWriter:
    return RunNoteWriter(
        base_url="http://airflow:8080/",
        username="svc",
        password="secret",
        transport=httpx.MockTransport(handler),
    )


def test_the_note_is_patched_onto_the_run_with_a_fresh_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/auth/token":
            return httpx.Response(201, json={"access_token": "jwt"})
        return httpx.Response(200, json={})

    assert set_run_note(writer(handler), RUN, "Rollback plan for churn")
    token, patch = seen
    assert json.loads(token.content) == {"username": "svc", "password": "secret"}
    assert patch.method == "PATCH"
    assert patch.url.raw_path.decode() == (
        "/api/v2/dags/rollback_churn/dagRuns/manual__2026-06-30T12%3A00%3A00%2B00%3A00"
        "?update_mask=note"
    )
    assert patch.headers["Authorization"] == "Bearer jwt"
    assert json.loads(patch.content) == {"note": "Rollback plan for churn"}


def test_a_refusing_api_is_a_warning_and_the_task_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refusing = writer(lambda request: httpx.Response(403, json={"detail": "Forbidden"}))
    assert not set_run_note(refusing, RUN, "plan")
    assert "the run's note was not set (HTTPStatusError" in caplog.text


def test_without_a_connection_no_note_is_set() -> None:
    assert not set_run_note(None, RUN, "plan")


def test_a_long_plan_is_cut_to_the_apis_limit_and_says_so() -> None:
    note = fitted_note("x" * 5000)
    assert len(note) == NOTE_LIMIT
    assert note.endswith("(cut; the whole plan is in the task's log)")
    assert fitted_note("short") == "short"
