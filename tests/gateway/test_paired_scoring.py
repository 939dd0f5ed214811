"""During a canary the champion also scores the canary's requests, off the request path: logged
as champion_paired, never returned, never slowing the answer."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from gateway.app import create_app
from gateway.batching import log_rows
from gateway.payload import Columns
from gateway.predlog import CHAMPION_PAIRED, create_engine
from gateway.shadow import ShadowJob, ShadowRunner, batches
from tests.gateway.conftest import gateway_config
from tests.gateway.fakes import ConstantModel, FakeSource, wait_until

ROWS = {"dataframe_records": [{"x": 0.2, "plan": "pro"}, {"x": 0.4, "plan": "team"}]}


class SlowModel(ConstantModel):
    """A constant classifier that takes `delay_s` per call once the test sets it."""

    delay_s = 0.0

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        time.sleep(self.delay_s)
        return super().predict_proba(frame)


def canary_source(champion: ConstantModel) -> FakeSource:
    source = FakeSource()
    source.add("churn", 1, champion)
    source.add("churn", 2, ConstantModel(0.7))
    source.aliases_by_model["churn"] = {"champion": 1, "canary": 2}
    source.tags[("churn", 2)] = {"rollout.canary_share": "1.0"}
    return source


def logged_rows(tmp_path: Path) -> list[sa.Row]:
    engine = create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT request_id, row_index, role, version, prediction FROM prediction_log "
                "ORDER BY request_id, role, row_index"
            )
        ).all()
    engine.dispose()
    return rows


def test_the_champion_scores_each_canary_request_and_the_answer_is_the_canarys_alone(
    tmp_path: Path,
) -> None:
    app = create_app(gateway_config(tmp_path), canary_source(ConstantModel(0.1)))
    with TestClient(app) as client:
        wait_until(lambda: client.get("/models/churn").json()["canary"] == 2)
        answers = [client.post("/models/churn/invocations", json=ROWS).json() for _ in range(3)]
        wait_until(lambda: client.get("/models/churn").json()["paired_scored"] == 3)
    assert all(a["role"] == "canary" and a["predictions"] == [0.7, 0.7] for a in answers)
    rows = logged_rows(tmp_path)
    paired = [r for r in rows if r.role == CHAMPION_PAIRED]
    canary = [r for r in rows if r.role == "canary"]
    assert {(r.request_id, r.row_index) for r in paired} == {
        (r.request_id, r.row_index) for r in canary
    }
    assert {(r.version, r.prediction) for r in paired} == {(1, 0.1)}
    assert {r.request_id for r in canary} == {a["request_id"] for a in answers}


def test_requests_the_champion_answers_are_not_scored_twice(
    source: FakeSource, tmp_path: Path
) -> None:
    with TestClient(create_app(gateway_config(tmp_path), source)) as client:
        wait_until(lambda: client.get("/ready").status_code == 200)
        for _ in range(3):
            answer = client.post("/models/churn/invocations", json=ROWS).json()
            assert answer["role"] == "champion"
    assert {r.role for r in logged_rows(tmp_path)} == {"champion"}


def test_a_slow_champion_does_not_slow_the_canarys_answers(tmp_path: Path) -> None:
    champion = SlowModel(0.1)
    config = gateway_config(
        tmp_path,
        shadow_queue_size=2,
        shadow_batch_rows=2,
        shadow_max_wait_s=0.001,
        shutdown_timeout_s=1,
    )
    with TestClient(create_app(config, canary_source(champion))) as client:
        wait_until(lambda: client.get("/models/churn").json()["canary"] == 2)
        champion.delay_s = 1.0
        latencies = []
        for _ in range(8):
            started = time.perf_counter()
            answer = client.post("/models/churn/invocations", json=ROWS).json()
            latencies.append(time.perf_counter() - started)
            assert answer["predictions"] == [0.7, 0.7]
        status = client.get("/models/churn").json()
        champion.delay_s = 0.0
    # Each champion call takes a second; every canary answer came back long before one.
    assert max(latencies) < 0.5, latencies
    # The bounded queue dropped (and counted) copies instead of holding an answer back.
    assert status["paired_dropped"] >= 1


@given(sizes=st.lists(st.integers(1, 40), max_size=30), max_rows=st.integers(1, 64))
def test_shadow_batches_keep_every_job_in_order_within_the_row_bound(
    sizes: list[int], max_rows: int
) -> None:
    jobs = [
        ShadowJob(f"r{i}", None, Columns({"x": [0.0] * n}, n), None, datetime.now(UTC))
        for i, n in enumerate(sizes)
    ]
    cut = batches(jobs, max_rows)
    assert [job for batch in cut for job in batch] == jobs
    for batch in cut:
        rows = sum(job.columns.n_rows for job in batch)
        assert batch and (rows <= max_rows or len(batch) == 1)
    # Greedy: a batch is only cut where the next job would not have fitted.
    for batch, following in zip(cut, cut[1:], strict=False):
        rows = sum(job.columns.n_rows for job in batch)
        assert rows + following[0].columns.n_rows > max_rows


class UnfitShadow:
    """A shadow version that refuses any payload with a negative `x` and then fails in its
    model call."""

    model_name, version = "churn", 3

    def checked_values(self, columns: Columns) -> None:
        if any(x < 0 for x in columns.values["x"]):
            raise ValueError("x must not be negative")

    def inputs(self, columns: Columns):
        self.checked_values(columns)
        return None, object()

    def answer(self, model_input: object):
        raise RuntimeError("the model call failed")


def test_a_copy_that_does_not_fit_is_counted_failed_once_when_the_rest_fail_too() -> None:
    logged = []
    runner = ShadowRunner(logged.append, queue_size=10, batch_rows=100, max_wait_s=0.01)
    shadow = UnfitShadow()
    runner.start()
    for request_id, x in (("a", 1.0), ("b", -1.0), ("c", 2.0)):
        columns = Columns(values={"x": [x]}, n_rows=1)
        runner.submit(ShadowJob(request_id, None, columns, shadow, datetime.now(UTC)))
    runner.close(5.0)
    stats = runner.stats("churn")
    assert (stats.failed, stats.scored) == (3, 0)
    rows = [row for copies in logged for row in log_rows(copies)]
    assert sorted(row["request_id"] for row in rows) == ["a", "b", "c"]
    errors = {row["request_id"]: row["error"] for row in rows}
    assert "negative" in errors["b"] and "model call failed" in errors["a"]
