"""Plain records of the approval flow: what is asked, who answered, what was decided."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Literal

Choice = Literal["approve", "reject"]
RequestStatus = Literal["pending", "approved", "rejected", "superseded", "expired", "stale"]
OutcomeStatus = Literal["approved", "rejected", "expired", "stale"]


@dataclass(frozen=True)
class Guardrail:
    """One guardrail check of the evaluation and whether the challenger passed it."""

    name: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class TaskRef:
    """The Airflow task instance that waits for the decision."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1


@dataclass(frozen=True)
class Evidence:
    """What the evaluation compared; an approval is only valid while the registry still agrees."""

    champion_version: int | None
    challenger_version: int


@dataclass(frozen=True)
class CurrentAliases:
    """Where `champion` and `challenger` point now, read just before acting on an approval."""

    champion: int | None
    challenger: int | None


@dataclass(frozen=True)
class ApprovalRequest:
    """Everything an approver sees and everything needed to act on their answer.

    `delta`, `ci_low` and `ci_high` are signed so that positive always means "the challenger is
    better". `requested_by` holds the Airflow users who triggered the training or the promotion
    run; `requester_ids` the Slack user ids they map to, `unmapped_requesters` those that map to
    none (see `ApprovalConfig.slack_identity`).
    """

    request_id: str
    model: str
    challenger_version: int
    champion_version: int | None
    metric: str
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    task: TaskRef
    mlflow_version_url: str
    report_url: str | None = None
    guardrails: tuple[Guardrail, ...] = ()
    requested_by: tuple[str, ...] = ()
    airflow_run_url: str | None = None
    requester_ids: tuple[str, ...] = ()
    unmapped_requesters: tuple[str, ...] = ()

    @property
    def evidence(self) -> Evidence:
        """The versions the evaluation compared."""
        return Evidence(self.champion_version, self.challenger_version)

    def to_json_dict(self) -> dict:
        """A JSON-able copy, for the decision store and XCom."""
        return asdict(self)

    @classmethod
    def from_json_dict(cls, data: dict) -> ApprovalRequest:
        """Rebuild a request written by `to_json_dict`."""
        return cls(
            request_id=str(data["request_id"]),
            model=str(data["model"]),
            challenger_version=int(data["challenger_version"]),
            champion_version=_optional_int(data.get("champion_version")),
            metric=str(data["metric"]),
            delta=_optional_float(data.get("delta")),
            ci_low=_optional_float(data.get("ci_low")),
            ci_high=_optional_float(data.get("ci_high")),
            task=TaskRef(**data["task"]),
            mlflow_version_url=str(data["mlflow_version_url"]),
            report_url=data.get("report_url"),
            guardrails=tuple(Guardrail(**g) for g in data.get("guardrails") or ()),
            requested_by=tuple(data.get("requested_by") or ()),
            airflow_run_url=data.get("airflow_run_url"),
            requester_ids=tuple(data.get("requester_ids") or ()),
            unmapped_requesters=tuple(data.get("unmapped_requesters") or ()),
        )


def request_id_for(task: TaskRef, model: str, challenger_version: int) -> str:
    """A stable id for the request of one run and candidate, so a rerun of the task reuses it."""
    key = f"{task.dag_id}\n{task.run_id}\n{task.task_id}\n{task.map_index}\n{model}\n{challenger_version}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class PostedMessage:
    """Where a Slack message landed, which is what `chat.update` needs to change it."""

    channel: str
    ts: str


@dataclass(frozen=True)
class Voter:
    """The Slack user behind a click (or the Airflow user behind a UI answer)."""

    user_id: str
    user_name: str = ""


@dataclass(frozen=True)
class Vote:
    """One approver's recorded answer to one request."""

    user_id: str
    user_name: str
    choice: Choice
    at: datetime
    comment: str = ""


@dataclass(frozen=True)
class Outcome:
    """The final word on a request, written onto the model version and into Slack."""

    request_id: str
    status: OutcomeStatus
    by: tuple[str, ...]
    at: datetime
    reason: str
    votes: tuple[Vote, ...] = field(default_factory=tuple)

    def tags(self) -> dict[str, str]:
        """The `approval.*` tags written onto the challenger version, shown in the MLflow UI."""
        return {
            "approval.status": self.status,
            "approval.by": ",".join(self.by),
            "approval.at": self.at.isoformat(timespec="seconds"),
            "approval.request_id": self.request_id,
            "approval.reason": self.reason,
        }


def _optional_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def _optional_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
