"""The gateway answers per task: a binary classifier's positive-class probability, a multiclass
classifier's predicted class with its class probabilities, a regressor's value; warm-up proves a
version gives its task's shape, and labels are checked against the task."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.config import ServedModel
from gateway.holder import AliasFollower, loaded_version, version_task, warm
from tests.gateway.conftest import AUTH, gateway_config
from tests.gateway.fakes import (
    COLUMNS,
    EXAMPLE,
    ClassesModel,
    ConstantModel,
    FakeSource,
    LinearModel,
    wait_until,
)

ROWS = {"dataframe_records": [{"x": 1.0, "plan": "pro"}, {"x": 2.0, "plan": "free"}]}
SPECIES = ["setosa", "versicolor", "virginica"]


def _client(tmp_path: Path, source: FakeSource, **served) -> TestClient:
    config = gateway_config(tmp_path, models=[{"name": "churn", **served}])
    return TestClient(create_app(config, source))


@pytest.fixture
def multiclass(tmp_path: Path) -> Iterator[TestClient]:
    source = FakeSource()
    source.add("churn", 1, ClassesModel(SPECIES, [0.2, 0.7, 0.1]))
    source.tags[("churn", 1)] = {"lineage.task": "multiclass"}
    source.aliases_by_model["churn"] = {"champion": 1}
    with _client(tmp_path, source) as client:
        wait_until(lambda: client.get("/ready").status_code == 200)
        yield client


@pytest.fixture
def regression(tmp_path: Path) -> Iterator[TestClient]:
    source = FakeSource()
    source.add("churn", 1, LinearModel(slope=2.0, intercept=0.5))
    source.tags[("churn", 1)] = {"lineage.task": "regression"}
    source.aliases_by_model["churn"] = {"champion": 1}
    with _client(tmp_path, source) as client:
        wait_until(lambda: client.get("/ready").status_code == 200)
        yield client


def _logged(tmp_path: Path, client: TestClient, query: str) -> list:
    client.app.state.services.log.close()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    with engine.connect() as connection:
        return connection.execute(sa.text(query)).all()


def test_a_multiclass_answer_is_the_predicted_class_and_every_class_probability(
    multiclass: TestClient,
) -> None:
    body = multiclass.post("/models/churn/invocations", json=ROWS).json()
    expected = {"setosa": 0.2, "versicolor": 0.7, "virginica": 0.1}
    assert (
        body["predictions"]
        == [{"class": "versicolor", "probabilities": pytest.approx(expected)}] * 2
    )


def test_a_multiclass_row_is_logged_with_its_class_and_probabilities(
    multiclass: TestClient, tmp_path: Path
) -> None:
    multiclass.post("/models/churn/invocations", json=ROWS, headers={"X-Request-Id": "r1"})
    rows = _logged(
        tmp_path,
        multiclass,
        "SELECT prediction, predicted_class, probabilities FROM prediction_log",
    )
    assert len(rows) == 2
    prediction, predicted_class, probabilities = rows[0]
    assert (prediction, predicted_class) == (pytest.approx(0.7), "versicolor")
    assert '"virginica": 0.1' in probabilities


def test_a_regression_answer_is_the_value_of_each_row(regression: TestClient) -> None:
    body = regression.post("/models/churn/invocations", json=ROWS).json()
    assert body["predictions"] == [pytest.approx(2.5), pytest.approx(4.5)]


def test_a_binary_answer_is_still_the_positive_class_probability(client: TestClient) -> None:
    body = client.post("/models/churn/invocations", json=ROWS).json()
    assert body["predictions"] == [pytest.approx(0.1)] * 2


def test_a_multiclass_label_is_a_class_of_the_model(multiclass: TestClient, tmp_path: Path) -> None:
    request_id = multiclass.post("/models/churn/invocations", json=ROWS).json()["request_id"]
    stored = multiclass.post(
        "/models/churn/feedback",
        json={"labels": [{"request_id": request_id, "label": "setosa", "row_index": 1}]},
        headers=AUTH,
    )
    assert stored.json()["stored"] == 1
    typo = multiclass.post(
        "/models/churn/feedback", json={"request_id": request_id, "label": "setosaa"}, headers=AUTH
    )
    assert typo.status_code == 422
    detail = typo.json()["detail"]
    assert detail.startswith("label:") and "one of its classes" in detail and "virginica" in detail
    number = multiclass.post(
        "/models/churn/feedback",
        json={"labels": [{"request_id": request_id, "label": 0.5}]},
        headers=AUTH,
    )
    assert number.status_code == 422 and number.json()["detail"].startswith("labels.0.label:")
    rows = _logged(tmp_path, multiclass, "SELECT label, label_class FROM prediction_labels")
    assert rows == [(None, "setosa")]


def test_a_regression_label_is_any_finite_number(regression: TestClient, tmp_path: Path) -> None:
    request_id = regression.post("/models/churn/invocations", json=ROWS).json()["request_id"]
    stored = regression.post(
        "/models/churn/feedback", json={"request_id": request_id, "label": 17.25}, headers=AUTH
    )
    assert stored.json()["stored"] == 1
    for bad in ("17", True):
        refused = regression.post(
            "/models/churn/feedback",
            json={"request_id": request_id, "label": bad, "row_index": 1},
            headers=AUTH,
        )
        assert refused.status_code == 422
        assert refused.json()["detail"] == (
            f"label: Value error, a label of a regression model is a finite number, got {bad!r}"
        )
    assert _logged(tmp_path, regression, "SELECT label FROM prediction_labels") == [(17.25,)]


def test_a_binary_label_is_still_zero_or_one(client: TestClient) -> None:
    request_id = client.post("/models/churn/invocations", json=ROWS).json()["request_id"]
    refused = client.post(
        "/models/churn/feedback", json={"request_id": request_id, "label": 0.3}, headers=AUTH
    )
    assert refused.status_code == 422 and "0 or 1" in refused.json()["detail"]


def _loaded(model: object, tags: dict[str, str], configured: str | None = None):
    return loaded_version("churn", 1, model, COLUMNS, tags, configured)


def test_warm_up_accepts_a_multiclass_and_a_regression_model() -> None:
    warm(_loaded(ClassesModel(SPECIES, [0.2, 0.7, 0.1]), {"lineage.task": "multiclass"}), EXAMPLE)
    warm(_loaded(LinearModel(1.0), {"lineage.task": "regression"}), EXAMPLE)


@pytest.mark.parametrize(
    ("model", "tags", "message"),
    [
        (ClassesModel(SPECIES, [0.2, 0.7, 0.1]), {}, "served as binary"),
        (LinearModel(1.0), {"lineage.task": "binary"}, "not a fitted classifier"),
        (ConstantModel(0.3), {"lineage.task": "regression"}, "model is a classifier"),
        (
            ClassesModel(SPECIES, [0.5, 0.5]),
            {"lineage.task": "multiclass"},
            "2 probability columns for 3 classes",
        ),
        (ClassesModel(SPECIES, [np.nan, 0.5, 0.5]), {"lineage.task": "multiclass"}, "answered NaN"),
    ],
    ids=["multiclass-untagged", "regressor-as-binary", "classifier-as-regression", "shape", "nan"],
)
def test_warm_up_refuses_a_model_that_does_not_answer_its_task(model, tags, message) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        warm(_loaded(model, tags), EXAMPLE)


def test_a_version_tagged_with_another_task_than_the_served_model_is_refused() -> None:
    assert version_task({}, "regression") == "regression"
    assert version_task({"lineage.task": "multiclass"}, None) == "multiclass"
    assert version_task({}, None) == "binary"
    with pytest.raises(ValueError, match="tagged lineage.task=multiclass but .* served as binary"):
        version_task({"lineage.task": "multiclass"}, "binary")


def test_the_follower_keeps_serving_when_a_version_of_another_task_arrives() -> None:
    source = FakeSource()
    source.add("churn", 1, ConstantModel(0.2))
    source.add("churn", 2, LinearModel(1.0))
    source.tags[("churn", 2)] = {"lineage.task": "regression"}
    source.aliases_by_model["churn"] = {"champion": 1}
    follower = AliasFollower(
        [ServedModel(name="churn", task="binary")], source, refresh_interval_s=60
    )
    follower.refresh("churn")
    source.aliases_by_model["churn"] = {"champion": 2}
    arms = follower.refresh("churn")
    assert arms.version_of("champion") == 1
    assert "served as binary" in follower.state("churn").load_errors[2]


def test_a_shadow_regressor_is_logged_with_its_values(tmp_path: Path) -> None:
    source = FakeSource()
    source.add("churn", 1, LinearModel(2.0))
    source.add("churn", 2, LinearModel(3.0))
    for version in (1, 2):
        source.tags[("churn", version)] = {"lineage.task": "regression"}
    source.aliases_by_model["churn"] = {"champion": 1, "shadow": 2}
    with _client(tmp_path, source) as client:
        wait_until(lambda: client.get("/models/churn").json()["shadow"] == 2)
        client.post("/models/churn/invocations", json=ROWS)
        wait_until(lambda: client.get("/models/churn").json()["shadow_scored"] == 1)
        rows = _logged(
            tmp_path, client, "SELECT role, prediction FROM prediction_log ORDER BY role, id"
        )
    assert rows == [("champion", 2.0), ("champion", 4.0), ("shadow", 3.0), ("shadow", 6.0)]


def test_an_answer_frame_of_strings_is_refused_for_a_regressor() -> None:
    class Labeller:
        def predict(self, frame: pd.DataFrame) -> np.ndarray:
            return np.array(["a"] * len(frame))

    with pytest.raises(ValueError, match="served as regression, the model cannot answer"):
        warm(_loaded(Labeller(), {"lineage.task": "regression"}), EXAMPLE)
