"""A client written for `mlflow models serve` works unchanged against the gateway under uvicorn:
MLflow's own scoring client (ping, invoke at /invocations), every JSON payload it accepts and a
CSV body, all answered with the same predictions."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.gateway.support import register, training_frame

pytestmark = pytest.mark.integration

MODEL = "gw_mlflow_client"


def test_mlflow_scoring_client_and_every_payload_get_the_same_predictions(
    store, start_gateway
) -> None:
    from urllib.parse import urlsplit

    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    register(store, MODEL, {"champion": "logistic"})
    gateway = start_gateway("--model", MODEL)
    frame, _ = training_frame(4, seed=21)
    address = urlsplit(gateway.url)
    client = ScoringServerClient(address.hostname, address.port)
    client.wait_server_ready(timeout=30)
    expected = list(client.invoke(frame).get_predictions(predictions_format="dataframe")[0])
    assert len(expected) == 4 and all(0 < p < 1 for p in expected)

    records = frame.to_dict("records")
    bodies = {
        "dataframe_split": {"dataframe_split": frame.to_dict("split")},
        "dataframe_records": {"dataframe_records": records},
        "instances": {"instances": records},
        "inputs": {"inputs": frame.to_dict("list")},
    }
    url = f"{gateway.url}/models/{MODEL}/invocations"
    for name, body in bodies.items():
        answer = httpx.post(url, json=body, timeout=30)
        assert answer.status_code == 200, (name, answer.text)
        assert answer.json()["predictions"] == pytest.approx(expected), name
    as_csv = httpx.post(
        url,
        content=frame.to_csv(index=False).encode(),
        headers={"Content-Type": "text/csv"},
        timeout=30,
    )
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.json()["predictions"] == pytest.approx(expected)
    gateway.terminate()
