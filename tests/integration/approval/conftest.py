"""Fixtures of the approval integration tests: fake Slack, the store, served apps, Airflow."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from approval.airflow_api import AirflowHITLError
from approval.slack import SlackApprovalHook
from approval.store import DecisionStore, engine_url
from approval.testing.hitl_fake import RecordingResponder
from approval.testing.slack_fake import FakeSlack
from tests.support import postgres_base_url

BOT_TOKEN = "xoxb-test-token"
AIRFLOW_USER = "approval_service"
AIRFLOW_PASSWORD = "approval-service-password"
REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """A fake Slack Web API on loopback that only accepts the test bot token."""
    with FakeSlack(token=BOT_TOKEN) as fake:
        yield fake


@pytest.fixture
def slack(fake_slack: FakeSlack) -> SlackApprovalHook:
    """The real hook pointed at the fake, with short backoff."""
    return SlackApprovalHook(
        token=BOT_TOKEN, base_url=fake_slack.url, max_retries=2, backoff_factor=0.01, timeout=5
    )


@pytest.fixture
def sqlite_store(tmp_path: Path) -> DecisionStore:
    """A decision store in a fresh SQLite file."""
    store = DecisionStore.from_url(f"sqlite:///{tmp_path / 'approval.db'}")
    store.create_tables()
    return store


@pytest.fixture
def postgres_store() -> Iterator[DecisionStore]:
    """A decision store in a schema of its own, dropped afterwards (needs PROMOTION_TEST_POSTGRES_URL)."""
    url = postgres_base_url()
    import sqlalchemy as sa

    schema = f"approval_test_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(engine_url(url))
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    store = DecisionStore(engine, schema=schema)
    store.create_tables()
    try:
        yield store
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite_store", "postgres_store"], ids=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> DecisionStore:
    """The decision store on SQLite, and on PostgreSQL when one is configured."""
    return request.getfixturevalue(request.param)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def unused_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    return free_port()


@pytest.fixture
def serve() -> Iterator[Callable[[FastAPI], str]]:
    """Serve an app under a real uvicorn on a free loopback port; returns its base URL."""
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: FastAPI) -> str:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        running.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def airflow_stub() -> RecordingResponder:
    """An Airflow stand-in that records answers."""
    return RecordingResponder(user_id=AIRFLOW_USER)


@pytest.fixture
def failing_airflow() -> RecordingResponder:
    """An Airflow stand-in that refuses every answer."""
    return RecordingResponder(
        user_id=AIRFLOW_USER, failure=AirflowHITLError("Airflow at http://airflow is unreachable")
    )


@dataclass(frozen=True)
class AirflowServer:
    """A running Airflow api-server with its home, environment and credentials."""

    url: str
    home: Path
    env: dict[str, str]
    username: str = AIRFLOW_USER
    password: str = AIRFLOW_PASSWORD


def _airflow_bin() -> str:
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else (shutil.which("airflow") or "airflow")


@pytest.fixture(scope="module")
def airflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServer]:
    """Airflow's own api-server on SQLite, with the simple auth manager and one `user` account."""
    home = tmp_path_factory.mktemp("airflow_home")
    (home / "dags").mkdir()
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({AIRFLOW_USER: AIRFLOW_PASSWORD}))
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{AIRFLOW_USER}:user",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
        "AIRFLOW__API__SECRET_KEY": uuid.uuid4().hex,
        "PYTHONPATH": os.pathsep.join(
            [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    airflow = _airflow_bin()
    subprocess.run(
        [airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=240
    )
    log = (home / "api-server.log").open("w")
    process = subprocess.Popen(
        [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/api/v2/version", timeout=2).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(
                    f"airflow api-server did not start:\n{(home / 'api-server.log').read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield AirflowServer(url=url, home=home, env=env)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
