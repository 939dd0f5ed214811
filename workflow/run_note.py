"""A DAG run's note, set from one of its tasks through Airflow's public REST API.

The task SDK lets a task give a note only to a run it triggers, not to its own run; the public
API can (`PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}` with `note`, at most 1,000 characters),
as a user allowed to edit DAG runs. The address and that user come from the Airflow connection
RUN_NOTE_CONN_ID (an `http` connection: host, port, login, password); without it no note is set.
Setting a note is best effort: it never fails the task that wanted it.
"""

from __future__ import annotations

import logging
from functools import cached_property
from urllib.parse import quote

import httpx

from workflow.runs import RunContext

RUN_NOTE_CONN_ID = "promotion_airflow_api"
NOTE_LIMIT = 1000

log = logging.getLogger(__name__)


def fitted_note(text: str, limit: int = NOTE_LIMIT) -> str:
    """`text` cut to the API's note limit, saying it was cut (the whole text is in the log)."""
    if len(text) <= limit:
        return text
    tail = "\n… (cut; the whole plan is in the task's log)"
    return text[: limit - len(tail)] + tail


class RunNoteWriter:
    """Sets run notes as one Airflow user, with a JWT from the auth manager's /auth/token; the
    HTTP client is built on first use, so building a writer connects to nothing."""

    def __init__(
        self,
        *,
        base_url: str,
        username: str,
        password: str,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self._transport = transport

    @classmethod
    def from_airflow_connection(cls, conn_id: str = RUN_NOTE_CONN_ID) -> RunNoteWriter | None:
        """The writer for the API the connection `conn_id` names; None when it is not defined."""
        from airflow.sdk import Connection
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            connection = Connection.get(conn_id)
        except AirflowNotFoundException:
            return None
        host = connection.host or "localhost"
        if "://" not in host:
            scheme = connection.schema if connection.schema in ("http", "https") else "http"
            host = f"{scheme}://{host}" + (f":{connection.port}" if connection.port else "")
        return cls(
            base_url=host, username=connection.login or "", password=connection.password or ""
        )

    @cached_property
    def http(self) -> httpx.Client:
        """The HTTP client, built on first use."""
        return httpx.Client(base_url=self.base_url, timeout=self.timeout, transport=self._transport)

    def set_note(self, dag_id: str, run_id: str, note: str) -> None:
        """Replace the run's note with `note` (cut to NOTE_LIMIT); httpx.HTTPError when Airflow
        does not take it."""
        token = self.http.post(
            "/auth/token", json={"username": self.username, "password": self.password}
        )
        token.raise_for_status()
        response = self.http.patch(
            f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}",
            params={"update_mask": "note"},
            json={"note": fitted_note(note)},
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        )
        response.raise_for_status()


def set_run_note(writer: RunNoteWriter | None, run: RunContext, note: str) -> bool:
    """Set the run's note when a writer is configured; whether it was set. A failure is logged as
    a warning and never raised: the note only repeats what the task's log says."""
    if writer is None:
        log.info(
            "no Airflow connection %s: the plan is in this log and the task's XCom, not the "
            "run's note",
            RUN_NOTE_CONN_ID,
        )
        return False
    try:
        writer.set_note(run.dag_id, run.run_id, note)
    except (httpx.HTTPError, KeyError, ValueError) as error:
        log.warning("the run's note was not set (%s: %s)", type(error).__name__, error)
        return False
    return True
