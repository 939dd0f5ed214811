from __future__ import annotations

import json

import pytest
from mlflow.webhooks.delivery import _generate_hmac_signature

from gateway.webhook import WebhookError, parse_event, verify

SECRET = "s3cret"
BODY = json.dumps(
    {
        "entity": "model_version_alias",
        "action": "created",
        "timestamp": "2026-01-01T00:00:00+00:00",
        "data": {"name": "churn", "alias": "champion", "version": "3"},
    }
)


def _verify(signature: str, body: str = BODY, timestamp: str = "1700000000", now: float = 1.7e9):
    verify(
        SECRET,
        delivery_id="d-1",
        timestamp=timestamp,
        signature=signature,
        body=body.encode(),
        now=now,
        tolerance_s=300,
    )


def test_a_delivery_signed_the_way_mlflow_signs_is_accepted() -> None:
    _verify(_generate_hmac_signature(SECRET, "d-1", "1700000000", BODY))


def test_a_delivery_signed_with_another_secret_is_refused() -> None:
    with pytest.raises(WebhookError, match="does not match"):
        _verify(_generate_hmac_signature("other", "d-1", "1700000000", BODY))


def test_a_changed_body_no_longer_matches_its_signature() -> None:
    signature = _generate_hmac_signature(SECRET, "d-1", "1700000000", BODY)
    with pytest.raises(WebhookError, match="does not match"):
        _verify(signature, body=BODY.replace('"3"', '"4"'))


def test_an_old_delivery_is_refused_even_when_signed() -> None:
    signature = _generate_hmac_signature(SECRET, "d-1", "1700000000", BODY)
    with pytest.raises(WebhookError, match="more than 300 s"):
        _verify(signature, now=1_700_000_000 + 301)


def test_one_matching_signature_among_several_is_enough() -> None:
    good = _generate_hmac_signature(SECRET, "d-1", "1700000000", BODY)
    _verify(f"v1,bm90LWl0 {good}")


def test_missing_headers_are_named() -> None:
    with pytest.raises(WebhookError, match="missing"):
        verify(
            SECRET,
            delivery_id=None,
            timestamp=None,
            signature=None,
            body=b"{}",
            now=0,
            tolerance_s=300,
        )


def test_event_names_the_model_and_whether_it_matters() -> None:
    event = parse_event(BODY.encode())
    assert (event.model_name, event.relevant) == ("churn", True)
    other = parse_event(json.dumps({"entity": "prompt", "action": "created", "data": {}}).encode())
    assert not other.relevant
