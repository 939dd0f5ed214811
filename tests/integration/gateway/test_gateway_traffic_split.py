"""The canary split under real traffic: 10,000 requests through uvicorn."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from tests.integration.gateway.support import register, row

pytestmark = pytest.mark.integration

CANARY_SHARE = 0.25
REQUESTS = 10_000
STICKY_KEYS = 300
REPEATS = 1


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
    answers, statuses = [], Counter()
    sticky: dict[str, set[int]] = defaultdict(set)
    with gateway.client() as client:
        for i in range(REQUESTS + STICKY_KEYS * REPEATS):
            key = f"user-{i if i < REQUESTS else i % STICKY_KEYS}"
            response = client.post(
                "/models/gw_split/invocations", json=payload, headers={"X-Routing-Key": key}
            )
            statuses[response.status_code] += 1
            if response.status_code == 200:
                answer = response.json()
                if i < REQUESTS:
                    answers.append(answer)
                if i % STICKY_KEYS == i or i >= REQUESTS:
                    sticky[key].add(answer["version"])
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
