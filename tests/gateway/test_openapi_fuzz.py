"""The scoring route as an API fuzzer sees it: bodies generated from the published OpenAPI schema
reach the scoring logic and are answered, or refused with a 4xx that says why; never a 5xx."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from gateway.app import create_app
from tests.gateway.conftest import gateway_config
from tests.gateway.fakes import FakeSource, wait_until


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from tests.gateway.fakes import ConstantModel

    source = FakeSource()
    source.add("churn", 1, ConstantModel(0.1))
    source.aliases_by_model["churn"] = {"champion": 1}
    config = gateway_config(tmp_path_factory.mktemp("fuzz"))
    with TestClient(create_app(config, source)) as client:
        wait_until(lambda: client.get("/ready").status_code == 200)
        yield client


def _published_schema() -> dict:
    """The OpenAPI document the gateway publishes (building it starts nothing)."""
    app = create_app(
        gateway_config(Path(tempfile.mkdtemp(prefix="gateway-openapi-"))), FakeSource()
    )
    return app.openapi()


schema = schemathesis.openapi.from_dict(_published_schema()).include(
    path="/models/{name}/invocations"
)


@schema.parametrize()
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_scoring_bodies_get_an_answer_or_a_4xx_never_a_5xx(
    case: schemathesis.Case, served: TestClient
) -> None:
    case.path_parameters = {"name": "churn"}
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    response = served.request(
        kwargs["method"],
        kwargs["url"],
        headers=kwargs.get("headers"),
        params=kwargs.get("params"),
        json=kwargs.get("json"),
        content=kwargs.get("data"),
    )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["detail"]
