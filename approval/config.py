"""How one model's promotions are approved: built from the policy, never read from YAML here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

SLACK_USER_ID_PATTERN = re.compile(r"^[UW][A-Z0-9]{2,20}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DOMAIN_PATTERN = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


class ApprovalConfigError(ValueError):
    """An approval setting is invalid; the message names the field and the fix."""


@dataclass(frozen=True)
class ApprovalConfig:
    """Who may approve a promotion, how many must, and for how long the request stays open.

    `approvers` are Slack user ids (`U…` or `W…`); `quorum` approvals from them promote, any
    single reject rejects. With `separation_of_duties`, whoever triggered the training or the
    promotion run cannot approve it: an Airflow user is known in Slack by the Slack user id or the
    email `identities` maps it to, else as `<user>@<identity_email_domain>` (looked up with
    Slack's `users.lookupByEmail`), else not at all.
    """

    required: bool
    channel: str
    approvers: tuple[str, ...] = field(default_factory=tuple)
    quorum: int = 1
    timeout_seconds: int = 24 * 3600
    separation_of_duties: bool = True
    identities: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    identity_email_domain: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "approvers", tuple(self.approvers))
        pairs = self.identities.items() if isinstance(self.identities, dict) else self.identities
        object.__setattr__(self, "identities", tuple((str(a), str(b)) for a, b in pairs))
        problems = self.problems()
        if problems:
            raise ApprovalConfigError("; ".join(problems))

    def problems(self) -> list[str]:
        """Every invalid setting at once, each as `approval.<field>: <what is wrong>`."""
        problems: list[str] = []
        if self.timeout_seconds <= 0:
            problems.append(f"approval.timeout_seconds: must be > 0, got {self.timeout_seconds}")
        bad_targets = [
            user
            for user, target in self.identities
            if not (SLACK_USER_ID_PATTERN.fullmatch(target) or EMAIL_PATTERN.fullmatch(target))
        ]
        if bad_targets:
            problems.append(
                f"approval.identities: {', '.join(map(repr, bad_targets))} must map to a Slack "
                "user id (U024BE7LH) or the email address Slack knows the person by"
            )
        domain = self.identity_email_domain
        if domain is not None and not DOMAIN_PATTERN.fullmatch(domain):
            problems.append(
                f"approval.identity_email_domain: {domain!r} is not a domain (e.g. example.com)"
            )
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

    def slack_identity(self, airflow_user: str) -> str | None:
        """The Slack user id, or the email to look the user up by, of an Airflow user; None when
        the policy gives no way to know who they are in Slack."""
        mapped = dict(self.identities).get(airflow_user)
        if mapped is not None:
            return mapped
        if self.identity_email_domain and EMAIL_PATTERN.fullmatch(
            f"{airflow_user}@{self.identity_email_domain}"
        ):
            return f"{airflow_user}@{self.identity_email_domain}"
        return None

    @property
    def timeout(self) -> timedelta:
        """How long a request waits for its decision before it expires as rejected."""
        return timedelta(seconds=self.timeout_seconds)
