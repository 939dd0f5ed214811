"""The prediction log under a real uvicorn: every answer and shadow score once, flushed on SIGTERM,
labels joined by request id; on SQLite and, when configured, PostgreSQL."""

from __future__ import annotations

import signal
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from gateway.predlog import arm_windows, create_engine, log_tables
from tests.integration.gateway.support import AUTH, register, row

pytestmark = pytest.mark.integration

REQUESTS = 200


@pytest.fixture(scope="module")
def versions(store) -> dict[str, int]:
    return register(
        store,
        "gw_logged",
        {"champion": "logistic", "canary": "logistic_strong_penalty", "shadow": "lightgbm"},
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def log_database(request: pytest.FixtureRequest, tmp_path) -> tuple[str, str | None]:
    """(URL, schema) of the prediction log."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'predictions.db'}", None
    return request.getfixturevalue("postgres_log_schema")


def test_sigterm_flushes_every_answer_and_shadow_score_once_and_labels_join(
    versions: dict[str, int], start_gateway, log_database: tuple[str, str | None]
) -> None:
    log_url, db_schema = log_database
    schema_flags = ("--log-schema", db_schema) if db_schema else ()
    # A batch larger than the traffic and a long interval: nothing is written before SIGTERM.
    gateway = start_gateway(
        "--model",
        "gw_logged:0.3",
        "--log-url",
        log_url,
        "--log-batch-size",
        "100000",
        "--log-flush-interval",
        "600",
        *schema_flags,
    )
    with gateway.client() as client:
        answers = [
            client.post("/models/gw_logged/invocations", json=row(i)).json()
            for i in range(REQUESTS)
        ]
        for answer in answers[:50]:
            response = client.post(
                "/models/gw_logged/feedback",
                json={"request_id": answer["request_id"], "label": 1},
                headers=AUTH,
            )
            assert response.status_code == 200
    engine = create_engine(log_url)
    tables = log_tables(db_schema)
    with engine.begin() as connection:  # the bulk path: a job loading labels into the table
        connection.execute(
            tables.labels.insert(),
            [
                {
                    "model_name": "gw_logged",
                    "request_id": a["request_id"],
                    "row_index": 0,
                    "label": 0,
                    "labeled_at": datetime.now(UTC),
                }
                for a in answers[50:100]
            ],
        )
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says why it ended.
    assert gateway.terminate() == -signal.SIGTERM

    assert all(a["version"] != versions["shadow"] for a in answers)
    with engine.connect() as connection:
        logged = connection.execute(
            sa.select(tables.predictions.c.request_id, tables.predictions.c.role)
        ).all()
    # Every answer, its shadow score, and the champion's paired score of each canary answer.
    expected = (
        {(a["request_id"], a["role"]) for a in answers}
        | {(a["request_id"], "shadow") for a in answers}
        | {(a["request_id"], "champion_paired") for a in answers if a["role"] == "canary"}
    )
    assert sorted(logged) == sorted(expected)  # each once: no loss, no duplicate

    by_role: dict[str, int] = {}
    for arm in arm_windows(engine, tables, "gw_logged"):
        by_role[arm.role] = by_role.get(arm.role, 0) + arm.labeled
    assert by_role["shadow"] == 100
    assert by_role["champion"] + by_role["canary"] == 100
    assert by_role.get("champion_paired", 0) == by_role["canary"]
    engine.dispose()
