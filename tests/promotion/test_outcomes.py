"""A promote run's outcome from its tasks' end states: what the grid's end task says."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from promotion.outcomes import OUTCOMES, promote_outcome

PATH = ["find_candidates", "evaluate", "conclude_evaluation", "promote_challenger"]


def run(*states: str, verdict: str | None = "promote") -> str:
    return promote_outcome(dict(zip(PATH, states, strict=False)), verdict).outcome


def test_a_moved_champion_is_promoted() -> None:
    assert run("success", "success", "success", "success") == "promoted"


def test_a_skipped_conclusion_is_a_rejection() -> None:
    assert run("success", "success", "skipped", "skipped", verdict="reject") == "rejected"


def test_no_challenger_is_nothing_to_evaluate_whatever_follows() -> None:
    assert run("skipped", "skipped", "skipped", "skipped", verdict=None) == "nothing_to_evaluate"


def test_a_failed_conclusion_on_an_unusable_holdout_cannot_evaluate() -> None:
    states = ("success", "success", "failed", "upstream_failed")
    assert run(*states, verdict="cannot_evaluate") == "cannot_evaluate"
    assert run(*states, verdict="promote") == "failed"


def test_a_refused_approval_is_not_approved() -> None:
    states = {
        "find_candidates": "success",
        "evaluate": "success",
        "conclude_evaluation": "success",
        "request_approval": "success",
        "wait_for_approval": "success",
        "settle_approval": "skipped",
        "start_rollout": "skipped",
    }
    outcome = promote_outcome(states, "promote")
    assert (outcome.outcome, outcome.decided_by) == ("not_approved", "settle_approval")


def test_a_hand_over_to_the_rollout() -> None:
    states = {t: "success" for t in ("find_candidates", "evaluate", "conclude_evaluation")}
    assert promote_outcome({**states, "start_rollout": "success"}, "promote").outcome == (
        "handed_to_rollout"
    )


STATES = st.sampled_from(["success", "skipped", "failed", "upstream_failed", None])


@given(
    states=st.lists(STATES, min_size=0, max_size=4),
    verdict=st.sampled_from([None, "promote", "reject", "cannot_evaluate"]),
)
def test_every_run_has_exactly_one_known_outcome_and_failures_stay_failing(
    states: list, verdict: str | None
) -> None:
    outcome = promote_outcome(dict(zip(PATH, states, strict=False)), verdict)
    assert outcome.outcome in OUTCOMES
    first_failure = next((s for s in states if s != "success"), None)
    if first_failure in ("failed", "upstream_failed"):
        assert outcome.failing
