"""Verify and read MLflow's model-registry webhooks (Standard Webhooks style HMAC-SHA256)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
SIGNATURE_VERSION = "v1"

# Events after which a served model's aliases or canary share may have changed.
RELEVANT_EVENTS = frozenset(
    {
        ("model_version_alias", "created"),
        ("model_version_alias", "deleted"),
        ("model_version_tag", "set"),
        ("model_version_tag", "deleted"),
    }
)


class WebhookError(ValueError):
    """A webhook delivery that is refused; the message says why."""


@dataclass(frozen=True)
class WebhookEvent:
    """The part of a delivery the gateway acts on."""

    entity: str
    action: str
    model_name: str | None

    @property
    def relevant(self) -> bool:
        return (self.entity, self.action) in RELEVANT_EVENTS


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The `v1,<base64>` signature MLflow sends: HMAC-SHA256 of `delivery_id.timestamp.body`."""
    content = delivery_id.encode() + b"." + timestamp.encode() + b"." + body
    digest = hmac.new(secret.encode(), content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def verify(
    secret: str,
    *,
    delivery_id: str | None,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
    tolerance_s: int,
) -> None:
    """Raise WebhookError unless the delivery is signed with `secret` and recent.

    The timestamp is part of the signed content, so checking its age stops a captured delivery
    from being replayed later.
    """
    if not (delivery_id and timestamp and signature):
        raise WebhookError(
            f"missing {DELIVERY_ID_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header"
        )
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise WebhookError(f"{TIMESTAMP_HEADER} is not a Unix timestamp")
    sent_at = int(timestamp)
    if abs(now - sent_at) > tolerance_s:
        raise WebhookError(f"{TIMESTAMP_HEADER} is more than {tolerance_s} s from now")
    if len(delivery_id) > 128:
        raise WebhookError(f"{DELIVERY_ID_HEADER} is longer than 128 characters")
    expected_bytes = sign(secret, delivery_id, timestamp, body).encode()
    # A header may carry several space-separated signatures (secret rotation); one match is enough.
    given = [part.encode("utf-8", "replace") for part in signature.split()]
    if not any(hmac.compare_digest(expected_bytes, part) for part in given):
        raise WebhookError("signature does not match the configured webhook secret")


class DeliveryLog:
    """Delivery ids received within the replay window, so a captured delivery replayed while its
    timestamp is still accepted is refused; older ids are forgotten, their timestamps are too old."""

    def __init__(self, window_s: float, capacity: int = 100_000) -> None:
        self._window_s = window_s
        self._capacity = capacity
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, delivery_id: str, now: float) -> bool:
        """Note a delivery id; False when it was received before (a replay or a resend)."""
        with self._lock:
            while self._seen and (
                next(iter(self._seen.values())) < now - 2 * self._window_s
                or len(self._seen) >= self._capacity
            ):
                self._seen.popitem(last=False)
            if delivery_id in self._seen:
                return False
            self._seen[delivery_id] = now
            return True


def parse_event(body: bytes) -> WebhookEvent:
    """Read entity, action and model name from a delivery body."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise WebhookError("body is not JSON") from None
    if not isinstance(payload, dict):
        raise WebhookError("body is not a JSON object")
    data = payload.get("data")
    name = data.get("name") if isinstance(data, dict) else None
    return WebhookEvent(
        entity=str(payload.get("entity", "")),
        action=str(payload.get("action", "")),
        model_name=name if isinstance(name, str) else None,
    )
