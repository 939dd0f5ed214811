"""`--workers 2`: two processes answer, take labels of each other's answers, follow one refresh
together and write every answer on SIGTERM."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

import registry
from gateway.predlog import create_engine, log_tables
from tests.integration.gateway.support import AUTH, register, row, wait_until

pytestmark = pytest.mark.integration

MODEL = "gw_workers"
REQUESTS = 40


def test_two_workers_share_labels_a_refresh_and_the_log(store, start_gateway, tmp_path) -> None:
    versions = register(store, MODEL, {"champion": "logistic", "_next": "logistic_strong_penalty"})
    log_url = f"sqlite:///{tmp_path / 'predictions.db'}"
    gateway = start_gateway(
        "--model",
        MODEL,
        "--workers",
        "2",
        "--log-url",
        log_url,
        "--log-flush-interval",
        "0.5",
        "--refresh-interval",
        "600",
    )
    # Each request on a connection of its own: the kernel hands it to either worker.
    workers = {httpx.get(f"{gateway.url}/health", timeout=10).json()["worker"] for _ in range(60)}
    assert len(workers) == 2

    # A label sent right after its answer often reaches the worker that did not answer, before
    # that one has written the row: it is still taken.
    answers = []
    for i in range(REQUESTS):
        answer = httpx.post(f"{gateway.url}/models/{MODEL}/invocations", json=row(i), timeout=10)
        assert answer.status_code == 200, answer.text
        label = httpx.post(
            f"{gateway.url}/models/{MODEL}/feedback",
            json={"request_id": answer.json()["request_id"], "label": i % 2},
            headers=AUTH,
            timeout=30,
        )
        assert label.status_code == 200, label.text
        answers.append(answer.json())

    # One admin refresh reaches one worker; both follow the move (the poll is 10 minutes away).
    registry.move_alias(
        MODEL, "champion", versions["_next"], kind="promote", actor="test", reason="workers"
    )
    refreshed = httpx.post(f"{gateway.url}/admin/refresh", params={"model": MODEL}, headers=AUTH)
    assert refreshed.status_code == 200
    on_next: set[int] = set()

    def both_switched() -> bool:
        status = httpx.get(f"{gateway.url}/models/{MODEL}", timeout=10).json()
        if status["champion"] == versions["_next"]:
            on_next.add(status["worker"])
        return on_next == workers

    wait_until(both_switched, 20, "both workers on the new champion")

    gateway.terminate()
    engine = create_engine(log_url)
    tables = log_tables()
    with engine.connect() as connection:
        logged = connection.execute(sa.select(tables.predictions.c.request_id)).scalars().all()
        labeled = connection.execute(sa.select(sa.func.count()).select_from(tables.labels))
        labeled = labeled.scalar_one()
    engine.dispose()
    assert sorted(logged) == sorted(a["request_id"] for a in answers)
    assert labeled == REQUESTS
