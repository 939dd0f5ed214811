"""Slack approval of promotions: the request message, the decision store and the endpoint.

Importing the package loads only its plain records and pure decisions; the Slack, SQL, Airflow
and HTTP edges live in their own modules (`slack`, `store`, `airflow_api`, `app`, `service`).
"""

from approval.config import ApprovalConfig, ApprovalConfigError
from approval.decisions import check_vote, resolve_outcome, stale_reason, tally
from approval.hitl import HITLAnswer
from approval.records import (
    ApprovalRequest,
    CurrentAliases,
    Evidence,
    Guardrail,
    Outcome,
    TaskRef,
    Vote,
    Voter,
    request_id_for,
)

__all__ = [
    "ApprovalConfig",
    "ApprovalConfigError",
    "ApprovalRequest",
    "CurrentAliases",
    "Evidence",
    "Guardrail",
    "HITLAnswer",
    "Outcome",
    "TaskRef",
    "Vote",
    "Voter",
    "check_vote",
    "request_id_for",
    "resolve_outcome",
    "stale_reason",
    "tally",
]
