from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from approval.decisions import check_reference, check_vote, resolve_outcome, stale_reason, tally
from approval.hitl import HITLAnswer
from approval.records import CurrentAliases, Evidence, Vote, Voter
from approval.reference import ButtonRef
from approval.testing.samples import ALICE, BOB, CAROL, MALLORY, sample_config, sample_request

NOW = datetime(2026, 1, 5, 11, 0, tzinfo=UTC)
SERVICE = "approval_service"
FRESH = CurrentAliases(champion=5, challenger=7)


def vote(user: str, choice: str = "approve") -> Vote:
    return Vote(user, user.lower(), choice, NOW)  # type: ignore[arg-type]


# --- staleness ---------------------------------------------------------------------------------


def test_evidence_matching_the_registry_is_fresh() -> None:
    assert stale_reason(Evidence(5, 7), FRESH) is None


def test_a_moved_champion_makes_the_evidence_stale() -> None:
    reason = stale_reason(Evidence(5, 7), CurrentAliases(champion=6, challenger=7))
    assert reason == "champion moved from v5 to v6 since the evaluation"


def test_a_newer_challenger_makes_the_evidence_stale() -> None:
    reason = stale_reason(Evidence(5, 7), CurrentAliases(champion=5, challenger=8))
    assert reason == "a newer challenger v8 arrived after v7 was evaluated"


def test_a_first_champion_appearing_since_the_evaluation_makes_it_stale() -> None:
    assert stale_reason(Evidence(None, 1), CurrentAliases(champion=3, challenger=1)) is not None


def test_a_cleared_challenger_alias_leaves_the_evidence_fresh() -> None:
    assert stale_reason(Evidence(5, 7), CurrentAliases(champion=5, challenger=None)) is None


def test_an_explicitly_requested_version_behind_an_older_challenger_is_fresh() -> None:
    assert stale_reason(Evidence(5, 7), CurrentAliases(champion=5, challenger=6)) is None


@given(
    st.none() | st.integers(1, 50),
    st.integers(1, 50),
    st.none() | st.integers(1, 50),
    st.none() | st.integers(1, 50),
)
def test_evidence_is_fresh_exactly_when_champion_stayed_and_no_newer_challenger_came(
    champion: int | None, challenger: int, now_champion: int | None, now_challenger: int | None
) -> None:
    fresh = (
        stale_reason(Evidence(champion, challenger), CurrentAliases(now_champion, now_challenger))
        is None
    )
    no_newer = now_challenger is None or now_challenger <= challenger
    assert fresh == (champion == now_champion and no_newer)


# --- quorum ------------------------------------------------------------------------------------


def test_one_approval_meets_a_quorum_of_one() -> None:
    result = tally(sample_config(), [vote(ALICE)])
    assert (result.status, result.approvals) == ("approved", (ALICE,))


def test_a_quorum_of_two_waits_for_the_second_approver() -> None:
    config = sample_config(quorum=2)
    assert tally(config, [vote(ALICE)]).status == "pending"
    assert tally(config, [vote(ALICE), vote(BOB)]).status == "approved"


def test_votes_of_users_not_on_the_list_do_not_count() -> None:
    assert tally(sample_config(), [vote(MALLORY)]).status == "pending"


votes_strategy = st.lists(
    st.builds(
        vote,
        st.sampled_from([ALICE, BOB, CAROL, MALLORY]),
        st.sampled_from(["approve", "reject"]),
    ),
    max_size=8,
)


@given(votes_strategy, st.integers(1, 3))
def test_any_listed_reject_rejects_and_only_listed_approvals_count(
    votes: list[Vote], quorum: int
) -> None:
    config = sample_config(approvers=(ALICE, BOB, CAROL), quorum=quorum)
    result = tally(config, votes)
    listed = [v for v in votes if v.user_id in config.approvers]
    approvers = {v.user_id for v in listed if v.choice == "approve"}
    if any(v.choice == "reject" for v in listed):
        assert result.status == "rejected"
    elif len(approvers) >= quorum:
        assert result.status == "approved"
    else:
        assert result.status == "pending"
    assert set(result.approvals) == approvers
    assert MALLORY not in result.approvals + result.rejections


# --- who may vote ------------------------------------------------------------------------------


def check(
    voter: Voter,
    choice: str = "approve",
    *,
    status: str = "pending",
    votes=(),
    request=None,
    at: datetime = NOW,
    **config,
):
    return check_vote(
        sample_config(**config),
        request or sample_request(),
        status=status,  # type: ignore[arg-type]
        voter=voter,
        choice=choice,  # type: ignore[arg-type]
        votes=votes,
        expires_at=NOW + timedelta(minutes=30),
        now=at,
    )


def test_a_listed_approver_may_approve_a_pending_request() -> None:
    assert check(Voter(ALICE, "alice")) is None


def test_a_user_not_on_the_list_is_refused() -> None:
    refusal = check(Voter(MALLORY, "mallory"))
    assert refusal is not None and refusal.kind == "not_approver"


def test_the_runs_own_trigger_cannot_approve_it() -> None:
    refusal = check(Voter(CAROL, "carol"), approvers=(ALICE, CAROL))
    assert refusal is not None and refusal.kind == "own_run"


def test_separation_of_duties_compares_identities_not_names() -> None:
    # Slack user BOB happens to be called "carol" in Slack; Airflow's carol is Slack's CAROL.
    assert check(Voter(BOB, "carol"), approvers=(BOB, CAROL)) is None
    refusal = check(Voter(CAROL, "someone-else"), approvers=(BOB, CAROL))
    assert refusal is not None and refusal.kind == "own_run"


def test_a_trigger_with_no_slack_identity_leaves_nobody_able_to_approve() -> None:
    request = sample_request(requested_by=("carol", "dana"), unmapped_requesters=("dana",))
    refusal = check(Voter(ALICE), request=request)
    assert refusal is not None and refusal.kind == "unmapped_requester"
    assert "dana" in refusal.reason
    assert check(Voter(ALICE), "reject", request=request) is None
    assert check(Voter(ALICE), request=request, separation_of_duties=False) is None


def test_a_click_after_the_policy_deadline_is_refused_whatever_airflow_did() -> None:
    refusal = check(Voter(ALICE), at=NOW + timedelta(minutes=31))
    assert refusal is not None and refusal.kind == "expired"
    assert check(Voter(ALICE), at=NOW + timedelta(minutes=30)) is None


def test_the_trigger_may_still_reject_their_own_run() -> None:
    assert check(Voter(CAROL, "carol"), "reject", approvers=(ALICE, CAROL)) is None


def test_without_separation_of_duties_the_trigger_may_approve() -> None:
    assert check(Voter(CAROL), approvers=(ALICE, CAROL), separation_of_duties=False) is None


def test_a_second_answer_by_the_same_approver_is_refused() -> None:
    refusal = check(Voter(ALICE), votes=(vote(ALICE),), quorum=2)
    assert refusal is not None and refusal.kind == "already_voted"


@pytest.mark.parametrize("status", ["approved", "rejected", "superseded", "expired", "stale"])
def test_a_closed_request_takes_no_more_answers(status: str) -> None:
    refusal = check(Voter(ALICE), status=status)
    assert refusal is not None and refusal.kind == "closed"


@pytest.mark.parametrize(
    "ref", [ButtonRef("other_model", 7, "a" * 32), ButtonRef("user_churn", 6, "a" * 32)]
)
def test_a_button_for_another_model_or_version_is_refused(ref: ButtonRef) -> None:
    refusal = check_reference(sample_request(), ref)
    assert refusal is not None and refusal.kind == "wrong_button"


# --- the final outcome -------------------------------------------------------------------------


def answer(chosen: str | None, by: str | None = SERVICE, **params: str) -> HITLAnswer:
    request = sample_request()
    defaults = {"request_id": request.request_id, "decided_by": ALICE, "comment": ""}
    return HITLAnswer(chosen, by, by, {**defaults, **params})


def outcome(answer_: HITLAnswer, *, recorded="approved", votes=(), current=FRESH, **config):
    return resolve_outcome(
        config=sample_config(**config),
        request=sample_request(),
        answer=answer_,
        recorded_status=recorded,
        votes=votes or (vote(ALICE),),
        current=current,
        service_user_id=SERVICE,
        now=NOW,
    )


def test_a_slack_approval_backed_by_the_store_approves() -> None:
    result = outcome(answer("Approve"))
    assert (result.status, result.by) == ("approved", (ALICE,))
    assert result.tags()["approval.status"] == "approved"
    assert result.tags()["approval.by"] == ALICE


def test_no_answer_before_the_timeout_expires_the_request() -> None:
    result = outcome(HITLAnswer("Reject", None, None, {}))
    assert result.status == "expired"
    assert "rejected (fail closed)" in result.reason


def test_a_reject_rejects_and_names_who_rejected() -> None:
    result = outcome(
        answer("Reject", decided_by=BOB), recorded="rejected", votes=(vote(BOB, "reject"),)
    )
    assert (result.status, result.by) == ("rejected", (BOB,))


def test_an_approve_the_store_does_not_back_is_rejected() -> None:
    result = outcome(answer("Approve"), recorded="pending", votes=(vote(MALLORY),))
    assert result.status == "rejected"
    assert "decision store holds pending" in result.reason


def test_an_approve_for_another_request_is_rejected() -> None:
    result = outcome(answer("Approve", request_id="f" * 32))
    assert result.status == "rejected"


def test_an_approval_on_stale_evidence_is_void() -> None:
    result = outcome(answer("Approve"), current=CurrentAliases(champion=5, challenger=8))
    assert result.status == "stale"
    assert "newer challenger v8" in result.reason


def test_an_airflow_ui_approval_counts_when_one_approval_is_enough() -> None:
    result = outcome(answer("Approve", by="dana"), recorded="pending")
    assert (result.status, result.by) == ("approved", ("dana",))


def test_an_airflow_ui_approval_cannot_meet_a_larger_quorum() -> None:
    result = outcome(answer("Approve", by="dana"), recorded="pending", quorum=2)
    assert result.status == "rejected"


def test_the_trigger_cannot_approve_their_own_run_in_the_airflow_ui() -> None:
    result = outcome(answer("Approve", by="carol"), recorded="pending")
    assert result.status == "rejected"
    assert "separation of duties" in result.reason
