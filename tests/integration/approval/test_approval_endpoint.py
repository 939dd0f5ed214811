"""The approval endpoint under a real uvicorn, fed Slack requests signed with Slack's algorithm."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from approval.app import INTERACTIONS_PATH, AliasReader, create_app
from approval.config import ApprovalConfig
from approval.hitl import HITLAnswer
from approval.records import ApprovalRequest, CurrentAliases, PostedMessage
from approval.reference import ButtonRef
from approval.service import finish_approval, request_approval
from approval.slack import SlackApprovalHook
from approval.store import DecisionStore
from approval.testing.hitl_fake import RecordingResponder
from approval.testing.interactions import SIGNING_SECRET, button_click, signed_headers
from approval.testing.samples import ALICE, BOB, CAROL, MALLORY, sample_config, sample_request
from approval.testing.slack_fake import FakeSlack
from tests.hostile import hostile

pytestmark = pytest.mark.integration


@dataclass
class Approval:
    """One posted approval request and the served endpoint that answers its buttons."""

    url: str
    store: DecisionStore
    fake: FakeSlack
    airflow: RecordingResponder
    request: ApprovalRequest
    posted: PostedMessage

    @property
    def button_value(self) -> str:
        """The Approve button's value exactly as it was posted to Slack."""
        (call,) = self.fake.calls_of("chat.postMessage")
        actions = [b for b in call.payload["blocks"] if b["type"] == "actions"]
        return actions[0]["elements"][0]["value"]

    def send(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(self.url + INTERACTIONS_PATH, content=body, headers=headers, timeout=10)

    def click(
        self,
        user: str,
        *,
        approve: bool = True,
        value: str | None = None,
        timestamp: int | None = None,
        secret: str = SIGNING_SECRET,
    ) -> httpx.Response:
        body = button_click(
            user_id=user,
            value=value or self.button_value,
            approve=approve,
            message=self.posted,
            trigger_id=uuid.uuid4().hex,
        )
        when = int(time.time()) if timestamp is None else timestamp
        return self.send(body, signed_headers(secret, when, body))

    def assert_nothing_recorded(self) -> None:
        stored = self.store.get(self.request.request_id)
        assert stored is not None
        assert (stored.status, stored.votes) == ("pending", ())
        assert self.airflow.answers == []
        assert self.fake.calls_of("chat.update") == []

    def current_message(self) -> str:
        return json.dumps(self.fake.messages[(self.posted.channel, self.posted.ts)])


OpenApproval = Callable[..., Approval]


@pytest.fixture
def open_approval(
    sqlite_store: DecisionStore,
    fake_slack: FakeSlack,
    slack: SlackApprovalHook,
    airflow_stub: RecordingResponder,
    serve: Callable[[FastAPI], str],
) -> OpenApproval:
    """Post a request to the fake Slack and serve the endpoint that answers it."""

    def open_(
        config: ApprovalConfig | None = None,
        request: ApprovalRequest | None = None,
        *,
        store: DecisionStore = sqlite_store,
        airflow: RecordingResponder = airflow_stub,
        alias_reader: AliasReader | None = None,
        max_body_bytes: int = 64 * 1024,
        opened_at: datetime | None = None,
    ) -> Approval:
        config = config or sample_config()
        request = request or sample_request()
        posted = request_approval(
            request, config, store=store, slack=slack, now=opened_at or datetime.now(UTC)
        )
        request = store.get(request.request_id).request  # with its triggers' Slack identities
        app = create_app(
            signing_secret=SIGNING_SECRET,
            store=store,
            slack=slack,
            airflow=airflow,
            alias_reader=alias_reader,
            max_body_bytes=max_body_bytes,
        )
        return Approval(serve(app), store, fake_slack, airflow, request, posted)

    return open_


# --- decisions ---------------------------------------------------------------------------------


def test_an_approval_is_recorded_shown_in_slack_and_answers_the_airflow_task(
    open_approval: OpenApproval,
) -> None:
    approval = open_approval()
    response = approval.click(ALICE)
    assert response.status_code == 200, response.text
    stored = approval.store.get(approval.request.request_id)
    assert stored.status == "approved"
    assert [(v.user_id, v.choice) for v in stored.votes] == [(ALICE, "approve")]
    assert approval.airflow.answers == [
        (
            approval.request.task,
            "Approve",
            {"request_id": approval.request.request_id, "decided_by": ALICE, "comment": ""},
        )
    ]
    assert stored.answered_at is not None
    shown = approval.current_message()
    assert f"*Approved* by <@{ALICE}>" in shown and '"actions"' not in shown


def test_a_reject_answers_the_airflow_task_with_reject(open_approval: OpenApproval) -> None:
    approval = open_approval()
    assert approval.click(BOB, approve=False).status_code == 200
    assert approval.store.get(approval.request.request_id).status == "rejected"
    assert [answer[1] for answer in approval.airflow.answers] == ["Reject"]
    assert f"*Rejected* by <@{BOB}>" in approval.current_message()


def test_a_quorum_of_two_waits_for_the_second_approver(open_approval: OpenApproval) -> None:
    approval = open_approval(sample_config(approvers=(ALICE, BOB, CAROL), quorum=2))
    assert approval.click(ALICE).json()["status"] == "pending"
    assert approval.airflow.answers == []
    assert f"Approved so far by <@{ALICE}> (1 of 2)" in approval.current_message()
    assert approval.click(BOB).json()["status"] == "approved"
    assert approval.airflow.answers[0][2]["decided_by"] == f"{ALICE},{BOB}"


def test_a_decision_airflow_did_not_take_is_kept_and_reported(
    open_approval: OpenApproval, failing_airflow: RecordingResponder
) -> None:
    approval = open_approval(airflow=failing_airflow)
    response = approval.click(ALICE)
    assert response.status_code == 502
    stored = approval.store.get(approval.request.request_id)
    assert stored.status == "approved" and stored.answered_at is None
    assert "Airflow did not take it" in approval.current_message()


# --- attacks: each refused, nothing recorded, Airflow untouched ---------------------------------


def test_a_forged_signature_is_refused(open_approval: OpenApproval) -> None:
    approval = open_approval()
    response = hostile(
        "approval endpoint attack", approval.click(ALICE, secret="not-the-signing-secret")
    )
    assert response.status_code == 401
    approval.assert_nothing_recorded()


def test_a_request_without_signature_headers_is_refused(open_approval: OpenApproval) -> None:
    approval = open_approval()
    body = button_click(user_id=ALICE, value=approval.button_value)
    response = hostile(
        "approval endpoint attack",
        approval.send(body, {"Content-Type": "application/x-www-form-urlencoded"}),
    )
    assert response.status_code == 401
    approval.assert_nothing_recorded()


def test_a_correctly_signed_request_older_than_five_minutes_is_refused(
    open_approval: OpenApproval,
) -> None:
    approval = open_approval()
    response = approval.click(ALICE, timestamp=int(time.time()) - 5 * 60 - 5)
    assert response.status_code == 401
    approval.assert_nothing_recorded()


def test_a_signed_body_altered_in_transit_is_refused(open_approval: OpenApproval) -> None:
    approval = open_approval()
    now = int(time.time())
    signed_for_mallory = button_click(user_id=MALLORY, value=approval.button_value)
    as_alice = button_click(user_id=ALICE, value=approval.button_value)
    response = hostile(
        "approval endpoint attack",
        approval.send(as_alice, signed_headers(SIGNING_SECRET, now, signed_for_mallory)),
    )
    assert response.status_code == 401
    approval.assert_nothing_recorded()


@pytest.mark.parametrize("store_name", ["sqlite_store", "postgres_store"])
def test_the_same_signed_request_replayed_is_refused(
    open_approval: OpenApproval, request: pytest.FixtureRequest, store_name: str
) -> None:
    store = request.getfixturevalue(store_name)
    approval = open_approval(sample_config(quorum=2), store=store)
    body = button_click(user_id=ALICE, value=approval.button_value, trigger_id="t-1")
    headers = signed_headers(SIGNING_SECRET, int(time.time()), body)
    assert approval.send(body, headers).status_code == 200
    replayed = hostile("replayed Slack click", approval.send(body, headers))
    assert replayed.status_code == 403
    assert replayed.json()["error"] == "replayed"
    assert len(store.get(approval.request.request_id).votes) == 1


def test_a_user_not_on_the_approver_list_is_refused(open_approval: OpenApproval) -> None:
    approval = open_approval()
    response = hostile("approval endpoint attack", approval.click(MALLORY))
    assert (response.status_code, response.json()["error"]) == (403, "not_approver")
    approval.assert_nothing_recorded()


def test_the_runs_own_trigger_cannot_approve_alone(open_approval: OpenApproval) -> None:
    approval = open_approval(sample_config(approvers=(ALICE, CAROL)))
    response = hostile("approval endpoint attack", approval.click(CAROL))
    assert (response.status_code, response.json()["error"]) == (403, "own_run")
    approval.assert_nothing_recorded()


@pytest.mark.parametrize("model, version", [("fraud", 7), ("user_churn", 6)])
def test_a_button_for_another_model_or_version_is_refused(
    open_approval: OpenApproval, model: str, version: int
) -> None:
    approval = open_approval()
    value = ButtonRef(model, version, approval.request.request_id).encode()
    response = hostile("approval endpoint attack", approval.click(ALICE, value=value))
    assert (response.status_code, response.json()["error"]) == (400, "wrong_button")
    approval.assert_nothing_recorded()


def test_a_button_for_an_unknown_request_is_refused(open_approval: OpenApproval) -> None:
    approval = open_approval()
    response = hostile(
        "approval endpoint attack",
        approval.click(ALICE, value=ButtonRef("user_churn", 7, "0" * 32).encode()),
    )
    assert response.status_code == 400
    approval.assert_nothing_recorded()


def test_a_button_of_a_superseded_candidate_is_refused(
    open_approval: OpenApproval, sqlite_store: DecisionStore, slack: SlackApprovalHook
) -> None:
    approval = open_approval()
    old_value = approval.button_value
    newer = sample_request(challenger_version=8)
    request_approval(newer, sample_config(), store=sqlite_store, slack=slack, now=datetime.now(UTC))
    response = hostile("approval endpoint attack", approval.click(ALICE, value=old_value))
    assert (response.status_code, response.json()["error"]) == (403, "closed")
    stored = sqlite_store.get(approval.request.request_id)
    assert (stored.status, stored.votes) == ("superseded", ())
    assert sqlite_store.get(newer.request_id).votes == ()
    assert approval.airflow.answers == []


def test_a_click_on_evidence_gone_stale_is_refused(open_approval: OpenApproval) -> None:
    approval = open_approval(alias_reader=lambda model: CurrentAliases(champion=6, challenger=7))
    response = hostile("approval endpoint attack", approval.click(ALICE))
    assert (response.status_code, response.json()["error"]) == (403, "stale")
    approval.assert_nothing_recorded()


def test_a_reject_on_stale_evidence_is_still_taken(open_approval: OpenApproval) -> None:
    approval = open_approval(alias_reader=lambda model: CurrentAliases(champion=6, challenger=7))
    assert approval.click(BOB, approve=False).status_code == 200
    assert approval.store.get(approval.request.request_id).status == "rejected"


def test_an_approval_that_cannot_be_checked_against_the_registry_is_not_taken(
    open_approval: OpenApproval,
) -> None:
    def registry_down(model: str) -> CurrentAliases:
        raise ConnectionError("MLflow is down")

    approval = open_approval(alias_reader=registry_down)
    response = hostile("approval endpoint attack", approval.click(ALICE))
    assert (response.status_code, response.json()["error"]) == (503, "registry_unavailable")
    approval.assert_nothing_recorded()


@pytest.mark.parametrize(
    "body",
    [
        b"payload=%7Bnot+json",
        b"just some bytes",
        b"payload=" + b"%7B%22type%22%3A%22block_actions%22%7D",
        b"",
        "payload=\udcff".encode("utf-8", "surrogatepass"),
    ],
    ids=["bad-json", "not-a-form", "no-actions", "empty", "not-utf8"],
)
def test_a_malformed_signed_body_is_refused(open_approval: OpenApproval, body: bytes) -> None:
    approval = open_approval()
    response = approval.send(body, signed_headers(SIGNING_SECRET, int(time.time()), body))
    assert (response.status_code, response.json()["error"]) == (400, "malformed")
    approval.assert_nothing_recorded()


def test_an_oversized_body_is_refused_before_it_is_read(open_approval: OpenApproval) -> None:
    approval = open_approval(max_body_bytes=4096)
    body = button_click(user_id=ALICE, value=approval.button_value) + b"&pad=" + b"x" * 5000
    response = approval.send(body, signed_headers(SIGNING_SECRET, int(time.time()), body))
    assert (response.status_code, response.json()["error"]) == (400, "oversized")
    approval.assert_nothing_recorded()


# --- malformed headers and bodies: a 4xx, never a 500 -------------------------------------------


@pytest.mark.parametrize(
    "timestamp, signature",
    [
        ("9" * 5000, "v0=" + "0" * 64),
        ("١٧٠٠٠٠٠٠٠٠", "v0=" + "0" * 64),
        (str(int(time.time())), "v0=" + "é" * 64),
        (str(int(time.time())), "v0=" + "0" * 5000),
    ],
    ids=["long-timestamp", "non-ascii-timestamp", "non-ascii-signature", "long-signature"],
)
def test_garbled_signature_headers_are_a_401(
    open_approval: OpenApproval, timestamp: str, signature: str
) -> None:
    approval = open_approval()
    body = button_click(user_id=ALICE, value=approval.button_value)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp.encode(),
        "X-Slack-Signature": signature.encode(),
    }
    response = hostile("garbled Slack signature headers", approval.send(body, headers))
    assert (response.status_code, response.json()["error"]) == (401, "unsigned")
    approval.assert_nothing_recorded()


def test_a_deeply_nested_signed_body_is_a_400(open_approval: OpenApproval) -> None:
    approval = open_approval()
    body = b"payload=" + b"%5B" * 5000 + b"%5D" * 5000
    headers = signed_headers(SIGNING_SECRET, int(time.time()), body)
    response = hostile("deeply nested signed body", approval.send(body, headers))
    assert (response.status_code, response.json()["error"]) == (400, "malformed")
    approval.assert_nothing_recorded()


# --- the deadline and a concluded outcome ---------------------------------------------------------


def test_a_click_after_the_policy_deadline_is_refused_though_airflow_still_waits(
    open_approval: OpenApproval,
) -> None:
    opened = datetime.now(UTC) - timedelta(seconds=3601)  # the sample policy allows an hour
    approval = open_approval(opened_at=opened)
    response = hostile("click after the deadline", approval.click(ALICE))
    assert (response.status_code, response.json()["error"]) == (403, "expired")
    approval.assert_nothing_recorded()


def test_a_request_settled_as_expired_is_never_rewritten_by_a_late_click(
    open_approval: OpenApproval, slack: SlackApprovalHook
) -> None:
    approval = open_approval()
    outcome = finish_approval(
        approval.request.request_id,
        HITLAnswer("Reject", None, None, {}),  # Airflow's timeout answer: no responder
        store=approval.store,
        slack=slack,
        current=CurrentAliases(champion=5, challenger=7),
        service_user_id="approval_service",
        now=datetime.now(UTC),
    )
    assert outcome.status == "expired"
    shown = approval.current_message()
    response = hostile("click on an expired request", approval.click(ALICE))
    assert (response.status_code, response.json()["error"]) == (403, "closed")
    stored = approval.store.get(approval.request.request_id)
    assert (stored.status, stored.votes, stored.outcome.status) == ("expired", (), "expired")
    assert approval.current_message() == shown and "Approved" not in shown
    assert approval.airflow.answers == []


# --- separation of duties by identity ------------------------------------------------------------


def test_a_trigger_without_a_slack_identity_leaves_nobody_able_to_approve(
    open_approval: OpenApproval,
) -> None:
    approval = open_approval(request=sample_request(requested_by=("dana",)))
    assert approval.request.unmapped_requesters == ("dana",)
    response = hostile("approval of a run with an unmapped trigger", approval.click(ALICE))
    assert (response.status_code, response.json()["error"]) == (403, "unmapped_requester")
    approval.assert_nothing_recorded()
    assert approval.click(BOB, approve=False).status_code == 200  # a reject is still taken


def test_a_trigger_found_by_email_in_slack_cannot_approve_but_others_can(
    open_approval: OpenApproval, fake_slack: FakeSlack
) -> None:
    fake_slack.users["carol@example.com"] = CAROL
    config = sample_config(
        approvers=(ALICE, CAROL), identities=(), identity_email_domain="example.com"
    )
    approval = open_approval(config)
    assert approval.request.requester_ids == (CAROL,)
    assert fake_slack.calls_of("users.lookupByEmail")[0].payload == {"email": "carol@example.com"}
    own = hostile("trigger approving their own run", approval.click(CAROL))
    assert (own.status_code, own.json()["error"]) == (403, "own_run")
    assert approval.click(ALICE).json()["status"] == "approved"
