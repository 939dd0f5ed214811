"""Requests nobody on the project would write: forged, replayed, malformed, oversized, or without
credentials. Each is refused with a 4xx and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from gateway.app import create_app
from tests.gateway.conftest import (
    AUTH,
    NEXT_TOKEN,
    ROW,
    SECRET,
    TOKEN,
    deliver,
    gateway_config,
)
from tests.gateway.fakes import FakeSource, wait_until
from tests.hostile import hostile


def _answer(client: TestClient, rows: int = 1, request_id: str | None = None) -> str:
    headers = {"X-Request-Id": request_id} if request_id else {}
    payload = {"dataframe_records": ROW["dataframe_records"] * rows}
    response = client.post("/models/churn/invocations", json=payload, headers=headers)
    assert response.status_code == 200
    return response.json()["request_id"]


def _labels(tmp_path: Path) -> dict[tuple[str, int], float]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT request_id, row_index, label FROM prediction_labels")
        ).all()
    engine.dispose()
    return {(r.request_id, r.row_index): r.label for r in rows}


def _feedback(client: TestClient, body: object, headers: dict | None = None):
    return client.post("/models/churn/feedback", json=body, headers=AUTH | (headers or {}))


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-of-enough-length"}, {"Authorization": TOKEN}],
    ids=["no-token", "wrong-token", "no-bearer-scheme"],
)
def test_labels_without_a_valid_token_are_refused(
    client: TestClient, tmp_path: Path, headers: dict
) -> None:
    request_id = _answer(client)
    response = hostile(
        "label without a valid token",
        client.post(
            "/models/churn/feedback", json={"request_id": request_id, "label": 1}, headers=headers
        ),
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert _labels(tmp_path) == {}


def test_every_configured_token_is_accepted_so_they_can_be_rotated(client: TestClient) -> None:
    for token in (TOKEN, NEXT_TOKEN):
        request_id = _answer(client)
        response = client.post(
            "/models/churn/feedback",
            json={"request_id": request_id, "label": 1},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.json()["stored"] == 1


def test_without_configured_tokens_labels_and_admin_calls_are_off(
    source: FakeSource, tmp_path: Path
) -> None:
    with TestClient(create_app(gateway_config(tmp_path, api_tokens=[]), source)) as client:
        wait_until(lambda: client.get("/ready").status_code == 200)
        request_id = _answer(client)
        label = hostile(
            "label, no tokens configured", _feedback(client, {"request_id": request_id, "label": 1})
        )
        refresh = hostile(
            "admin refresh, no tokens configured", client.post("/admin/refresh", headers=AUTH)
        )
    assert label.status_code == refresh.status_code == 403
    assert "GATEWAY_API_TOKENS" in label.json()["detail"]


def test_admin_refresh_needs_a_token(client: TestClient) -> None:
    refused = hostile("admin refresh without a token", client.post("/admin/refresh"))
    assert refused.status_code == 401
    assert client.post("/admin/refresh", headers=AUTH).status_code == 200


def test_a_label_for_a_request_id_never_answered_is_refused(
    client: TestClient, tmp_path: Path
) -> None:
    response = hostile(
        "label for an unissued request id", _feedback(client, {"request_id": "made-up", "label": 1})
    )
    assert response.status_code == 422 and "not answered" in response.json()["detail"]
    assert _labels(tmp_path) == {}


def test_a_label_for_a_row_the_request_did_not_have_is_refused(
    client: TestClient, tmp_path: Path
) -> None:
    request_id = _answer(client, rows=2)
    response = hostile(
        "label for a row beyond the request",
        _feedback(client, {"request_id": request_id, "row_index": 2, "label": 1}),
    )
    assert response.status_code == 422 and "had 2 row(s)" in response.json()["detail"]


def test_a_label_for_a_request_that_failed_is_refused(
    client: TestClient, source: FakeSource
) -> None:
    source.models[("churn", 1)].predict_proba = _raises_value_error
    failed = client.post("/models/churn/invocations", json=ROW, headers={"X-Request-Id": "f-1"})
    assert failed.status_code == 422
    response = hostile(
        "label for a failed request", _feedback(client, {"request_id": "f-1", "label": 1})
    )
    assert response.status_code == 422 and "failed" in response.json()["detail"]


def _raises_value_error(frame):
    raise ValueError("cannot score")


@pytest.mark.parametrize(
    "raw_label",
    ["7", "-0.5", "0.5", "Infinity", "-Infinity", "NaN", "true", '"1"', "null", "1e400"],
)
def test_a_label_that_is_not_a_binary_class_is_refused(
    client: TestClient, tmp_path: Path, raw_label: str
) -> None:
    request_id = _answer(client)
    body = f'{{"request_id": "{request_id}", "label": {raw_label}}}'
    response = hostile(
        f"label {raw_label}",
        client.post(
            "/models/churn/feedback",
            content=body,
            headers=AUTH | {"Content-Type": "application/json"},
        ),
    )
    assert response.status_code == 422
    assert _labels(tmp_path) == {}


def test_labels_in_a_batch_with_one_bad_item_are_all_refused(
    client: TestClient, tmp_path: Path
) -> None:
    request_id = _answer(client)
    batch = [{"request_id": request_id, "label": 1}, {"request_id": "made-up", "label": 0}]
    response = hostile("batch with one unissued id", _feedback(client, {"labels": batch}))
    assert response.status_code == 422
    assert _labels(tmp_path) == {}


def test_the_first_label_wins_and_a_correction_must_say_overwrite(
    client: TestClient, tmp_path: Path
) -> None:
    request_id = _answer(client)
    assert _feedback(client, {"request_id": request_id, "label": 1}).json()["stored"] == 1
    overwrite = hostile(
        "label overwriting an earlier one",
        _feedback(client, {"request_id": request_id, "label": 0}),
    )
    assert overwrite.status_code == 409 and "overwrite" in overwrite.json()["detail"]
    assert _labels(tmp_path) == {(request_id, 0): 1.0}
    same = _feedback(client, {"request_id": request_id, "label": 1})
    assert same.json() == {"stored": 0, "unchanged": 1, "corrected": 0}
    corrected = _feedback(client, {"request_id": request_id, "label": 0, "overwrite": True})
    assert corrected.json() == {"stored": 0, "unchanged": 0, "corrected": 1}
    assert _labels(tmp_path) == {(request_id, 0): 0.0}


def test_more_labels_than_the_limit_in_one_call_are_refused(
    source: FakeSource, tmp_path: Path
) -> None:
    config = gateway_config(tmp_path, max_request_rows=100)
    with TestClient(create_app(config, source)) as client:
        wait_until(lambda: client.get("/ready").status_code == 200)
        request_id = _answer(client, rows=100)
        batch = [{"request_id": request_id, "row_index": i % 100, "label": 1} for i in range(101)]
        response = hostile("101 labels over a limit of 100", _feedback(client, {"labels": batch}))
    assert response.status_code == 413
    assert _labels(tmp_path) == {}


def test_100000_labels_at_once_are_refused_unparsed(client: TestClient, tmp_path: Path) -> None:
    request_id = _answer(client)
    batch = [{"request_id": request_id, "label": 1}] * 100_000
    response = hostile("100,000 labels at once", _feedback(client, {"labels": batch}))
    assert response.status_code == 413
    assert _labels(tmp_path) == {}


@pytest.mark.parametrize("path", ["/models/churn/feedback", "/models/churn/invocations"])
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_declared_json_is_refused(
    client: TestClient, tmp_path: Path, path: str, content_type: str | None
) -> None:
    # What a web page can make a colleague's browser send cross-site without a preflight.
    request_id = _answer(client)
    payload = {"request_id": request_id, "label": 1} if path.endswith("feedback") else ROW
    headers = AUTH | ({"Content-Type": content_type} if content_type else {})
    response = hostile(
        f"{content_type} body to {path}",
        client.post(path, content=json.dumps(payload), headers=headers),
    )
    assert response.status_code == 415
    assert _labels(tmp_path) == {}


def test_a_body_over_the_limit_is_refused_before_it_is_parsed(
    source: FakeSource, tmp_path: Path
) -> None:
    config = gateway_config(tmp_path, max_body_bytes=10_000)
    with TestClient(create_app(config, source)) as client:
        wait_until(lambda: client.get("/ready").status_code == 200)
        declared = hostile(
            "body over the limit (declared)",
            client.post("/models/churn/invocations", content=b"{" * 20_000, headers=_json()),
        )
        streamed = hostile(
            "body over the limit (chunked, no length)",
            client.post("/models/churn/invocations", content=_chunks(20_000), headers=_json()),
        )
    assert declared.status_code == streamed.status_code == 413
    assert "10000 bytes" in streamed.json()["detail"]


def _json() -> dict:
    return {"Content-Type": "application/json"}


def _chunks(total: int):
    for _ in range(total // 1000):
        yield b" " * 1000


def test_an_error_message_never_echoes_a_large_input(client: TestClient) -> None:
    large = "x" * 1_000_000
    payloads = [
        {"dataframe_records": [{"x": large, "plan": "pro"}]},
        {"dataframe_records": [{large: 1.0}]},
    ]
    for payload in payloads:
        response = hostile(
            "large value in an error", client.post("/models/churn/invocations", json=payload)
        )
        assert response.status_code == 422
        assert len(response.text) < 1000
    unknown = hostile(
        "large model name", client.post(f"/models/{'m' * 5000}/invocations", json=ROW)
    )
    assert unknown.status_code == 404 and len(unknown.text) < 1000


def test_a_reused_request_id_is_refused_not_silently_unlogged(
    client: TestClient, tmp_path: Path
) -> None:
    _answer(client, request_id="order-1")
    again = hostile(
        "reused X-Request-Id",
        client.post("/models/churn/invocations", json=ROW, headers={"X-Request-Id": "order-1"}),
    )
    assert again.status_code == 409
    client.app.state.services.log.close()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    with engine.connect() as connection:
        logged = connection.execute(
            sa.text("SELECT count(*) FROM prediction_log WHERE request_id = 'order-1'")
        ).scalar_one()
    assert logged == 1


def test_a_request_id_logged_before_a_restart_is_refused(
    source: FakeSource, tmp_path: Path
) -> None:
    config = gateway_config(tmp_path)
    with TestClient(create_app(config, source)) as client:
        wait_until(lambda: client.get("/ready").status_code == 200)
        _answer(client, request_id="order-7")
    with TestClient(create_app(config, source)) as client:
        wait_until(lambda: client.get("/ready").status_code == 200)
        again = hostile(
            "request id reused after a restart",
            client.post("/models/churn/invocations", json=ROW, headers={"X-Request-Id": "order-7"}),
        )
        labeled = _feedback(client, {"request_id": "order-7", "label": 1})
    assert again.status_code == 409
    assert labeled.json()["stored"] == 1  # and its label is still taken, from the log


def test_a_replayed_webhook_delivery_is_refused(client: TestClient, source: FakeSource) -> None:
    first = deliver(client, SECRET, {"name": "churn", "alias": "champion"}, delivery_id="d-9")
    assert first.status_code == 200
    replay = hostile(
        "replayed webhook delivery",
        deliver(client, SECRET, {"name": "churn", "alias": "champion"}, delivery_id="d-9"),
    )
    assert replay.status_code == 409


@pytest.mark.parametrize(
    "timestamp",
    ["9" * 5000, "١٧٠٠٠٠٠٠٠٠", "-1", "1e9"],
    ids=["long", "arabic-digits", "neg", "exp"],
)
def test_a_webhook_with_a_garbled_timestamp_is_a_401(client: TestClient, timestamp: str) -> None:
    response = hostile(
        "webhook with a garbled timestamp",
        client.post(
            "/webhooks/mlflow",
            content=b"{}",
            headers={
                "X-MLflow-Delivery-Id": "d-2",
                "X-MLflow-Timestamp": timestamp.encode(),
                "X-MLflow-Signature": "v1,abc",
            },
        ),
    )
    assert response.status_code == 401


def test_a_webhook_with_a_non_ascii_signature_is_a_401(client: TestClient) -> None:
    import time

    response = hostile(
        "webhook with a non-ASCII signature",
        client.post(
            "/webhooks/mlflow",
            content=b"{}",
            headers={
                "X-MLflow-Delivery-Id": "d-3",
                "X-MLflow-Timestamp": str(int(time.time())),
                "X-MLflow-Signature": "v1,é".encode(),
            },
        ),
    )
    assert response.status_code == 401


def test_a_routing_key_longer_than_the_log_keeps_is_refused(client: TestClient) -> None:
    response = hostile(
        "long X-Routing-Key",
        client.post("/models/churn/invocations", json=ROW, headers={"X-Routing-Key": "k" * 300}),
    )
    assert response.status_code == 400


@pytest.mark.parametrize("value", ["Infinity", "-Infinity"])
def test_an_infinite_feature_value_is_refused(client: TestClient, value: str) -> None:
    body = f'{{"dataframe_records": [{{"x": {value}, "plan": "pro"}}]}}'
    response = hostile(
        f"feature value {value}",
        client.post("/models/churn/invocations", content=body, headers=_json()),
    )
    assert response.status_code == 422 and "finite" in response.json()["detail"]
