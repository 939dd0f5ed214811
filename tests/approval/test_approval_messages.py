from __future__ import annotations

import json
from datetime import UTC, datetime

from approval.decisions import Tally
from approval.messages import (
    APPROVE_ACTION_ID,
    REJECT_ACTION_ID,
    closed_message,
    outcome_message,
    pending_message,
)
from approval.records import Guardrail, Outcome
from approval.reference import ButtonRef
from approval.testing.samples import ALICE, BOB, sample_request

AT = datetime(2026, 1, 5, 11, 0, tzinfo=UTC)


def text_of(blocks: list[dict]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def buttons(blocks: list[dict]) -> list[dict]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_the_request_shows_versions_improvement_interval_guardrails_and_links() -> None:
    request = sample_request()
    message = pending_message(request, quorum=1, expires_at=AT)
    shown = text_of(message.blocks)
    assert "v7" in shown and "v5" in shown
    assert "+0.0123 roc_auc (CI +0.0041 … +0.0207)" in shown
    assert "latency_p95_ms — 41 ms ≤ 50 ms" in shown
    assert f"<{request.mlflow_version_url}|MLflow version page>" in shown
    assert f"<{request.report_url}|evaluation report>" in shown
    assert "2026-01-05T11:00" in shown
    assert "user_churn v7" in message.text


def test_both_buttons_carry_a_reference_to_this_request() -> None:
    request = sample_request()
    found = buttons(pending_message(request, quorum=1).blocks)
    assert [b["action_id"] for b in found] == [APPROVE_ACTION_ID, REJECT_ACTION_ID]
    for button in found:
        assert ButtonRef.decode(button["value"]) == ButtonRef("user_churn", 7, request.request_id)


def test_a_failed_guardrail_is_marked() -> None:
    request = sample_request(guardrails=(Guardrail("max_latency", False, "80 ms > 50 ms"),))
    assert ":x: max_latency — 80 ms &gt; 50 ms" in text_of(
        pending_message(request, quorum=1).blocks
    )


def test_a_first_model_without_champion_says_so() -> None:
    request = sample_request(champion_version=None, delta=None, ci_low=None, ci_high=None)
    shown = text_of(pending_message(request, quorum=1).blocks)
    assert "none yet" in shown and "no champion to compare with" in shown


def test_partial_approvals_are_shown_while_the_buttons_stay() -> None:
    message = pending_message(sample_request(), quorum=2, tally=Tally("pending", (ALICE,), (), 2))
    assert f"Approved so far by <@{ALICE}> (1 of 2)" in text_of(message.blocks)
    assert len(buttons(message.blocks)) == 2


def test_the_outcome_replaces_the_buttons_and_names_the_approvers() -> None:
    outcome = Outcome("r", "approved", (ALICE, BOB), AT, "approved by both")
    message = outcome_message(sample_request(), outcome)
    assert buttons(message.blocks) == []
    assert f"*Approved* by <@{ALICE}>, <@{BOB}>" in text_of(message.blocks)


def test_an_expired_request_says_it_was_not_promoted() -> None:
    outcome = Outcome("r", "expired", (), AT, "no decision within 1:00:00")
    shown = text_of(outcome_message(sample_request(), outcome).blocks)
    assert "*Expired*" in shown and "not promoted" in shown


def test_a_superseded_request_loses_its_buttons() -> None:
    message = closed_message(sample_request(), "superseded by v8")
    assert buttons(message.blocks) == []
    assert "superseded by v8" in text_of(message.blocks)


def test_text_from_the_evaluation_cannot_inject_slack_markup() -> None:
    request = sample_request(guardrails=(Guardrail("<!channel>", True, "<https://evil|x>"),))
    shown = text_of(pending_message(request, quorum=1).blocks)
    assert "<!channel>" not in shown and "<https://evil" not in shown
