"""Fixtures of the gateway's integration tests: a real MLflow store with tiny trained models, and
gateways under real uvicorn on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.gateway.support import API_TOKEN, Gateway, Store, log_pipeline
from tests.support import postgres_base_url

STARTUP_TIMEOUT_S = 90


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One SQLite MLflow store for the gateway's integration tests, with five logged models."""
    import mlflow

    root = tmp_path_factory.mktemp("gateway-mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    experiment_id = mlflow.create_experiment(
        "gateway-tests", artifact_location=str(root / "artifacts")
    )
    models = {
        "logistic": log_pipeline("logistic", experiment_id),
        "logistic_strong_penalty": log_pipeline("logistic_strong_penalty", experiment_id),
        "lightgbm": log_pipeline("lightgbm", experiment_id),
        "needs_region": log_pipeline("logistic", experiment_id, extra_region=True),
        "missing_artifact": _corrupted(log_pipeline("logistic", experiment_id), root),
    }
    yield Store(uri=uri, root=root, models=models)
    mlflow.set_tracking_uri(None)
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous


def _corrupted(logged: tuple[str, str], root: Path) -> tuple[str, str]:
    model_id = logged[0].removeprefix("models:/")
    (saved,) = (root / "artifacts").rglob(f"{model_id}/**/model.skops")
    saved.unlink()
    return logged


@pytest.fixture(autouse=True)
def _current_store(request: pytest.FixtureRequest) -> None:
    """Make the gateway store current for tests that use it (other fixtures may reset it)."""
    if "store" in request.fixturenames:
        import mlflow

        store = request.getfixturevalue("store")
        os.environ["MLFLOW_TRACKING_URI"] = store.uri
        mlflow.set_tracking_uri(store.uri)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def start_gateway(
    store: Store, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Gateway]]:
    """Start `python -m gateway` with flags; every gateway started is stopped at the end."""
    started: list[Gateway] = []

    def start(
        *flags: str, env: dict[str, str] | None = None, register_webhook: bool = False
    ) -> Gateway:
        port = _free_port()
        if register_webhook:
            flags = (*flags, "--webhook-url", f"http://127.0.0.1:{port}/webhooks/mlflow")
        output = tmp_path_factory.mktemp("gateway") / "gateway.log"
        log_url = f"sqlite:///{output.parent / 'predictions.db'}"
        command = [sys.executable, "-m", "gateway", "--port", str(port), "--log-url", log_url]
        process = subprocess.Popen(
            [*command, *flags],
            env={
                **os.environ,
                "MLFLOW_TRACKING_URI": store.uri,
                "GATEWAY_API_TOKENS": API_TOKEN,
                **(env or {}),
            },
            stdout=output.open("w"),
            stderr=subprocess.STDOUT,
        )
        gateway = Gateway(url=f"http://127.0.0.1:{port}", process=process, output=output)
        started.append(gateway)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gateway exited:\n{output.read_text()}")
            try:
                if httpx.get(f"{gateway.url}/ready", timeout=2).status_code == 200:
                    return gateway
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gateway not ready:\n{output.read_text()}")
            time.sleep(0.2)

    yield start
    for gateway in started:
        if gateway.process.poll() is None:
            gateway.process.kill()
            gateway.process.wait()


@pytest.fixture
def postgres_log_schema() -> Iterator[tuple[str, str]]:
    """(URL, schema): a schema of the test's own in PROMOTION_TEST_POSTGRES_URL, dropped after."""
    base = postgres_base_url()
    import uuid

    import sqlalchemy as sa

    from gateway.predlog import create_engine

    schema = f"gateway_test_{uuid.uuid4().hex[:10]}"
    engine = create_engine(base)
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield base, schema
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def mlflow_server(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`mlflow server` over the test store, delivering webhooks to loopback; made current."""
    import mlflow

    port = _free_port()
    env = {
        **os.environ,
        # Loopback is a private address, and the default would cache "no webhooks" for 60 s.
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_CACHE_TTL": "1",
    }
    output = tmp_path / "mlflow-server.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            store.uri,
            "--default-artifact-root",
            str(store.root / "artifacts"),
            "--workers",
            "1",
        ],
        env=env,
        stdout=output.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start:\n{output.read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        monkeypatch.setenv(
            "PROMOTION_LEDGER_URL", store.uri
        )  # the alias history stays in the store
        mlflow.set_tracking_uri(url)
        yield url
    finally:
        mlflow.set_tracking_uri(store.uri)
        process.terminate()
        process.wait(30)
