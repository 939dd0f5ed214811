"""Fixtures of the gateway's unit tests: an app over the in-memory registry stand-in, with API
tokens and a webhook secret configured."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mlflow.webhooks.delivery import _generate_hmac_signature

from gateway.app import create_app
from gateway.config import GatewayConfig, parse_config
from tests.gateway.fakes import ConstantModel, FakeSource, wait_until

ROW = {"dataframe_records": [{"x": 0.1, "plan": "pro"}]}
SECRET = "hook-secret"
TOKEN = "label-writer-token-0001"
NEXT_TOKEN = "label-writer-token-0002"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def source() -> FakeSource:
    source = FakeSource()
    source.add("churn", 1, ConstantModel(0.1))
    source.add("churn", 2, ConstantModel(0.2))
    source.add("churn", 3, ConstantModel(0.3, fail_on_x=0.1))
    source.aliases_by_model["churn"] = {"champion": 1}
    return source


def gateway_config(tmp_path: Path, **settings: object) -> GatewayConfig:
    """A one-model config logging to SQLite in `tmp_path`, with `settings` on top."""
    return parse_config(
        {
            "models": [{"name": "churn"}],
            "refresh_interval_s": 60,
            "webhook_secret": SECRET,
            "api_tokens": [TOKEN, NEXT_TOKEN],
            "prediction_log": {"url": f"sqlite:///{tmp_path / 'log.db'}"},
            **settings,
        },
        "test",
    )


@pytest.fixture
def client(source: FakeSource, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(gateway_config(tmp_path), source)) as client:
        wait_until(lambda: client.get("/ready").status_code == 200)
        yield client


def deliver(client: TestClient, secret: str, data: dict, delivery_id: str = "d-1"):
    """Post a webhook delivery signed the way MLflow signs it."""
    body = json.dumps({"entity": "model_version_alias", "action": "created", "data": data})
    timestamp = str(int(time.time()))
    return client.post(
        "/webhooks/mlflow",
        content=body,
        headers={
            "X-MLflow-Delivery-Id": delivery_id,
            "X-MLflow-Timestamp": timestamp,
            "X-MLflow-Signature": _generate_hmac_signature(secret, delivery_id, timestamp, body),
            "Content-Type": "application/json",
        },
    )
