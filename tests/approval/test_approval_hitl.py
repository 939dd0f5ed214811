from __future__ import annotations

from datetime import UTC, datetime

from approval.hitl import HITLAnswer


def test_an_answer_from_the_operator_is_read_with_who_answered() -> None:
    answer = HITLAnswer.from_xcom(
        {
            "chosen_options": ["Approve"],
            "params_input": {"request_id": "abc", "decided_by": "UALICE001", "comment": None},
            "responded_at": "2026-01-05T11:00:00+00:00",
            "responded_by_user": {"id": "approval_service", "name": "approval_service"},
        }
    )
    assert answer.chosen == "Approve"
    assert answer.responded_by_id == "approval_service"
    assert answer.params_input == {"request_id": "abc", "decided_by": "UALICE001", "comment": ""}
    assert answer.responded_at == datetime(2026, 1, 5, 11, 0, tzinfo=UTC)


def test_the_timeout_default_reads_as_nobody_answering() -> None:
    answer = HITLAnswer.from_xcom(
        {"chosen_options": ["Reject"], "params_input": {}, "responded_by_user": None}
    )
    assert (answer.chosen, answer.responded_by_id) == ("Reject", None)


def test_a_missing_answer_reads_as_no_answer() -> None:
    assert HITLAnswer.from_xcom(None).chosen is None
