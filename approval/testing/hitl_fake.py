"""A stand-in for AirflowHITLClient that keeps each answer it is given, or fails on demand."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from approval.records import TaskRef


@dataclass
class RecordingResponder:
    """Answers nothing for real: records (task, option, params), or raises `failure`."""

    user_id: str = "approval_service"
    answers: list[tuple[TaskRef, str, dict]] = field(default_factory=list)
    failure: Exception | None = None

    def respond(
        self, task: TaskRef, *, chosen_option: str, params_input: Mapping[str, str]
    ) -> dict:
        """Record the answer, or raise the configured failure."""
        if self.failure is not None:
            raise self.failure
        self.answers.append((task, chosen_option, dict(params_input)))
        return {"chosen_options": [chosen_option], "params_input": dict(params_input)}
