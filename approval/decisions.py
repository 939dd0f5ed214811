"""Pure approval decisions: who may vote, when a quorum is reached, when an approval is void.

Plain data in, a verdict with its reason out; the clock and the registry are read by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from approval import hitl
from approval.config import ApprovalConfig
from approval.records import (
    ApprovalRequest,
    Choice,
    CurrentAliases,
    Evidence,
    Outcome,
    OutcomeStatus,
    RequestStatus,
    Vote,
    Voter,
)
from approval.reference import ButtonRef

RefusalKind = Literal[
    "wrong_button",
    "closed",
    "expired",
    "stale",
    "not_approver",
    "own_run",
    "unmapped_requester",
    "already_voted",
]


@dataclass(frozen=True)
class Refusal:
    """Why a click is not counted; nothing is recorded for it."""

    kind: RefusalKind
    reason: str


@dataclass(frozen=True)
class Tally:
    """Where a request stands after its recorded votes."""

    status: Literal["pending", "approved", "rejected"]
    approvals: tuple[str, ...]
    rejections: tuple[str, ...]
    needed: int


def _version(version: int | None) -> str:
    return "none" if version is None else f"v{version}"


def stale_reason(evidence: Evidence, current: CurrentAliases) -> str | None:
    """Why an approval of `evidence` no longer holds for the registry as it is now, or None.

    The evaluation compared one challenger against one champion. If `champion` moved since, or
    `challenger` now names a newer version (registry versions only grow), the numbers the
    approver saw are not the ones a promotion would act on. A cleared `challenger` alias is not
    staleness: the DAG may evaluate an explicitly requested version.
    """
    if current.champion != evidence.champion_version:
        return (
            f"champion moved from {_version(evidence.champion_version)} to "
            f"{_version(current.champion)} since the evaluation"
        )
    if current.challenger is not None and current.challenger > evidence.challenger_version:
        return (
            f"a newer challenger v{current.challenger} arrived after "
            f"v{evidence.challenger_version} was evaluated"
        )
    return None


def check_reference(request: ApprovalRequest, ref: ButtonRef) -> Refusal | None:
    """Refuse a button whose model or version is not the stored request's."""
    if ref.model != request.model or ref.version != request.challenger_version:
        return Refusal(
            "wrong_button",
            f"the button names {ref.model} v{ref.version} but request {request.request_id} is "
            f"for {request.model} v{request.challenger_version}",
        )
    return None


def check_vote(
    config: ApprovalConfig,
    request: ApprovalRequest,
    *,
    status: RequestStatus,
    voter: Voter,
    choice: Choice,
    votes: Sequence[Vote],
    expires_at: datetime,
    now: datetime,
) -> Refusal | None:
    """Whether `voter` may cast `choice` at `now` on a request in `status` with `votes` already
    recorded. Past the policy's deadline nothing counts, whatever Airflow has done so far (fail
    closed). Separation of duties compares Slack user ids: those the run's triggers were mapped
    to when the request was opened; a trigger with no Slack identity leaves nobody able to approve.
    """
    if status == "superseded":
        return Refusal("closed", f"a newer candidate of {request.model} superseded this request")
    if status != "pending":
        return Refusal("closed", f"this request is already {status}")
    if now > expires_at:
        return Refusal(
            "expired",
            f"the request expired at {expires_at.isoformat(timespec='seconds')} (the policy's "
            f"timeout of {config.timeout}); it settles as rejected",
        )
    if voter.user_id not in config.approvers:
        return Refusal("not_approver", f"{voter.user_id} is not an approver of {request.model}")
    if any(vote.user_id == voter.user_id for vote in votes):
        return Refusal("already_voted", f"{voter.user_id} has already answered this request")
    if choice == "approve" and config.separation_of_duties:
        if voter.user_id in request.requester_ids:
            return Refusal(
                "own_run",
                f"{voter.user_id} triggered this run and cannot approve it (separation of duties)",
            )
        if request.unmapped_requesters:
            return Refusal(
                "unmapped_requester",
                f"{', '.join(request.unmapped_requesters)} triggered this run but has no Slack "
                "identity (approval.identities or approval.identity_email_domain in the policy), "
                "so separation of duties cannot be checked and nobody can approve; reject, or "
                "map the user and rerun",
            )
    return None


def tally(config: ApprovalConfig, votes: Sequence[Vote]) -> Tally:
    """Any reject rejects; `quorum` distinct listed approvers approving approves."""
    counted = [vote for vote in votes if vote.user_id in config.approvers]
    approvals = tuple(dict.fromkeys(v.user_id for v in counted if v.choice == "approve"))
    rejections = tuple(dict.fromkeys(v.user_id for v in counted if v.choice == "reject"))
    if rejections:
        status: Literal["pending", "approved", "rejected"] = "rejected"
    elif len(approvals) >= config.quorum:
        status = "approved"
    else:
        status = "pending"
    return Tally(status, approvals, rejections, config.quorum)


def resolve_outcome(
    *,
    config: ApprovalConfig,
    request: ApprovalRequest,
    answer: hitl.HITLAnswer,
    recorded_status: RequestStatus,
    votes: Sequence[Vote],
    current: CurrentAliases,
    service_user_id: str,
    now: datetime,
) -> Outcome:
    """The final verdict on a request once its Airflow task has resumed.

    An "Approve" from the approval service's own Airflow user only counts when the decision
    store agrees that the quorum approved this very request. An "Approve" given in the Airflow
    UI counts as one approval, so it cannot satisfy a quorum above one or the separation of
    duties. Any approval is void when the evidence went stale. Everything else rejects.
    """

    def outcome(status: OutcomeStatus, by: Sequence[str], reason: str) -> Outcome:
        return Outcome(request.request_id, status, tuple(by), now, reason, tuple(votes))

    decided_by = answer.params_input.get(hitl.PARAM_DECIDED_BY, "")
    answered_by = [name for name in decided_by.split(",") if name] or [
        answer.responded_by_name or answer.responded_by_id or ""
    ]
    if answer.chosen is None or answer.responded_by_id is None:
        return outcome(
            "expired",
            (),
            f"no decision within {config.timeout}; rejected (fail closed), nothing promoted",
        )
    if answer.chosen != hitl.APPROVE:
        return outcome("rejected", answered_by, f"rejected by {', '.join(answered_by)}")
    if answer.responded_by_id == service_user_id:
        if answer.params_input.get(hitl.PARAM_REQUEST_ID) != request.request_id:
            return outcome(
                "rejected",
                (),
                f"the Airflow answer names request {answer.params_input.get(hitl.PARAM_REQUEST_ID)!r}, "
                f"not {request.request_id}; nothing promoted",
            )
        counted = tally(config, votes)
        if recorded_status != "approved" or counted.status != "approved":
            return outcome(
                "rejected",
                (),
                f"Airflow was answered 'Approve' but the decision store holds {recorded_status} "
                f"with {len(counted.approvals)} of {config.quorum} approvals; nothing promoted",
            )
        approvers: Sequence[str] = counted.approvals
    else:
        voter = hitl_voter(answer)
        if config.quorum > 1:
            return outcome(
                "rejected",
                (),
                f"{voter.user_id} approved in the Airflow UI, but the quorum of {config.quorum} "
                "is counted in Slack only; nothing promoted",
            )
        # An Airflow UI answer comes from an Airflow user: the same directory as the triggers'.
        if config.separation_of_duties and voter.user_id in request.requested_by:
            return outcome(
                "rejected",
                (),
                f"{voter.user_id} triggered this run and cannot approve it (separation of duties)",
            )
        approvers = (voter.user_name or voter.user_id,)
    stale = stale_reason(request.evidence, current)
    if stale is not None:
        return outcome("stale", approvers, f"approval void: {stale}; nothing promoted")
    return outcome("approved", approvers, f"approved by {', '.join(approvers)}")


def hitl_voter(answer: hitl.HITLAnswer) -> Voter:
    """The Airflow user who answered the HITL task."""
    return Voter(answer.responded_by_id or "", answer.responded_by_name or "")
