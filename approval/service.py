"""The two steps the promotion DAG calls: open a request in Slack, and settle it afterwards.

Both are safe to rerun: a retried task finds its request, its message and its outcome stored
and does not post, decide or tag a second time.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from approval.config import ApprovalConfig
from approval.decisions import resolve_outcome
from approval.hitl import HITLAnswer
from approval.messages import Message, closed_message, outcome_message, pending_message
from approval.records import ApprovalRequest, CurrentAliases, Outcome, PostedMessage
from approval.slack import SlackApprovalHook, SlackDeliveryError
from approval.store import DecisionStore

log = logging.getLogger(__name__)


def request_approval(
    request: ApprovalRequest,
    config: ApprovalConfig,
    *,
    store: DecisionStore,
    slack: SlackApprovalHook,
    now: datetime,
) -> PostedMessage:
    """Map the run's triggers to Slack users, store the request, close older pending requests of
    the model, post the Slack message.

    Raises SlackDeliveryError when Slack does not take the message (or answer a user lookup)
    after its retries; the request then stays unposted and nothing can approve it, so the
    promotion fails closed.
    """
    if config.separation_of_duties and store.get(request.request_id) is None:
        request = identify_requesters(request, config, slack)
    store.open(request, config, now=now)
    stored = store.get(request.request_id)
    assert stored is not None
    if stored.message is not None:
        return stored.message
    for older in store.supersede_pending(request.model, keep=request.request_id, now=now):
        if older.message is not None:
            reason = f"superseded by v{request.challenger_version}; this request can no longer be answered"
            _update_quietly(slack, older.message, closed_message(older.request, reason))
    message = pending_message(
        request, quorum=stored.config.quorum, expires_at=stored.created_at + stored.config.timeout
    )
    posted = slack.post_message(stored.config.channel, message)
    store.set_message(request.request_id, posted)
    return posted


def identify_requesters(
    request: ApprovalRequest, config: ApprovalConfig, slack: SlackApprovalHook
) -> ApprovalRequest:
    """The request with the Slack user ids of its Airflow triggers (`requester_ids`) and those
    with none (`unmapped_requesters`): by the policy's mapping, else by email through Slack."""
    ids: list[str] = []
    unmapped: list[str] = []
    for user in request.requested_by:
        known = config.slack_identity(user)
        if known is not None and "@" in known:
            known = slack.lookup_user_id(known)
        if known is None:
            unmapped.append(user)
        else:
            ids.append(known)
    return replace(
        request,
        requester_ids=tuple(dict.fromkeys(ids)),
        unmapped_requesters=tuple(dict.fromkeys(unmapped)),
    )


def finish_approval(
    request_id: str,
    answer: HITLAnswer,
    *,
    store: DecisionStore,
    slack: SlackApprovalHook,
    current: CurrentAliases,
    service_user_id: str,
    now: datetime,
) -> Outcome:
    """Decide the request's outcome from the HITL answer, record it once and tell Slack.

    `current` are the aliases read just before this call; only an `approved` outcome may move
    `champion`. A rerun returns the outcome recorded the first time, so a champion that this
    very promotion moved does not make its own approval look stale.
    """
    stored = store.get(request_id)
    if stored is None:
        raise LookupError(f"no approval request {request_id}; run request_approval first")
    if stored.outcome is not None:
        return stored.outcome
    outcome = resolve_outcome(
        config=stored.config,
        request=stored.request,
        answer=answer,
        recorded_status=stored.status,
        votes=stored.votes,
        current=current,
        service_user_id=service_user_id,
        now=now,
    )
    if not store.record_outcome(request_id, outcome):
        recorded = store.get(request_id)
        assert recorded is not None and recorded.outcome is not None
        return recorded.outcome
    if stored.message is not None:
        _update_quietly(slack, stored.message, outcome_message(stored.request, outcome))
    return outcome


def _update_quietly(slack: SlackApprovalHook, posted: PostedMessage, message: Message) -> None:
    # The decision is already recorded; a Slack outage must not undo or block it.
    try:
        slack.update_message(posted, message)
    except SlackDeliveryError as error:
        log.warning("could not update Slack message %s in %s: %s", posted.ts, posted.channel, error)
