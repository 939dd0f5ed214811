"""The simulated traffic keeps going when the gateway fails a call, as a user's traffic would."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from demo.traffic import Traffic


class Gateway:
    """A stand-in for the gateway's two routes that fails the calls it is told to fail."""

    def __init__(self) -> None:
        self.feedback_answers: list[int] = []  # the status of each coming feedback call; then 200
        self.stored: list[str] = []
        self.call_sizes: list[int] = []  # labels in each stored feedback call
        self.app = FastAPI()

        @self.app.post("/models/{name}/invocations")
        async def invocations(name: str, request: Request) -> dict:
            return {"predictions": [0.5], "request_id": request.headers["X-Request-Id"]}

        @self.app.post("/models/{name}/feedback")
        async def feedback(name: str, request: Request) -> JSONResponse:
            status = self.feedback_answers.pop(0) if self.feedback_answers else 200
            if status == 200:
                body = await request.json()
                self.stored += [label["request_id"] for label in body["labels"]]
                self.call_sizes.append(len(body["labels"]))
            return JSONResponse({"detail": "not now"}, status_code=status)


@pytest.fixture
def gateway() -> Iterator[tuple[Gateway, str]]:
    fake = Gateway()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(fake.app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield fake, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _traffic(url: str, **options) -> Traffic:
    frame = pd.DataFrame({"x": np.arange(20.0)})
    return Traffic(url, "m", frame, np.zeros(20), api_token="t", rows=1, pause_s=0.01, **options)


def _until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_labels_the_gateway_could_not_take_are_sent_again_and_traffic_goes_on(gateway) -> None:
    fake, url = gateway
    fake.feedback_answers = [503, 503]
    with _traffic(url) as traffic:
        _until(lambda: traffic.labeled >= 10)
    assert traffic.refused == 0 and "503" in traffic.last_error
    # Every request's label reached the gateway once it answered: none lost in the failures.
    sent = {f"{traffic._ids}-{i}" for i in range(traffic.sent)}
    assert sent - set(fake.stored) <= {f"{traffic._ids}-{traffic.sent - 1}"}  # the last may wait


def test_labels_the_gateway_refuses_are_counted_and_traffic_goes_on(gateway) -> None:
    fake, url = gateway
    fake.feedback_answers = [422]
    with _traffic(url) as traffic:
        _until(lambda: traffic.labeled >= 10)
    assert traffic.refused >= 1 and "422" in traffic.last_error


def test_a_backlog_of_held_labels_goes_in_bounded_calls_and_none_is_lost(gateway) -> None:
    fake, url = gateway
    with _traffic(url, labels="held", labels_per_call=5) as traffic:
        _until(lambda: traffic.sent >= 30)
        assert fake.stored == []  # held: nothing sent before the release
        traffic.release.set()
        _until(lambda: len(fake.stored) >= 30)
    assert max(fake.call_sizes) <= 5 and traffic.refused == 0
    assert set(fake.stored) >= {f"{traffic._ids}-{i}" for i in range(30)}
    assert len(fake.stored) == len(set(fake.stored))  # each label once
