from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.batching import LogEntry
from gateway.config import parse_config
from gateway.predlog import create_engine, log_tables, write_entries
from tests.gateway.conftest import AUTH, ROW, SECRET, deliver
from tests.gateway.fakes import FakeSource, wait_until


def test_the_champion_answers_with_request_id_and_version(client: TestClient) -> None:
    response = client.post("/models/churn/invocations", json=ROW)
    assert response.status_code == 200
    body = response.json()
    assert body["predictions"] == [pytest.approx(0.1)]
    assert (body["version"], body["role"]) == (1, "champion")
    assert response.headers["X-Request-Id"] == body["request_id"]


def test_request_ids_the_gateway_gives_are_unique_and_follow_the_order_of_arrival(
    client: TestClient,
) -> None:
    # Ordered ids land at the end of the log's indexes instead of all over them.
    ids = [
        client.post("/models/churn/invocations", json=ROW).json()["request_id"] for _ in range(50)
    ]
    assert len(set(ids)) == 50
    assert ids == sorted(ids)
    assert all(len(request_id) == 32 and int(request_id, 16) for request_id in ids)


def test_a_caller_given_request_id_is_kept(client: TestClient) -> None:
    response = client.post(
        "/models/churn/invocations", json=ROW, headers={"X-Request-Id": "order-42"}
    )
    assert response.json()["request_id"] == "order-42"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b'{"rows": []}', 400, "exactly one of the keys"),
        (json.dumps({"dataframe_records": [{"x": 0.1}]}).encode(), 422, "missing column(s): plan"),
        (json.dumps({"dataframe_records": [{"x": "a", "plan": "p"}]}).encode(), 422, "'x'"),
    ],
    ids=["malformed-json", "not-a-payload", "missing-column", "wrong-type"],
)
def test_bad_input_gets_a_4xx_with_a_message(
    client: TestClient, body: bytes, status: int, message: str
) -> None:
    response = client.post(
        "/models/churn/invocations", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status
    assert message in response.json()["detail"]


def test_a_csv_body_is_answered_like_its_json_twin(client: TestClient) -> None:
    response = client.post(
        "/models/churn/invocations",
        content=b"x,plan\n0.4,pro\n0.6,free\n",
        headers={"Content-Type": "text/csv; charset=utf-8"},
    )
    assert response.status_code == 200
    assert response.json()["predictions"] == [pytest.approx(0.1)] * 2
    refused = client.post(
        "/models/churn/invocations",
        content=b"x,plan\nlots,pro\n",
        headers={"Content-Type": "text/csv"},
    )
    assert refused.status_code == 422 and "'x' (double)" in refused.json()["detail"]


def test_the_log_keeps_each_requests_values_once_as_the_version_read_them(
    client: TestClient, source: FakeSource, tmp_path: Path
) -> None:
    source.aliases_by_model["churn"] = {"champion": 1, "shadow": 2}
    client.post("/admin/refresh", headers=AUTH)
    wait_until(lambda: client.get("/models/churn").json()["shadow"] == 2)
    csv = client.post(
        "/models/churn/invocations",
        content=b"x,plan,extra\n0.4,pro,1\n,free,2\n",
        headers={"Content-Type": "text/csv", "X-Request-Id": "csv"},
    )
    records = {"dataframe_records": [{"x": 0.4, "plan": "pro"}, {"x": None, "plan": "free"}]}
    twin = client.post("/models/churn/invocations", json=records, headers={"X-Request-Id": "json"})
    assert csv.status_code == twin.status_code == 200
    wait_until(lambda: client.get("/models/churn").json()["shadow_scored"] == 2)
    client.app.state.services.shadow.close(5)
    client.app.state.services.log.close()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    with engine.connect() as connection:
        logged = connection.execute(
            sa.text(
                "SELECT request_id, role, features FROM prediction_log ORDER BY request_id, role, row_index"
            )
        ).all()
    features = {(request, role): [] for request, role, _ in logged}
    for request, role, row in logged:
        features[(request, role)].append(json.loads(row))
    # Each request's input is kept once, on its answered row; its shadow copy refers to it.
    expected = {"champion": [{"x": 0.4, "plan": "pro"}, {"x": None, "plan": "free"}]}
    expected["shadow"] = [{}, {}]
    assert features == {
        (request, role): expected[role] for request in ("csv", "json") for role in expected
    }


def test_the_openapi_schema_describes_every_scoring_body(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/models/{name}/invocations"]["post"]
    content = operation["requestBody"]["content"]
    assert set(content) == {"application/json", "text/csv"}
    keys = {
        next(iter(option["required"])) for option in content["application/json"]["schema"]["oneOf"]
    }
    assert keys == {"dataframe_split", "dataframe_records", "instances", "inputs"}
    example = content["application/json"]["example"]
    assert client.post("/models/churn/invocations", json=example).status_code in (200, 422)


def test_an_unknown_model_is_a_404_naming_the_served_ones(client: TestClient) -> None:
    response = client.post("/models/fraud/invocations", json=ROW)
    assert response.status_code == 404
    assert "served: churn" in response.json()["detail"]


def test_not_ready_until_a_champion_is_loaded(source: FakeSource, tmp_path: Path) -> None:
    source.aliases_by_model["churn"] = {}
    config = parse_config(
        {
            "models": [{"name": "churn"}],
            "prediction_log": {"url": f"sqlite:///{tmp_path / 'log.db'}"},
        },
        "test",
    )
    with TestClient(create_app(config, source)) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 503
        response = client.post("/models/churn/invocations", json=ROW)
        assert response.status_code == 503 and "no champion" in response.json()["detail"]


def test_a_failing_shadow_never_fails_the_answer(client: TestClient, source: FakeSource) -> None:
    source.aliases_by_model["churn"] = {"champion": 1, "shadow": 3}
    client.post("/admin/refresh", headers=AUTH)
    wait_until(lambda: client.get("/models/churn").json()["shadow"] == 3)
    responses = [client.post("/models/churn/invocations", json=ROW) for _ in range(5)]
    assert all(r.status_code == 200 and r.json()["version"] == 1 for r in responses)
    wait_until(lambda: client.get("/models/churn").json()["shadow_failed"] == 5)


def test_a_signed_webhook_refreshes_the_model_at_once(
    client: TestClient, source: FakeSource
) -> None:
    source.aliases_by_model["churn"] = {"champion": 2}
    response = deliver(client, SECRET, {"name": "churn", "alias": "champion", "version": "2"})
    assert response.status_code == 200 and response.json() == {"refreshing": True}
    wait_until(lambda: client.get("/models/churn").json()["champion"] == 2)


def test_a_webhook_with_a_wrong_signature_is_refused(
    client: TestClient, source: FakeSource
) -> None:
    source.aliases_by_model["churn"] = {"champion": 2}
    response = deliver(client, "not-the-secret", {"name": "churn", "alias": "champion"})
    assert response.status_code == 401
    time.sleep(0.2)
    assert client.get("/models/churn").json()["champion"] == 1


def test_feedback_is_stored_and_bad_feedback_refused(client: TestClient, tmp_path: Path) -> None:
    one = client.post("/models/churn/invocations", json=ROW).json()["request_id"]
    two = [client.post("/models/churn/invocations", json=ROW).json()["request_id"] for _ in "ab"]
    ok = client.post("/models/churn/feedback", json={"request_id": one, "label": 1}, headers=AUTH)
    assert ok.json() == {"stored": 1, "unchanged": 0, "corrected": 0}
    bulk = client.post(
        "/models/churn/feedback",
        json={"labels": [{"request_id": two[0], "label": 0}, {"request_id": two[1], "label": 1}]},
        headers=AUTH,
    )
    assert bulk.json() == {"stored": 2, "unchanged": 0, "corrected": 0}
    bad = client.post("/models/churn/feedback", json={"request_id": one}, headers=AUTH)
    assert bad.status_code == 422 and "request_id and label" in bad.json()["detail"]
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    with engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT count(*) FROM prediction_labels")).scalar_one()
    assert stored == 3


def test_a_request_the_model_cannot_score_is_a_422_logged_against_its_arm(
    client: TestClient, source: FakeSource, tmp_path: Path
) -> None:
    source.models[("churn", 1)].predict_proba = _raises_value_error
    failed = client.post("/models/churn/invocations", json=ROW, headers={"X-Request-Id": "bad"})
    assert failed.status_code == 422 and "cannot score" in failed.json()["detail"]
    client.app.state.services.log.close()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    with engine.connect() as connection:
        role, error = connection.execute(
            sa.text("SELECT role, error FROM prediction_log WHERE request_id = 'bad'")
        ).one()
    assert role == "champion" and "Input contains NaN" in error


def test_a_label_for_a_request_that_failed_elsewhere_is_refused_as_failed(
    client: TestClient, tmp_path: Path
) -> None:
    # Another worker answered (and failed) it: only the shared log knows the request.
    engine = create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    failed = LogEntry("elsewhere", "churn", 1, "champion", None, None, None, 0.0, datetime.now(UTC))
    write_entries(engine, log_tables().predictions, [replace(failed, error="cannot score")], {})
    engine.dispose()
    label = client.post(
        "/models/churn/feedback", json={"request_id": "elsewhere", "label": 1}, headers=AUTH
    )
    assert label.status_code == 422
    assert "request 'elsewhere' failed; it has no prediction" in label.json()["detail"]


def _raises_value_error(frame):
    raise ValueError("Input contains NaN")
