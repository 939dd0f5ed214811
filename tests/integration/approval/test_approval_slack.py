"""The Slack hook against the fake Web API: what is posted, and how failures end."""

from __future__ import annotations

import pytest

from approval.messages import pending_message
from approval.records import PostedMessage
from approval.slack import SlackApprovalHook, SlackDeliveryError
from approval.testing.samples import sample_request
from approval.testing.slack_fake import FakeSlack

pytestmark = pytest.mark.integration

MESSAGE = pending_message(sample_request(), quorum=1)


def test_a_message_is_posted_with_its_blocks_and_the_bot_token(
    slack: SlackApprovalHook, fake_slack: FakeSlack
) -> None:
    posted = slack.post_message("#model-approvals", MESSAGE)
    (call,) = fake_slack.calls_of("chat.postMessage")
    assert call.token == "xoxb-test-token"
    assert call.payload["blocks"] == MESSAGE.blocks
    assert call.payload["text"] == MESSAGE.text
    assert fake_slack.messages[(posted.channel, posted.ts)]["channel"] == "#model-approvals"


def test_an_update_replaces_the_posted_message(
    slack: SlackApprovalHook, fake_slack: FakeSlack
) -> None:
    posted = slack.post_message("#model-approvals", MESSAGE)
    slack.update_message(posted, pending_message(sample_request(challenger_version=9), quorum=1))
    (call,) = fake_slack.calls_of("chat.update")
    assert call.payload["ts"] == posted.ts
    assert "v9" in call.payload["text"]


def test_a_rate_limited_call_is_retried_after_the_wait_slack_asks_for(
    slack: SlackApprovalHook, fake_slack: FakeSlack
) -> None:
    fake_slack.fail_next(1, status=429, retry_after=0)
    slack.post_message("#model-approvals", MESSAGE)
    assert len(fake_slack.calls_of("chat.postMessage")) == 2


def test_a_server_error_is_retried_with_backoff(
    slack: SlackApprovalHook, fake_slack: FakeSlack
) -> None:
    fake_slack.fail_next(2, status=503)
    slack.post_message("#model-approvals", MESSAGE)
    assert len(fake_slack.calls_of("chat.postMessage")) == 3


def test_slack_failing_beyond_the_retries_raises_a_clear_error(
    slack: SlackApprovalHook, fake_slack: FakeSlack
) -> None:
    fake_slack.fail_next(10, status=500)
    with pytest.raises(SlackDeliveryError) as raised:
        slack.post_message("#model-approvals", MESSAGE)
    assert len(fake_slack.calls_of("chat.postMessage")) == 3
    message = str(raised.value)
    assert "chat.postMessage to #model-approvals failed with HTTP 500" in message
    assert "not approved" in message


def test_staying_rate_limited_raises_a_clear_error(fake_slack: FakeSlack) -> None:
    hook = SlackApprovalHook(token="xoxb-test-token", base_url=fake_slack.url, max_retries=1)
    fake_slack.fail_next(5, status=429, retry_after=0)
    with pytest.raises(SlackDeliveryError, match="HTTP 429.*rate limiting"):
        hook.update_message(PostedMessage("C1", "1.1"), MESSAGE)


def test_a_wrong_token_says_to_check_the_token(fake_slack: FakeSlack) -> None:
    hook = SlackApprovalHook(token="xoxb-revoked", base_url=fake_slack.url)
    with pytest.raises(SlackDeliveryError, match="invalid_auth.*check the bot token"):
        hook.post_message("#model-approvals", MESSAGE)


def test_unreachable_slack_is_retried_then_reported(unused_port: int) -> None:
    hook = SlackApprovalHook(
        token="xoxb-test-token",
        base_url=f"http://127.0.0.1:{unused_port}/api/",
        max_retries=2,
        backoff_factor=0.01,
    )
    with pytest.raises(SlackDeliveryError, match="unreachable"):
        hook.post_message("#model-approvals", MESSAGE)


def test_building_the_hook_connects_to_nothing() -> None:
    hook = SlackApprovalHook(token="xoxb-test-token", base_url="http://127.0.0.1:9/api/")
    assert "client" not in vars(hook)
