"""Alias moves followed by a running gateway: polling, webhooks, failed loads, the canary tag."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter

import httpx
import pytest
from mlflow.webhooks.delivery import _generate_hmac_signature

import registry
from tests.integration.gateway.support import register, row, wait_until

pytestmark = pytest.mark.integration

REFRESH_S = 1.0
SECRET = "integration-secret"
MODELS = ("gw_moving", "gw_broken", "gw_shadow_fails", "gw_tagged")


@pytest.fixture(scope="module")
def versions(store) -> dict[str, dict[str, int]]:
    return {
        "gw_moving": register(
            store, "gw_moving", {"champion": "logistic", "_next": "logistic_strong_penalty"}
        ),
        "gw_broken": register(
            store, "gw_broken", {"champion": "logistic", "_next": "missing_artifact"}
        ),
        "gw_shadow_fails": register(
            store, "gw_shadow_fails", {"champion": "logistic", "shadow": "needs_region"}
        ),
        "gw_tagged": register(store, "gw_tagged", {"champion": "logistic", "canary": "lightgbm"}),
    }


@pytest.fixture(scope="module")
def gateway(versions, start_gateway):
    flags = [arg for name in MODELS for arg in ("--model", name)]
    return start_gateway(
        *flags, "--refresh-interval", str(REFRESH_S), env={"GATEWAY_WEBHOOK_SECRET": SECRET}
    )


class Traffic:
    """Requests sent back to back from a thread, recording every status and answering version."""

    def __init__(self, url: str, model: str) -> None:
        self.url, self.model = url, model
        self.answers: list[tuple[float, int, int | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        wait_until(lambda: len(self.answers) > 5, 30, "traffic started")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            i = 0
            while not self._stop.is_set():
                try:
                    response = client.post(f"/models/{self.model}/invocations", json=row(i))
                    version = response.json().get("version") if response.is_success else None
                    self.answers.append((time.monotonic(), response.status_code, version))
                except httpx.HTTPError:
                    self.answers.append((time.monotonic(), 0, None))
                i += 1

    def latest_version(self) -> int | None:
        return self.answers[-1][2]


def test_an_alias_move_is_followed_within_the_refresh_interval_with_no_failed_request(
    gateway, versions
) -> None:
    first, second = versions["gw_moving"]["champion"], versions["gw_moving"]["_next"]
    with Traffic(gateway.url, "gw_moving") as traffic:
        registry.move_alias(
            "gw_moving", "champion", second, kind="promote", actor="test", reason="follow"
        )
        moved_at = time.monotonic()
        # One interval until the poll, plus loading and warming the new version.
        wait_until(lambda: traffic.latest_version() == second, REFRESH_S + 5, "switch")
        time.sleep(0.2)
    statuses = Counter(status for _, status, _ in traffic.answers)
    assert statuses == {200: len(traffic.answers)}
    switched = [at for at, _, version in traffic.answers if version == second]
    assert min(switched) - moved_at < REFRESH_S + 5
    after = [version for at, _, version in traffic.answers if at > min(switched)]
    assert set(after) == {second}, "answers went back to the old version after the switch"
    assert {version for _, _, version in traffic.answers} == {first, second}


def test_a_version_that_fails_to_load_leaves_the_old_one_answering(gateway, versions) -> None:
    old, broken = versions["gw_broken"]["champion"], versions["gw_broken"]["_next"]
    registry.move_alias(
        "gw_broken", "champion", broken, kind="promote", actor="test", reason="broken"
    )
    wait_until(lambda: str(broken) in gateway.status("gw_broken")["load_errors"], 10, "load error")
    with gateway.client() as client:
        answers = [client.post("/models/gw_broken/invocations", json=row(i)) for i in range(20)]
    assert {(a.status_code, a.json()["version"]) for a in answers} == {(200, old)}


def test_shadow_failures_never_fail_a_request(gateway, versions) -> None:
    champion = versions["gw_shadow_fails"]["champion"]
    with gateway.client() as client:
        answers = [
            client.post("/models/gw_shadow_fails/invocations", json=row(i)) for i in range(30)
        ]
    assert {(a.status_code, a.json()["version"]) for a in answers} == {(200, champion)}
    wait_until(lambda: gateway.status("gw_shadow_fails")["shadow_failed"] >= 30, 10, "failures")
    assert "region" in gateway.status("gw_shadow_fails")["shadow_last_error"]


def test_the_canary_share_follows_the_canary_versions_tag(gateway, versions) -> None:
    canary = versions["gw_tagged"]["canary"]
    assert gateway.status("gw_tagged")["canary_share"] == 0.0
    registry.set_version_tags("gw_tagged", canary, {"rollout.canary_share": "0.5"})
    wait_until(lambda: gateway.status("gw_tagged")["canary_share"] == 0.5, REFRESH_S + 5, "share")
    with gateway.client() as client:
        roles = Counter(
            client.post(
                "/models/gw_tagged/invocations", json=row(0), headers={"X-Routing-Key": f"u{i}"}
            ).json()["role"]
            for i in range(400)
        )
    assert 0.4 < roles["canary"] / 400 < 0.6


def _deliver(url: str, secret: str, model: str) -> httpx.Response:
    body = json.dumps(
        {
            "entity": "model_version_alias",
            "action": "created",
            "timestamp": "2026-01-01T00:00:00+00:00",
            "data": {"name": model, "alias": "champion", "version": "1"},
        }
    )
    delivery_id, timestamp = str(uuid.uuid4()), str(int(time.time()))
    return httpx.post(
        f"{url}/webhooks/mlflow",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-MLflow-Delivery-Id": delivery_id,
            "X-MLflow-Timestamp": timestamp,
            "X-MLflow-Signature": _generate_hmac_signature(secret, delivery_id, timestamp, body),
        },
    )


def test_a_correctly_signed_webhook_is_accepted(gateway) -> None:
    response = _deliver(gateway.url, SECRET, "gw_moving")
    assert response.status_code == 200 and response.json() == {"refreshing": True}


def test_a_wrongly_signed_webhook_is_refused(gateway) -> None:
    response = _deliver(gateway.url, "guessed-secret", "gw_moving")
    assert response.status_code == 401
    assert "signature" in response.json()["detail"]
