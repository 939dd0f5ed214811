"""Slack interactivity requests as Slack sends them, signed with Slack's v0 algorithm."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import urlencode

from approval.messages import APPROVE_ACTION_ID, REJECT_ACTION_ID
from approval.records import PostedMessage

# A made-up signing secret for tests and the demo; a real one comes from the Slack app's settings.
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def sign(signing_secret: str, timestamp: int, body: bytes) -> str:
    """Slack's `X-Slack-Signature`: v0=HMAC-SHA256(secret, "v0:{timestamp}:{body}")."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(signing_secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers Slack sends with an interactivity request."""
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": sign(signing_secret, timestamp, body),
    }


def button_click(
    *,
    user_id: str,
    value: str,
    approve: bool = True,
    user_name: str = "",
    message: PostedMessage | None = None,
    trigger_id: str = "1234567890.0987654321.abcdef",
) -> bytes:
    """The form-encoded body of a `block_actions` request for an Approve or Reject click."""
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name or user_id.lower(), "team_id": "TFAKE"},
        "team": {"id": "TFAKE", "domain": "example"},
        "api_app_id": "AFAKE",
        "trigger_id": trigger_id,
        "container": {
            "type": "message",
            "message_ts": message.ts if message else "",
            "channel_id": message.channel if message else "",
        },
        "channel": {"id": message.channel if message else ""},
        "actions": [
            {
                "type": "button",
                "action_id": APPROVE_ACTION_ID if approve else REJECT_ACTION_ID,
                "block_id": "approval",
                "value": value,
                "action_ts": "1700000000.000001",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()
