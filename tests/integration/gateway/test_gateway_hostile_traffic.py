"""Hostile traffic at a gateway under real uvicorn: huge uploads are cut off while they are read and
do not stall other clients; labels need the token and an answered request; a file of tokens works."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.hostile import hostile
from tests.integration.gateway.support import AUTH, register, row

pytestmark = pytest.mark.integration

LARGE_BYTES = 50 * 1024 * 1024


@pytest.fixture(scope="module")
def served(store) -> str:
    register(store, "gw_hostile", {"champion": "logistic"})
    return "gw_hostile"


def _stream(total: int, chunk: int = 256 * 1024):
    sent = 0
    while sent < total:
        yield b" " * chunk
        sent += chunk


def test_four_huge_uploads_are_cut_off_and_do_not_stall_small_requests(
    served: str, start_gateway
) -> None:
    gateway = start_gateway("--model", served)
    path = f"/models/{served}/invocations"
    statuses: list[int] = []

    def upload(declared: bool) -> None:
        headers = {"Content-Type": "application/json"}
        body: object = _stream(LARGE_BYTES)
        if declared:
            body = b" " * LARGE_BYTES
        try:
            with httpx.Client(base_url=gateway.url, timeout=60) as client:
                answer = client.post(path, content=body, headers=headers)
                statuses.append(hostile("50 MB upload", answer).status_code)
        except httpx.TransportError:
            # The server may close the connection on the rest of the upload after its 413.
            statuses.append(413)

    uploads = [threading.Thread(target=upload, args=(i % 2 == 0,)) for i in range(4)]
    latencies = []
    with gateway.client() as client:
        client.post(path, json=row(0)).raise_for_status()  # warm connection
        for thread in uploads:
            thread.start()
        while any(thread.is_alive() for thread in uploads) or len(latencies) < 20:
            started = time.perf_counter()
            client.post(path, json=row(len(latencies))).raise_for_status()
            latencies.append(time.perf_counter() - started)
    for thread in uploads:
        thread.join(60)
    assert statuses == [413] * 4
    assert max(latencies) < 1.0, f"a small request waited {max(latencies):.2f} s"


def test_labels_need_a_token_from_the_secrets_file_and_an_answered_request(
    served: str, start_gateway, tmp_path: Path
) -> None:
    secrets = tmp_path / "tokens"
    secrets.write_text("# rotated monthly\nold-token-still-accepted-1\nnew-token-from-the-file-2\n")
    gateway = start_gateway(
        "--model", served, env={"GATEWAY_API_TOKENS": "", "GATEWAY_API_TOKENS_FILE": str(secrets)}
    )
    with gateway.client() as client:
        request_id = client.post(f"/models/{served}/invocations", json=row(1)).json()["request_id"]
        label = {"request_id": request_id, "label": 1}
        feedback = f"/models/{served}/feedback"
        assert (
            hostile(
                "label, old test token", client.post(feedback, json=label, headers=AUTH)
            ).status_code
            == 401
        )
        made_up = hostile(
            "label for an unissued id",
            client.post(
                feedback,
                json={"request_id": "never-answered", "label": 1},
                headers={"Authorization": "Bearer new-token-from-the-file-2"},
            ),
        )
        assert made_up.status_code == 422
        for token in ("old-token-still-accepted-1", "new-token-from-the-file-2"):
            answer = client.post(feedback, json=label, headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200
        assert answer.json() == {"stored": 0, "unchanged": 1, "corrected": 0}


def test_a_row_postgresql_refuses_is_dropped_and_the_rest_of_its_batch_written(
    postgres_log_schema: tuple[str, str],
) -> None:
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from gateway.batching import LogEntry
    from gateway.predlog import PredictionLogWriter, create_engine, log_tables

    url, schema = postgres_log_schema
    engine, tables = create_engine(url), log_tables(schema)
    writer = PredictionLogWriter(
        engine, tables, batch_size=100, flush_interval_s=0.05, max_pending_rows=1000
    )
    writer.start()
    for request_id, routing_key in (("ok-1", "user-1"), ("bad", "k" * 300), ("ok-2", None)):
        writer.submit(
            LogEntry(
                request_id=request_id,
                model_name="gw_hostile",
                version=1,
                role="champion",
                routing_key=routing_key,
                features=None,
                scores=None,
                latency_ms=0.0,
                at=datetime.now(UTC),
                error="refused upstream",
            )
        )
    writer.close()
    with engine.connect() as connection:
        written = connection.execute(sa.select(tables.predictions.c.request_id)).scalars().all()
    assert sorted(written) == ["ok-1", "ok-2"]
    assert writer.rows_dropped == 1
