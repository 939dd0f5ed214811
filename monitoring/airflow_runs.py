"""Airflow's REST API, read as the caller: the last runs of a model's DAGs and their failed tasks."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from urllib.parse import quote

import httpx

DAG_KINDS = ("train", "promote", "rollout", "rollback", "monitor")
# The promote DAG's `choose_outcome` task pushes the run's outcome in words under this key.
PROMOTE_OUTCOME = ("choose_outcome", "outcome")


class AirflowUnavailable(RuntimeError):
    """Airflow's REST API did not answer as expected; the message says what it replied."""


def dag_ids(model_name: str) -> list[str]:
    """The DAG ids one policy builds, in the order the view lists them."""
    return [f"{kind}_{model_name}" for kind in DAG_KINDS]


def run_url(airflow_ui_url: str, dag_id: str, run_id: str) -> str:
    """The Airflow UI page of one DAG run."""
    return f"{airflow_ui_url}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


class AirflowRunsClient:
    """Reads DAG runs with a JWT: the caller's own (the plugin forwards it, so Airflow applies the
    caller's permissions), or one fetched from `/auth/token` for a username and password."""

    def __init__(
        self,
        *,
        api_url: str,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        if token is None and (username is None or password is None):
            raise ValueError("AirflowRunsClient needs a token, or a username and a password")
        self.api_url = api_url.rstrip("/")
        self._token = token
        self.username = username
        self.password = password
        self.timeout = timeout

    @cached_property
    def http(self) -> httpx.Client:
        """The HTTP client, built on first use."""
        return httpx.Client(base_url=self.api_url, timeout=self.timeout)

    def last_runs(self, dag_id: str, limit: int) -> list[dict]:
        """The newest `limit` runs of a DAG, newest first; [] when the DAG does not exist."""
        response = self._get(
            f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns",
            params={"limit": limit, "order_by": "-run_after"},
        )
        if response.status_code == 404:
            return []
        return self._json(response, f"runs of {dag_id}")["dag_runs"]

    def newest_runs(self, dag_ids: Sequence[str], limit: int = 1000) -> list[dict]:
        """The newest runs of many DAGs in one call (Airflow's batch list), newest first."""
        response = self._request(
            "POST",
            "/api/v2/dags/~/dagRuns/list",
            json={"dag_ids": list(dag_ids), "order_by": "-run_after", "page_limit": limit},
        )
        return self._json(response, "the newest runs")["dag_runs"]

    def failed_tasks(self, dag_id: str, run_id: str) -> list[str]:
        """The ids of a run's failed task instances."""
        response = self._get(
            f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}/taskInstances",
            params={"state": "failed"},
        )
        if response.status_code == 404:
            return []
        return [
            ti["task_id"] for ti in self._json(response, f"tasks of {run_id}")["task_instances"]
        ]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str) -> object | None:
        """One XCom value a task of a run pushed, or None when there is none."""
        response = self._get(
            f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"
            f"/taskInstances/{quote(task_id, safe='')}/xcomEntries/{quote(key, safe='')}",
            params={},
        )
        if response.status_code == 404:
            return None
        return self._json(response, f"XCom {key} of {task_id}")["value"]

    def _get(self, path: str, params: dict) -> httpx.Response:
        return self._request("GET", path, params=params)

    def _request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        try:
            response = self.http.request(
                method, path, headers={"Authorization": f"Bearer {self._bearer()}"}, **kwargs
            )  # type: ignore[arg-type]
            if response.status_code == 401 and self.password is not None:
                self._token = None
                response = self.http.request(
                    method, path, headers={"Authorization": f"Bearer {self._bearer()}"}, **kwargs
                )  # type: ignore[arg-type]
        except httpx.TransportError as error:
            raise AirflowUnavailable(
                f"Airflow at {self.api_url} is unreachable: {error}"
            ) from error
        return response

    def _bearer(self) -> str:
        if self._token is None:
            response = self.http.post(
                "/auth/token", json={"username": self.username, "password": self.password}
            )
            if response.status_code not in (200, 201):
                raise AirflowUnavailable(
                    f"Airflow at {self.api_url} refused a token for {self.username!r}: HTTP "
                    f"{response.status_code}; check AIRFLOW_API_USERNAME and AIRFLOW_API_PASSWORD"
                )
            self._token = response.json()["access_token"]
        return self._token

    def _json(self, response: httpx.Response, what: str) -> dict:
        if response.status_code != 200:
            raise AirflowUnavailable(
                f"Airflow at {self.api_url} did not list {what}: HTTP {response.status_code} "
                f"{response.text[:200]}"
            )
        return response.json()
