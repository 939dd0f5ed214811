"""Data masking: the feature columns a policy lists are stored hashed (keyed) or not at all in the
prediction log; the answer and the scoring are unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.batching import FeatureMask
from gateway.config import GatewayConfigError, parse_config
from tests.gateway.conftest import ROW, gateway_config
from tests.gateway.fakes import FakeSource, wait_until
from tests.support import write_policy

KEY = "masking-key-for-tests-0001"


def test_hashed_features_keep_equality_but_not_the_value_and_unlogged_ones_are_gone() -> None:
    mask = FeatureMask.of(["email"], ["ssn"], KEY)
    one = mask.apply({"email": "a@x.example", "ssn": "123-45", "age": 41})
    two = mask.apply({"email": "a@x.example", "ssn": "999-99", "age": 7})
    assert set(one) == {"email", "age"} and one["age"] == 41
    assert one["email"] == two["email"] and "a@x.example" not in one["email"]
    assert one["email"].startswith("hmac-sha256:")
    other_key = FeatureMask.of(["email"], [], "another-key-000000001")
    assert other_key.apply({"email": "a@x.example"})["email"] != one["email"]
    assert mask.apply({"email": None}) == {"email": None}


def test_the_log_stores_masked_features_while_the_answer_is_unchanged(
    source: FakeSource, tmp_path: Path
) -> None:
    config = gateway_config(
        tmp_path,
        models=[{"name": "churn", "hashed_features": ["plan"], "unlogged_features": ["x"]}],
        masking_key=KEY,
    )
    with TestClient(create_app(config, source)) as client:
        wait_until(lambda: client.get("/ready").status_code == 200)
        answer = client.post("/models/churn/invocations", json=ROW)
        assert answer.status_code == 200 and answer.json()["predictions"] == [pytest.approx(0.1)]
        client.app.state.services.log.close()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    with engine.connect() as connection:
        (features,) = connection.execute(sa.text("SELECT features FROM prediction_log")).scalars()
    stored = json.loads(features) if isinstance(features, str) else features
    assert set(stored) == {"plan"}
    assert stored["plan"].startswith("hmac-sha256:") and "pro" not in stored["plan"]


def test_hashing_without_a_key_is_refused_at_start() -> None:
    with pytest.raises(GatewayConfigError, match="GATEWAY_MASKING_KEY"):
        parse_config({"models": [{"name": "churn", "hashed_features": ["plan"]}]}, "test")


def test_the_masking_is_read_from_each_served_models_policy(tmp_path: Path) -> None:
    write_policy(
        tmp_path,
        "churn",
        prediction_log={"hashed_features": ["region"], "unlogged_features": ["avg_order_value"]},
    )
    config = parse_config(
        {"models": [{"name": "churn"}], "policy_dir": str(tmp_path), "masking_key": KEY}, "test"
    )
    assert config.models[0].hashed_features == ("region",)
    assert config.models[0].unlogged_features == ("avg_order_value",)


def test_a_policy_masking_a_column_that_is_not_a_feature_is_refused(tmp_path: Path) -> None:
    write_policy(tmp_path, "churn", prediction_log={"unlogged_features": ["email"]})
    with pytest.raises(
        GatewayConfigError, match=r"churn\.yaml: .*prediction_log: not features of the model: email"
    ):
        parse_config({"models": [{"name": "churn"}], "policy_dir": str(tmp_path)}, "test")
