"""The Slack edge: posts and updates approval messages through slack_sdk's WebClient."""

from __future__ import annotations

from functools import cached_property
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    RetryHandler,
)
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator

from approval.messages import Message
from approval.records import PostedMessage

DEFAULT_BASE_URL = WebClient.BASE_URL


class SlackDeliveryError(RuntimeError):
    """Slack did not take a message after every retry; nothing was approved because of it."""


class SlackApprovalHook:
    """Owns the WebClient of the approval flow; nothing connects until the first call.

    Rate limits (429, honouring Retry-After), dropped connections and 500/503 answers are retried
    by slack_sdk's retry handlers with exponential backoff; after `max_retries` a call raises
    SlackDeliveryError naming the method, the channel and what to check.
    """

    def __init__(
        self,
        *,
        token: str,
        base_url: str = DEFAULT_BASE_URL,
        max_retries: int = 3,
        backoff_factor: float = 0.5,
        timeout: int = 10,
    ) -> None:
        self.token = token
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.max_retries = max_retries
        self.backoff_factor = backoff_factor
        self.timeout = timeout

    @cached_property
    def retry_handlers(self) -> list[RetryHandler]:
        """The retry handlers the client uses, one per kind of transient failure."""
        backoff = BackoffRetryIntervalCalculator(backoff_factor=self.backoff_factor)
        return [
            RateLimitErrorRetryHandler(max_retry_count=self.max_retries),
            ConnectionErrorRetryHandler(
                max_retry_count=self.max_retries, interval_calculator=backoff
            ),
            ServerErrorRetryHandler(max_retry_count=self.max_retries, interval_calculator=backoff),
        ]

    @cached_property
    def client(self) -> WebClient:
        """The WebClient, built on first use."""
        return WebClient(
            token=self.token,
            base_url=self.base_url,
            timeout=self.timeout,
            retry_handlers=self.retry_handlers,
        )

    def post_message(self, channel: str, message: Message) -> PostedMessage:
        """Post `message` to `channel` (chat.postMessage)."""
        response = self._call("chat.postMessage", channel, text=message.text, blocks=message.blocks)
        return PostedMessage(channel=str(response["channel"]), ts=str(response["ts"]))

    def update_message(self, posted: PostedMessage, message: Message) -> None:
        """Replace a posted message's text and blocks (chat.update)."""
        self._call(
            "chat.update", posted.channel, ts=posted.ts, text=message.text, blocks=message.blocks
        )

    def lookup_user_id(self, email: str) -> str | None:
        """The Slack user id of the person with this email (users.lookupByEmail, which needs the
        `users:read.email` scope), or None when Slack knows nobody by it."""
        try:
            response = self._call(
                "users.lookupByEmail", "", http_verb="GET", params={"email": email}
            )
        except SlackDeliveryError as error:
            if isinstance(error.__cause__, SlackApiError) and (
                error.__cause__.response.get("error") == "users_not_found"
            ):
                return None
            raise
        user = response.get("user")
        return str(user["id"]) if isinstance(user, dict) and user.get("id") else None

    def _call(
        self,
        method: str,
        channel: str,
        *,
        http_verb: str = "POST",
        params: dict | None = None,
        **kwargs: object,
    ) -> dict:
        where = channel or "Slack"
        try:
            if http_verb == "GET":
                response = self.client.api_call(method, http_verb="GET", params=params)
            else:
                response = self.client.api_call(method, json={"channel": channel, **kwargs})
            response.validate()
        except SlackApiError as error:
            status = error.response.status_code
            code = error.response.get("error") if isinstance(error.response.data, dict) else None
            raise SlackDeliveryError(
                f"Slack {method} to {where} failed with HTTP {status}"
                + (f" ({code})" if code else "")
                + f" after {self.max_retries} retries; "
                + _hint(status, code)
            ) from error
        except (SlackClientError, URLError, OSError) as error:
            raise SlackDeliveryError(
                f"Slack {method} to {where} failed: {error}; after {self.max_retries} retries "
                f"{self.base_url} is still unreachable; check the network or SLACK_API_URL"
            ) from error
        return response.data  # type: ignore[return-value]


def _hint(status: int, code: str | None) -> str:
    if status == 429:
        return "Slack is rate limiting this app; the promotion was not approved, rerun it later"
    if code in ("invalid_auth", "not_authed", "token_revoked", "account_inactive"):
        return "check the bot token"
    if code == "missing_scope":
        return "give the bot the scope Slack names (users:read.email to map Airflow users)"
    if code in ("channel_not_found", "not_in_channel"):
        return "invite the bot to the channel or fix the policy's approval channel"
    if status >= 500:
        return "Slack is failing; the promotion was not approved, rerun it later"
    return "see the Slack error code above"
