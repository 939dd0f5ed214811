"""The contract with Airflow's human-in-the-loop task: its options, its params, its answer.

No Airflow import here: the DAG builds its HITLOperator from these names, and the endpoint and
the finishing task read the operator's answer through `HITLAnswer`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

APPROVE = "Approve"
REJECT = "Reject"
OPTIONS = (APPROVE, REJECT)
# No answer before `response_timeout` resolves to the default: reject, so the flow fails closed.
DEFAULTS = (REJECT,)

# The Airflow user the approval endpoint answers HITL tasks as; the task is assigned to it.
SERVICE_USER = "approval_service"

PARAM_REQUEST_ID = "request_id"
PARAM_DECIDED_BY = "decided_by"
PARAM_COMMENT = "comment"
PARAMS = (PARAM_REQUEST_ID, PARAM_DECIDED_BY, PARAM_COMMENT)


@dataclass(frozen=True)
class HITLAnswer:
    """What the waiting HITL task returned: the chosen option, who answered, the params."""

    chosen: str | None
    responded_by_id: str | None
    responded_by_name: str | None
    params_input: Mapping[str, str] = field(default_factory=dict)
    responded_at: datetime | None = None

    @classmethod
    def from_xcom(cls, value: Mapping | None) -> HITLAnswer:
        """Read the HITLOperator's return value; a missing or empty one reads as no answer."""
        if not value:
            return cls(None, None, None)
        chosen = list(value.get("chosen_options") or [])
        user = value.get("responded_by_user") or {}
        responded_at = value.get("responded_at")
        if isinstance(responded_at, str):
            responded_at = datetime.fromisoformat(responded_at)
        return cls(
            chosen=chosen[0] if len(chosen) == 1 else None,
            responded_by_id=user.get("id"),
            responded_by_name=user.get("name"),
            params_input={
                str(k): "" if v is None else str(v)
                for k, v in (value.get("params_input") or {}).items()
            },
            responded_at=responded_at,
        )
