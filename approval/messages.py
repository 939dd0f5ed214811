"""Slack Block Kit messages of the approval flow: the request, its progress and its outcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from approval.decisions import Tally
from approval.records import ApprovalRequest, Outcome
from approval.reference import ButtonRef

APPROVE_ACTION_ID = "approval.approve"
REJECT_ACTION_ID = "approval.reject"
ACTION_CHOICES = {APPROVE_ACTION_ID: "approve", REJECT_ACTION_ID: "reject"}

# Slack refuses a section text over 3,000 characters; stay clear of it.
_MAX_SECTION_TEXT = 2900

_OUTCOME_HEADLINES = {
    "approved": ":white_check_mark: *Approved* by {by}",
    "rejected": ":no_entry: *Rejected* by {by}",
    "expired": ":hourglass: *Expired*: no decision in time, not promoted",
    "stale": ":warning: *Not promoted*: the approval by {by} is void",
}


@dataclass(frozen=True)
class Message:
    """A Slack message: fallback text for notifications and the Block Kit blocks."""

    text: str
    blocks: list[dict]


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn gives a meaning to."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _mention(user: str) -> str:
    return f"<@{user}>" if user[:1] in ("U", "W") and user.isalnum() else escape(user)


def _mentions(users: tuple[str, ...] | list[str]) -> str:
    return ", ".join(_mention(user) for user in users) or "nobody"


def _version(version: int | None) -> str:
    return "none yet" if version is None else f"v{version}"


def improvement_text(request: ApprovalRequest) -> str:
    """The metric improvement with its confidence interval, e.g. `+0.0123 roc_auc (CI …)`."""
    if request.delta is None:
        return f"{escape(request.metric)}: no champion to compare with"
    text = f"{request.delta:+.4f} {escape(request.metric)}"
    if request.ci_low is not None and request.ci_high is not None:
        text += f" (CI {request.ci_low:+.4f} … {request.ci_high:+.4f})"
    return text


def _guardrails_text(request: ApprovalRequest) -> str:
    if not request.guardrails:
        return "*Guardrails*\nnone configured"
    lines = [
        f"{':white_check_mark:' if g.passed else ':x:'} {escape(g.name)}"
        + (f" — {escape(g.detail)}" if g.detail else "")
        for g in request.guardrails
    ]
    return ("*Guardrails*\n" + "\n".join(lines))[:_MAX_SECTION_TEXT]


def _links_text(request: ApprovalRequest) -> str:
    links = [f"<{request.mlflow_version_url}|MLflow version page>"]
    if request.report_url:
        links.append(f"<{request.report_url}|evaluation report>")
    if request.airflow_run_url:
        links.append(f"<{request.airflow_run_url}|Airflow run>")
    return " · ".join(links)


def _detail_blocks(request: ApprovalRequest) -> list[dict]:
    title = f"Promote {request.model} v{request.challenger_version}?"
    return [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Model*\n{escape(request.model)}"},
                {"type": "mrkdwn", "text": f"*Challenger*\nv{request.challenger_version}"},
                {"type": "mrkdwn", "text": f"*Champion*\n{_version(request.champion_version)}"},
                {"type": "mrkdwn", "text": f"*Improvement*\n{improvement_text(request)}"},
            ],
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _guardrails_text(request)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _links_text(request)}},
    ]


def _summary(request: ApprovalRequest) -> str:
    return (
        f"Promote {request.model} v{request.challenger_version} over "
        f"{_version(request.champion_version)}? {improvement_text(request)}"
    )


def pending_message(
    request: ApprovalRequest,
    *,
    quorum: int,
    expires_at: datetime | None = None,
    tally: Tally | None = None,
) -> Message:
    """The request with Approve / Reject buttons, and the approvals counted so far."""
    value = ButtonRef(request.model, request.challenger_version, request.request_id).encode()
    context = [f"Requested by {_mentions(request.requested_by)}" if request.requested_by else ""]
    context.append(f"needs {quorum} approval{'s' if quorum != 1 else ''}; any reject rejects")
    if expires_at is not None:
        context.append(f"expires {expires_at.isoformat(timespec='minutes')} (then rejected)")
    blocks = _detail_blocks(request)
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": " · ".join(c for c in context if c)}],
        }
    )
    if tally is not None and tally.approvals:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"Approved so far by {_mentions(tally.approvals)} "
                    f"({len(tally.approvals)} of {tally.needed})",
                },
            }
        )
    blocks.append(
        {
            "type": "actions",
            "block_id": f"approval.{request.request_id}",
            "elements": [
                {
                    "type": "button",
                    "action_id": APPROVE_ACTION_ID,
                    "text": {"type": "plain_text", "text": "Approve"},
                    "style": "primary",
                    "value": value,
                },
                {
                    "type": "button",
                    "action_id": REJECT_ACTION_ID,
                    "text": {"type": "plain_text", "text": "Reject"},
                    "style": "danger",
                    "value": value,
                },
            ],
        }
    )
    return Message(_summary(request), blocks)


def outcome_message(request: ApprovalRequest, outcome: Outcome) -> Message:
    """The request without buttons, saying who approved or rejected it, or that it expired."""
    headline = _OUTCOME_HEADLINES[outcome.status].format(by=_mentions(outcome.by))
    at = outcome.at.isoformat(timespec="seconds")
    blocks = _detail_blocks(request)
    blocks.append(
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"{headline} at {at}\n{escape(outcome.reason)}"[:_MAX_SECTION_TEXT],
            },
        }
    )
    return Message(f"{request.model} v{request.challenger_version}: {outcome.status}", blocks)


def closed_message(request: ApprovalRequest, reason: str) -> Message:
    """The request without buttons, for one that was superseded or otherwise closed."""
    blocks = _detail_blocks(request)
    blocks.append(
        {"type": "section", "text": {"type": "mrkdwn", "text": f":fast_forward: {escape(reason)}"}}
    )
    return Message(f"{request.model} v{request.challenger_version}: closed", blocks)
