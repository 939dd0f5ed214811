"""Fixtures of the registry's integration tests: real MLflow tracking servers that a test can stop
and restart, and Airflow running tasks in their own processes (LocalExecutor) so one can be killed."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
FAULT_DAGS = Path(__file__).resolve().parent / "dags"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop_group(process: subprocess.Popen, timeout_s: float = 5) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


@dataclass
class MlflowServer:
    """`mlflow server` on loopback over a backend store; stop() and start() keep its data."""

    backend_uri: str
    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.root / "mlflow-server.log"
        self.process = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                self.backend_uri,
                "--default-artifact-root",
                (self.root / "artifacts").as_uri(),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            stdout=log.open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait_until_up(f"{self.url}/health", self.process, log, timeout_s=120)

    def stop(self) -> None:
        if self.process is not None:
            _stop_group(self.process)


def use_server(patch: pytest.MonkeyPatch, server: MlflowServer) -> None:
    """Make `server` the current tracking server, with MLflow's own HTTP retries turned off so
    the registry's backoff is the one at work."""
    import mlflow

    patch.setenv("MLFLOW_TRACKING_URI", server.url)
    patch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    patch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    mlflow.set_tracking_uri(server.url)


@pytest.fixture(scope="module")
def sqlite_mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One tracking server on SQLite for a module, current while it runs; tests may stop it."""
    import mlflow

    root = tmp_path_factory.mktemp("mlflow-server")
    server = MlflowServer(f"sqlite:///{root / 'mlflow.db'}", root)
    server.start()
    with pytest.MonkeyPatch.context() as patch:
        use_server(patch, server)
        yield server
        mlflow.set_tracking_uri(None)
    server.stop()


@pytest.fixture
def postgres_mlflow_server(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MlflowServer]:
    """A tracking server backed by a PostgreSQL database of the test's own, current for the test."""
    import mlflow

    server = MlflowServer(postgres_url, tmp_path)
    server.start()
    use_server(monkeypatch, server)
    yield server
    mlflow.set_tracking_uri(None)
    server.stop()


class AirflowExecutor:
    """An Airflow home whose `dags test --use-executor` runs each task in a process of its own.

    Its metadata DB and api-server start in the background, while the test sets up its models.
    """

    def __init__(self, home: Path, env: dict[str, str], port: int) -> None:
        self.home, self.env, self.port = home, env, port
        self.server: subprocess.Popen | None = None
        self._starting = threading.Thread(target=self._start)
        self._starting.start()

    def _start(self) -> None:
        airflow = str(BIN / "airflow")
        migrate = [airflow, "db", "migrate"]
        subprocess.run(migrate, env=self.env, check=True, capture_output=True, timeout=300)
        self.server = subprocess.Popen(
            [airflow, "api-server", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            stdout=(self.home / "api-server.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def dags_test(self, dag_id: str, extra_env: dict[str, str], timeout_s: float) -> Path:
        """Run one DAG run through the LocalExecutor; returns its log, raising when it fails."""
        self._starting.join()
        assert self.server is not None, "airflow db migrate failed"
        url = f"http://127.0.0.1:{self.port}/api/v2/version"
        _wait_until_up(url, self.server, self.home / "api-server.log", timeout_s=180)
        log = self.home / f"{dag_id}-{uuid.uuid4().hex[:6]}.log"
        with log.open("w") as out:
            result = subprocess.run(
                [str(BIN / "airflow"), "dags", "test", "--use-executor", dag_id],
                env={**self.env, **extra_env},
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
            )
        if result.returncode != 0:
            raise AssertionError(f"`airflow dags test {dag_id}` failed:\n{log.read_text()[-4000:]}")
        return log

    def stop(self) -> None:
        self._starting.join()
        if self.server is not None:
            _stop_group(self.server)


@pytest.fixture(scope="module")
def airflow_executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowExecutor]:
    """Airflow on SQLite with the LocalExecutor, and the api-server its task processes report to."""
    home = tmp_path_factory.mktemp("airflow-executor")
    dags = home / "dags"
    shutil.copytree(FAULT_DAGS, dags, ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    secret = uuid.uuid4().hex
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "MLFLOW_"))},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secret,
        "AIRFLOW__API__SECRET_KEY": secret,
        "AIRFLOW__WORKERS__SOCKET_CLEANUP_TIMEOUT": "1",
        "GIT_PYTHON_REFRESH": "quiet",
        "PYTHONPATH": os.pathsep.join(
            [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    executor = AirflowExecutor(home, env, port)
    try:
        yield executor
    finally:
        executor.stop()
