"""The HTTP services around the workflow, each a real process on a free loopback port: Airflow's
api-server, the approval endpoint (`python -m approval`) and the serving gateway
(`python -m gateway`), each with its output kept in a log file."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from approval.hitl import SERVICE_USER


class ServiceFailed(RuntimeError):
    """A service exited or did not become ready in time; the message carries its log's tail."""


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Service:
    """One running service: its process (leading a session of its own), URL (empty for one that
    serves nothing) and log file."""

    name: str
    process: subprocess.Popen
    url: str
    log: Path

    def wait_ready(self, path: str, timeout_s: float, ok: tuple[int, ...] = (200,)) -> None:
        """Poll `path` until it answers one of `ok`; raise ServiceFailed if the process exits or
        the time runs out."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise ServiceFailed(f"{self.name} exited (log: {self.log}):\n{self._tail()}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code in ok:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise ServiceFailed(
                    f"{self.name} not ready within {timeout_s:.0f} s (log: {self.log}):\n{self._tail()}"
                )
            time.sleep(0.3)

    def stop(self, timeout_s: float = 20) -> None:
        """Stop the process and everything it started (SIGTERM, then SIGKILL)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def _tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def start(
    name: str,
    args: list[str],
    env: dict[str, str],
    port: int | None,
    log: Path,
    cwd: Path | None = None,
) -> Service:
    """Start `args` in a session of its own (in `cwd`, when given), output to `log`; the service
    listens on `port` (None: it serves nothing)."""
    with log.open("w") as out:
        process = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Service(name, process, f"http://127.0.0.1:{port}" if port else "", log)


def python_module(module: str) -> list[str]:
    """The command line that runs a project module with this interpreter."""
    return [sys.executable, "-m", module]


def start_gateway(
    models: list[str],
    *,
    tracking_uri: str,
    log_url: str,
    api_token: str,
    log: Path,
    env: dict[str, str],
) -> Service:
    """The serving gateway for `models`, taking labels with `api_token`, refreshing aliases every
    second and flushing its prediction log every half second, so a rollout sees traffic within
    seconds."""
    port = free_port()
    args = python_module("gateway") + ["--port", str(port), "--log-url", log_url]
    args += [flag for model in models for flag in ("--model", model)]
    args += ["--refresh-interval", "1", "--log-flush-interval", "0.5"]
    env = {
        **env,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "GATEWAY_API_TOKENS": api_token,
        "OMP_NUM_THREADS": "1",
    }
    return start("gateway", args, env, port, log)


@dataclass(frozen=True)
class AirflowAccounts:
    """The simple auth manager's users of a workspace: a person's `admin` and the approval
    endpoint's service user, with passwords generated once and kept in the Airflow home."""

    home: Path

    @property
    def passwords_file(self) -> Path:
        return self.home / "passwords.json"

    def passwords(self) -> dict[str, str]:
        """Each user's password, created on first use."""
        if not self.passwords_file.exists():
            generated = {user: secrets.token_urlsafe(12) for user in ("admin", SERVICE_USER)}
            self.passwords_file.write_text(json.dumps(generated, indent=2))
        return json.loads(self.passwords_file.read_text())

    def settings(self, api_url: str) -> dict[str, str]:
        """The Airflow settings every command of the workspace shares with its api-server."""
        self.passwords()
        secret = self.home / "api-secret"
        if not secret.exists():
            secret.write_text(secrets.token_hex(16))
        return {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"admin:admin,{SERVICE_USER}:user",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
            "AIRFLOW__API__BASE_URL": api_url,
            "AIRFLOW__API_AUTH__JWT_SECRET": secret.read_text(),
            "AIRFLOW__API__SECRET_KEY": secret.read_text(),
        }


def start_airflow_api_server(airflow: str, env: dict[str, str], port: int, log: Path) -> Service:
    """Airflow's own api-server (REST API, UI and plugins) on the workspace's metadata DB."""
    args = [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    return start("airflow api-server", args, env, port, log)


def start_approval_endpoint(
    *, env: dict[str, str], signing_secret: str, db_url: str, airflow_url: str, log: Path
) -> Service:
    """`python -m approval` answering as the Airflow service user (Slack Web API and the
    registry as configured in `env`)."""
    port = free_port()
    password = AirflowAccounts(Path(env["AIRFLOW_HOME"])).passwords()[SERVICE_USER]
    settings = {
        "SLACK_SIGNING_SECRET": signing_secret,
        "APPROVAL_DB_URL": db_url,
        "AIRFLOW_API_URL": airflow_url,
        "AIRFLOW_API_USERNAME": SERVICE_USER,
        "AIRFLOW_API_PASSWORD": password,
        "APPROVAL_HOST": "127.0.0.1",
        "APPROVAL_PORT": str(port),
    }
    env = {**env, **settings}
    return start("approval endpoint", python_module("approval"), env, port, log)


def start_scheduler(airflow: str, env: dict[str, str], api_url: str, log: Path) -> Service:
    """Airflow's scheduler with the LocalExecutor, its tasks reporting to `api_url`'s execution
    API; it starts the runs an Asset event queued for unpaused DAGs."""
    settings = {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
    }
    return start("airflow scheduler", [airflow, "scheduler"], {**env, **settings}, None, log)


@dataclass
class AirflowRest:
    """Airflow's REST API, as one user of the simple auth manager."""

    url: str
    username: str
    password: str

    def unpause(self, dag_id: str) -> None:
        """Let the scheduler start runs of `dag_id`."""
        self._call("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def runs(self, dag_id: str) -> list[dict]:
        """The DAG's runs, oldest first."""
        return self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=id")["dag_runs"]

    def _call(self, method: str, path: str, **kwargs: object) -> dict:
        token = httpx.post(
            f"{self.url}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=30,
        )
        token.raise_for_status()
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        response = httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()
