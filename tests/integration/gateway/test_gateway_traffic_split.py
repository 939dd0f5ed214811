"""The canary split under real traffic: 10,000 requests through uvicorn."""

from __future__ import annotations

from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.gateway.support import register, row

pytestmark = pytest.mark.integration

CANARY_SHARE = 0.25
REQUESTS = 10_000
STICKY_KEYS = 300
REPEATS = 1
CONNECTIONS = 4


@pytest.fixture(scope="module")
def traffic(store, start_gateway) -> dict:
    """Answers to 10,000 requests with distinct keys, then repeated requests of some keys."""
    versions = register(
        store,
        "gw_split",
        {"champion": "logistic", "canary": "logistic_strong_penalty"},
    )
    gateway = start_gateway("--model", f"gw_split:{CANARY_SHARE}", "--refresh-interval", "60")
    payload = row(1)
    keys = [f"user-{i}" for i in range(REQUESTS)] + [
        f"user-{i % STICKY_KEYS}" for i in range(STICKY_KEYS * REPEATS)
    ]

    def send(indices: range) -> list[tuple[int, int, dict | None]]:
        with gateway.client() as client:
            results = []
            for i in indices:
                response = client.post(
                    "/models/gw_split/invocations",
                    json=payload,
                    headers={"X-Routing-Key": keys[i]},
                )
                body = response.json() if response.status_code == 200 else None
                results.append((i, response.status_code, body))
            return results

    # A few connections at once keep the server busy while a client waits: same requests, less
    # wall time.
    with ThreadPoolExecutor(CONNECTIONS) as pool:
        parts = pool.map(send, [range(c, len(keys), CONNECTIONS) for c in range(CONNECTIONS)])
        results = [result for part in parts for result in part]
    statuses = Counter(status for _, status, _ in results)
    answers = [body for i, _, body in results if body is not None and i < REQUESTS]
    sticky: dict[str, set[int]] = defaultdict(set)
    for i, _, body in results:
        if body is not None and (i < STICKY_KEYS or i >= REQUESTS):
            sticky[keys[i]].add(body["version"])
    return {"versions": versions, "answers": answers, "statuses": statuses, "sticky": sticky}


def test_every_request_is_answered(traffic: dict) -> None:
    assert traffic["statuses"] == {200: REQUESTS + STICKY_KEYS * REPEATS}


def test_the_canary_answers_its_share_within_two_points(traffic: dict) -> None:
    assert {(a["role"], a["version"]) for a in traffic["answers"]} == {
        ("champion", traffic["versions"]["champion"]),
        ("canary", traffic["versions"]["canary"]),
    }
    canary = traffic["versions"]["canary"]
    share = sum(a["version"] == canary for a in traffic["answers"]) / len(traffic["answers"])
    assert abs(share - CANARY_SHARE) <= 0.02, f"canary answered {share:.3f}"


def test_a_sticky_key_always_gets_the_same_version(traffic: dict) -> None:
    assert len(traffic["sticky"]) == STICKY_KEYS
    assert all(len(versions) == 1 for versions in traffic["sticky"].values())
