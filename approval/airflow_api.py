"""The Airflow edge: answers a waiting human-in-the-loop task through Airflow's REST API."""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import cached_property
from typing import Protocol
from urllib.parse import quote

import httpx

from approval.records import TaskRef

_TRANSIENT_STATUS = {502, 503, 504}


class AirflowHITLError(RuntimeError):
    """Airflow did not take the answer; the message says what it replied."""


class AlreadyAnswered(AirflowHITLError):
    """The task was answered before (in the Airflow UI, or by an earlier call)."""


class HITLResponder(Protocol):
    """Anything that can answer a waiting HITL task; the endpoint only needs this."""

    @property
    def user_id(self) -> str: ...

    def respond(
        self, task: TaskRef, *, chosen_option: str, params_input: Mapping[str, str]
    ) -> dict: ...


def hitl_path(task: TaskRef) -> str:
    """The REST path of a task instance's HITL detail."""
    return (
        f"/api/v2/dags/{quote(task.dag_id, safe='')}/dagRuns/{quote(task.run_id, safe='')}"
        f"/taskInstances/{quote(task.task_id, safe='')}/{task.map_index}/hitlDetails"
    )


class AirflowHITLClient:
    """Answers HITL tasks as one Airflow user, with a JWT from the auth manager's /auth/token.

    Give either `token` (a JWT minted elsewhere) or `username` and `password`; with the latter a
    fresh token is fetched on first use and again when Airflow says the old one expired.
    Connection errors and 502/503/504 are retried with exponential backoff.
    """

    def __init__(
        self,
        *,
        base_url: str,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        attempts: int = 3,
        backoff: float = 0.5,
    ) -> None:
        if token is None and (username is None or password is None):
            raise ValueError("AirflowHITLClient needs a token, or a username and a password")
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self._token = token
        self._token_is_minted = token is None
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff

    @cached_property
    def http(self) -> httpx.Client:
        """The HTTP client, built on first use."""
        return httpx.Client(base_url=self.base_url, timeout=self.timeout)

    @property
    def user_id(self) -> str:
        """The Airflow user the answers are given as (the simple auth manager's user name)."""
        return self.username or ""

    def respond(
        self, task: TaskRef, *, chosen_option: str, params_input: Mapping[str, str]
    ) -> dict:
        """Give the waiting task its answer; raises AlreadyAnswered when it had one."""
        response = self._send(
            "PATCH",
            hitl_path(task),
            json={"chosen_options": [chosen_option], "params_input": dict(params_input)},
        )
        if response.status_code == 409:
            raise AlreadyAnswered(f"{_describe(task)} was already answered: {_detail(response)}")
        if response.status_code != 200:
            raise AirflowHITLError(
                f"Airflow refused the answer for {_describe(task)}: HTTP {response.status_code} "
                f"{_detail(response)}"
            )
        return response.json()

    def detail(self, task: TaskRef) -> dict:
        """The task's HITL detail as Airflow holds it."""
        response = self._send("GET", hitl_path(task))
        if response.status_code != 200:
            raise AirflowHITLError(
                f"Airflow has no HITL detail for {_describe(task)}: HTTP {response.status_code} "
                f"{_detail(response)}"
            )
        return response.json()

    def _bearer(self, *, renew: bool = False) -> str:
        if self._token is None or renew:
            response = self._with_retries(
                "POST",
                "/auth/token",
                json={"username": self.username, "password": self.password},
            )
            if response.status_code not in (200, 201):
                raise AirflowHITLError(
                    f"Airflow at {self.base_url} refused a token for {self.username!r}: HTTP "
                    f"{response.status_code} {_detail(response)}; check the Airflow credentials"
                )
            self._token = response.json()["access_token"]
        return self._token

    def _send(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        response = self._with_retries(
            method, path, headers={"Authorization": f"Bearer {self._bearer()}"}, **kwargs
        )
        if response.status_code == 401 and self._token_is_minted:
            token = self._bearer(renew=True)
            response = self._with_retries(
                method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs
            )
        return response

    def _with_retries(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        for attempt in range(1, self.attempts + 1):
            try:
                response = self.http.request(method, path, **kwargs)  # type: ignore[arg-type]
            except httpx.TransportError as error:
                if attempt == self.attempts:
                    raise AirflowHITLError(
                        f"Airflow at {self.base_url} is unreachable after {self.attempts} "
                        f"attempts: {error}"
                    ) from error
            else:
                if response.status_code not in _TRANSIENT_STATUS or attempt == self.attempts:
                    return response
            time.sleep(self.backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")


def _describe(task: TaskRef) -> str:
    return f"task {task.dag_id}.{task.task_id} of run {task.run_id}"


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", ""))
    except ValueError:
        return response.text[:200]
