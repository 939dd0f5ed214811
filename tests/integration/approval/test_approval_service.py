"""Opening and settling a request, as the promotion DAG's tasks do, against the fake Slack."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from approval.hitl import HITLAnswer
from approval.records import CurrentAliases, Vote
from approval.service import finish_approval, request_approval
from approval.slack import SlackApprovalHook, SlackDeliveryError
from approval.store import DecisionStore
from approval.testing.samples import ALICE, sample_config, sample_request
from approval.testing.slack_fake import FakeSlack

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
SERVICE = "approval_service"


def test_opening_a_request_posts_it_once_to_the_policy_channel(
    store: DecisionStore, slack: SlackApprovalHook, fake_slack: FakeSlack
) -> None:
    request = sample_request()
    posted = request_approval(request, sample_config(), store=store, slack=slack, now=NOW)
    again = request_approval(request, sample_config(), store=store, slack=slack, now=NOW)
    assert again == posted
    (call,) = fake_slack.calls_of("chat.postMessage")
    assert call.payload["channel"] == "#model-approvals"
    shown = json.dumps(call.payload["blocks"], ensure_ascii=False)
    assert "+0.0123 roc_auc (CI +0.0041 … +0.0207)" in shown
    assert request.mlflow_version_url in shown and request.report_url in shown
    assert store.get(request.request_id).message == posted


def test_a_newer_candidate_closes_the_older_message(
    store: DecisionStore, slack: SlackApprovalHook, fake_slack: FakeSlack
) -> None:
    old = request_approval(sample_request(), sample_config(), store=store, slack=slack, now=NOW)
    request_approval(
        sample_request(challenger_version=8), sample_config(), store=store, slack=slack, now=NOW
    )
    old_message = json.dumps(fake_slack.messages[(old.channel, old.ts)])
    assert "superseded by v8" in old_message and '"actions"' not in old_message


def test_slack_down_fails_the_request_and_leaves_it_unanswerable(
    store: DecisionStore, slack: SlackApprovalHook, fake_slack: FakeSlack
) -> None:
    fake_slack.fail_next(10, status=503)
    request = sample_request()
    with pytest.raises(SlackDeliveryError):
        request_approval(request, sample_config(), store=store, slack=slack, now=NOW)
    assert store.get(request.request_id).message is None


def test_no_answer_in_time_expires_the_request_and_slack_is_told(
    store: DecisionStore, slack: SlackApprovalHook, fake_slack: FakeSlack
) -> None:
    request = sample_request()
    posted = request_approval(request, sample_config(), store=store, slack=slack, now=NOW)
    timed_out = HITLAnswer.from_xcom(
        {"chosen_options": ["Reject"], "params_input": {}, "responded_by_user": None}
    )
    outcome = finish_approval(
        request.request_id,
        timed_out,
        store=store,
        slack=slack,
        current=CurrentAliases(5, 7),
        service_user_id=SERVICE,
        now=NOW + timedelta(hours=1),
    )
    assert outcome.status == "expired"
    assert outcome.tags()["approval.status"] == "expired"
    assert "*Expired*" in json.dumps(fake_slack.messages[(posted.channel, posted.ts)])


def test_settling_again_after_the_promotion_returns_the_first_outcome(
    store: DecisionStore, slack: SlackApprovalHook, fake_slack: FakeSlack
) -> None:
    request = sample_request()
    request_approval(request, sample_config(), store=store, slack=slack, now=NOW)
    store.record_vote(
        request.request_id, interaction_id="i1", vote=Vote(ALICE, "alice", "approve", NOW)
    )
    answer = HITLAnswer(
        "Approve", SERVICE, SERVICE, {"request_id": request.request_id, "decided_by": ALICE}
    )

    def settle(current: CurrentAliases):
        return finish_approval(
            request.request_id,
            answer,
            store=store,
            slack=slack,
            current=current,
            service_user_id=SERVICE,
            now=NOW,
        )

    first = settle(CurrentAliases(champion=5, challenger=7))
    # The retried task now sees the champion it moved itself.
    again = settle(CurrentAliases(champion=7, challenger=7))
    assert first.status == again.status == "approved"
    assert again.by == (ALICE,)
    assert len(fake_slack.calls_of("chat.update")) == 1
