"""An approver in the demo's Slack: reads the request a promotion posted, waits until the
promotion waits for input in Airflow, and clicks a button, which Slack turns into a signed
interactivity request to the approval endpoint."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from approval.airflow_api import AirflowHITLClient, AirflowHITLError
from approval.app import INTERACTIONS_PATH
from approval.reference import ButtonRef
from approval.store import DecisionStore, StoredRequest
from approval.testing.interactions import button_click, signed_headers
from approval.testing.slack_fake import FakeSlack
from demo.lifecycle import BackgroundRun, DagRunFailed


@dataclass(frozen=True)
class Click:
    """One answered request: what Slack showed, who clicked what, what the endpoint replied."""

    posted: str
    user: str
    approve: bool
    status: int
    reply: str


@dataclass
class SlackApprover:
    """Clicks the buttons of the approval requests posted to `slack`, as `endpoint` expects."""

    slack: FakeSlack
    store: DecisionStore
    airflow: AirflowHITLClient
    endpoint: str
    signing_secret: str

    def posted(self) -> int:
        """How many messages were posted so far (a request waits beyond this count)."""
        return len(self.slack.calls_of("chat.postMessage"))

    def answer(
        self, run: BackgroundRun, *, after: int, user: str, approve: bool, timeout_s: float
    ) -> Click:
        """Wait for the request `run` posts after the first `after` messages, then click
        Approve or Reject on it as `user`; raise DagRunFailed when `run` ends or the time runs
        out first."""
        deadline = time.monotonic() + timeout_s
        while not (requests := self._requests(after)):
            self._wait(run, deadline, "the approval request in Slack")
        payload, value = requests[0]
        stored = self.store.get(ButtonRef.decode(value).request_id)
        while not self._awaiting_input(stored):
            self._wait(run, deadline, "the promotion to wait for input in Airflow")
        body = button_click(user_id=user, value=value, approve=approve, message=stored.message)
        response = httpx.post(
            self.endpoint + INTERACTIONS_PATH,
            content=body,
            headers=signed_headers(self.signing_secret, int(time.time()), body),
            timeout=30,
        )
        return Click(payload["text"], user, approve, response.status_code, response.text)

    def _requests(self, after: int) -> list[tuple[dict, str]]:
        """The messages with buttons posted after the first `after`, with their button value."""
        return [
            (call.payload, actions[0]["elements"][0]["value"])
            for call in self.slack.calls_of("chat.postMessage")[after:]
            if (actions := [b for b in call.payload.get("blocks", []) if b["type"] == "actions"])
        ]

    def _awaiting_input(self, stored: StoredRequest) -> bool:
        try:
            detail = self.airflow.detail(stored.request.task)
        except AirflowHITLError:  # the HITL detail is not written yet
            return False
        return detail["task_instance"]["state"] == "awaiting_input"

    @staticmethod
    def _wait(run: BackgroundRun, deadline: float, what: str) -> None:
        if run.done():
            run.wait()
            raise DagRunFailed(f"`{run.command}` ended before {what} (log: {run.log})")
        if time.monotonic() > deadline:
            run.stop()
            raise DagRunFailed(f"no {what} in time (log: {run.log})")
        time.sleep(0.25)
