"""Who may move `champion`, against a real `mlflow server --app-name basic-auth`: a person's READ
account cannot set it, the workflow's account (MANAGE, as the creator of the registered model)
can; an EDIT account can too (MLflow grants alias moves with EDIT), and the workflow's next move
then refuses, because MLflow disagrees with the ledger."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
ADMIN_PASSWORD = "admin-password-for-tests"
MODEL = "auth_churn"
STARTUP_TIMEOUT_S = 240


@dataclass(frozen=True)
class AuthServer:
    url: str
    ledger_url: str


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    """The basic-auth MLflow server as production runs it: people get READ by default."""
    root = tmp_path_factory.mktemp("mlflow-basic-auth")
    config = root / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\n"
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # Each request would otherwise re-derive its PBKDF2 password hash.
        "auth_cache_ttl_seconds = 60\n"
    )
    port = _free_port()
    log = root / "server.log"
    process = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--app-name",
            "basic-auth",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--default-artifact-root",
            (root / "artifacts").as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env={
            **os.environ,
            "MLFLOW_AUTH_CONFIG_PATH": str(config),
            "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "tests-only-secret-key",
        },
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow basic-auth server did not start:\n{log.read_text()}")
            time.sleep(0.3)
        yield AuthServer(url, f"sqlite:///{root / 'ledger.db'}")
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _as(monkeypatch: pytest.MonkeyPatch, user: str) -> None:
    password = ADMIN_PASSWORD if user == "admin" else f"{user}-password-for-tests"
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)


@pytest.fixture(scope="module")
def accounts(auth_server: AuthServer) -> Iterator[dict[str, int]]:
    """Users `promotion-workflow` (creates the model, so MANAGE), `alice` (READ, the default)
    and `bob` (granted EDIT); the model with two versions, champion v1 set by the workflow."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.server import get_app_client

    import registry

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", auth_server.url)
        patch.setenv("PROMOTION_LEDGER_URL", auth_server.ledger_url)
        mlflow.set_tracking_uri(auth_server.url)
        _as(patch, "admin")
        admin = get_app_client("basic-auth", tracking_uri=auth_server.url)
        for user in ("promotion-workflow", "alice", "bob"):
            admin.create_user(user, f"{user}-password-for-tests")
        _as(patch, "promotion-workflow")
        registry.ensure_registered_model(MODEL)
        client = MlflowClient(auth_server.url)
        run = client.create_run(client.create_experiment("permissions"))
        versions = [
            registry.register_version(
                MODEL,
                f"{run.info.artifact_uri}/model",
                run_id=run.info.run_id,
                tags={},
                description="",
            ).version
            for _ in range(3)
        ]
        registry.move_alias(
            MODEL, "champion", versions[0], kind="promote", actor="promote/run-1", reason="first"
        )
        _as(patch, "admin")
        admin.grant_user_permission("bob", "registered_model", MODEL, "EDIT")
        yield {"admin": admin, "versions": versions, "patch": patch}
        mlflow.set_tracking_uri(None)


def test_the_workflow_account_manages_the_model_and_people_only_read_it(accounts) -> None:
    admin = accounts["admin"]
    permission = {
        user: admin.get_user_permission(user, "registered_model", MODEL).permission
        for user in ("promotion-workflow", "alice", "bob")
    }
    assert permission == {"promotion-workflow": "MANAGE", "alice": "READ", "bob": "EDIT"}


def test_a_read_account_cannot_set_champion(accounts, monkeypatch) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    import registry

    _as(monkeypatch, "alice")
    with pytest.raises(MlflowException, match="403|Permission denied"):
        MlflowClient().set_registered_model_alias(MODEL, "champion", str(accounts["versions"][1]))
    with pytest.raises(MlflowException, match="403|Permission denied"):
        registry.move_alias(
            MODEL, "champion", accounts["versions"][1], kind="promote", actor="alice", reason="me"
        )
    _as(monkeypatch, "promotion-workflow")
    assert registry.get_alias_version(MODEL, "champion") == accounts["versions"][0]
    assert [m.to_version for m in registry.alias_history(MODEL)] == [accounts["versions"][0]]


def test_the_workflow_account_can_move_champion(accounts, monkeypatch) -> None:
    import registry

    _as(monkeypatch, "promotion-workflow")
    first, second, _ = accounts["versions"]
    moved = registry.move_alias(
        MODEL, "champion", second, kind="promote", actor="promote/run-2", reason="better"
    )
    assert moved is not None and (moved.from_version, moved.to_version) == (first, second)
    assert registry.get_alias_version(MODEL, "champion") == second


def test_a_move_by_an_edit_account_is_caught_by_the_workflows_next_move(
    accounts, monkeypatch
) -> None:
    from mlflow import MlflowClient

    import registry
    from registry.alias_drift import read_alias_drifts

    _, second, third = accounts["versions"]
    _as(monkeypatch, "bob")
    MlflowClient().set_registered_model_alias(MODEL, "champion", str(third))  # EDIT allows it
    _as(monkeypatch, "promotion-workflow")
    with pytest.raises(registry.AliasMovedOutsideWorkflow, match="moved outside the workflow"):
        registry.move_alias(
            MODEL, "champion", second, kind="rollback", actor="rollback/run-1", reason="undo"
        )
    (drift,) = read_alias_drifts(os.environ["PROMOTION_LEDGER_URL"], MODEL)
    assert (drift.ledger_version, drift.registry_version) == (second, third)
