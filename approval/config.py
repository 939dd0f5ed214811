"""How one model's promotions are approved: built from the policy, never read from YAML here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

SLACK_USER_ID_PATTERN = re.compile(r"^[UW][A-Z0-9]{2,20}$")


class ApprovalConfigError(ValueError):
    """An approval setting is invalid; the message names the field and the fix."""


@dataclass(frozen=True)
class ApprovalConfig:
    """Who may approve a promotion, how many must, and for how long the request stays open.

    `approvers` are Slack user ids (`U…` or `W…`); `quorum` approvals from them promote, any
    single reject rejects. With `separation_of_duties`, whoever triggered the training or the
    promotion run cannot approve it.
    """

    required: bool
    channel: str
    approvers: tuple[str, ...] = field(default_factory=tuple)
    quorum: int = 1
    timeout_seconds: int = 24 * 3600
    separation_of_duties: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "approvers", tuple(self.approvers))
        problems = self.problems()
        if problems:
            raise ApprovalConfigError("; ".join(problems))

    def problems(self) -> list[str]:
        """Every invalid setting at once, each as `approval.<field>: <what is wrong>`."""
        problems: list[str] = []
        if self.timeout_seconds <= 0:
            problems.append(f"approval.timeout_seconds: must be > 0, got {self.timeout_seconds}")
        if not self.required:
            return problems
        if not self.channel.strip():
            problems.append("approval.channel: name the Slack channel that receives requests")
        bad = [user for user in self.approvers if not SLACK_USER_ID_PATTERN.fullmatch(user)]
        if bad:
            problems.append(
                f"approval.approvers: {', '.join(map(repr, bad))} are not Slack user ids "
                "(they look like U024BE7LH; copy them from the user's Slack profile)"
            )
        if len(set(self.approvers)) != len(self.approvers):
            problems.append("approval.approvers: a user is listed twice")
        if not self.approvers:
            problems.append("approval.approvers: list at least one Slack user id")
        if not 1 <= self.quorum <= max(len(set(self.approvers)), 1):
            problems.append(
                f"approval.quorum: must be between 1 and the {len(set(self.approvers))} listed "
                f"approvers, got {self.quorum}"
            )
        return problems

    @property
    def timeout(self) -> timedelta:
        """How long a request waits for its decision before it expires as rejected."""
        return timedelta(seconds=self.timeout_seconds)
