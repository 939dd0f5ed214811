"""Verify and read MLflow's model-registry webhooks (Standard Webhooks style HMAC-SHA256)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
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
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise WebhookError(f"{TIMESTAMP_HEADER} is not a Unix timestamp: {timestamp!r}") from None
    if abs(now - sent_at) > tolerance_s:
        raise WebhookError(f"{TIMESTAMP_HEADER} is more than {tolerance_s} s from now")
    expected = sign(secret, delivery_id, timestamp, body)
    # A header may carry several space-separated signatures (secret rotation); one match is enough.
    if not any(hmac.compare_digest(expected, given) for given in signature.split()):
        raise WebhookError("signature does not match the configured webhook secret")


def parse_event(body: bytes) -> WebhookEvent:
    """Read entity, action and model name from a delivery body."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WebhookError(f"body is not JSON: {error}") from None
    if not isinstance(payload, dict):
        raise WebhookError("body is not a JSON object")
    data = payload.get("data")
    name = data.get("name") if isinstance(data, dict) else None
    return WebhookEvent(
        entity=str(payload.get("entity", "")),
        action=str(payload.get("action", "")),
        model_name=name if isinstance(name, str) else None,
    )
