"""A real MLflow tracking server delivers its signed alias webhook to the gateway."""

from __future__ import annotations

import pytest

import registry
from tests.integration.gateway.support import register, wait_until

pytestmark = pytest.mark.integration

SECRET = "delivered-secret"


def test_an_alias_move_on_the_tracking_server_reaches_the_gateway_before_any_poll(
    store, mlflow_server: str, start_gateway
) -> None:
    versions = register(
        store,
        "gw_hooked",
        {"champion": "logistic", "_next": "lightgbm"},
        tracking_uri=mlflow_server,
    )
    gateway = start_gateway(
        "--model",
        "gw_hooked",
        "--refresh-interval",
        "600",
        env={"MLFLOW_TRACKING_URI": mlflow_server, "GATEWAY_WEBHOOK_SECRET": SECRET},
        register_webhook=True,
    )
    registry.move_alias(
        "gw_hooked", "champion", versions["_next"], kind="promote", actor="test", reason="hook"
    )
    # The poll is 10 minutes away: only the verified webhook can make this switch.
    wait_until(
        lambda: gateway.status("gw_hooked")["champion"] == versions["_next"], 15, "webhook switch"
    )
