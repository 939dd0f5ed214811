from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promotion.decisions import NothingToRollBack, decide_promotion, rollback_target
from promotion.records import CHALLENGER, CHAMPION, AliasMove

scores = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
margins = st.floats(min_value=0.0, max_value=0.2, allow_nan=False)


def move(
    sequence: int, to: int | None, frm: int | None, alias: str = CHAMPION, kind: str = "promote"
) -> AliasMove:
    return AliasMove(sequence, alias, frm, to, kind, "2026-01-01T00:00:00+00:00", "test", "why")  # type: ignore[arg-type]


def test_first_candidate_becomes_champion_when_there_is_none() -> None:
    verdict = decide_promotion(
        metric="roc_auc",
        higher_is_better=True,
        min_improvement=0.01,
        challenger_score=0.6,
        champion_score=None,
    )
    assert verdict.action == "promote"
    assert "no champion yet" in verdict.reason


def test_undefined_challenger_score_is_rejected() -> None:
    verdict = decide_promotion(
        metric="roc_auc",
        higher_is_better=True,
        min_improvement=0.0,
        challenger_score=math.nan,
        champion_score=None,
    )
    assert verdict.action == "reject"


def test_losing_challenger_is_rejected_with_both_scores_in_the_reason() -> None:
    verdict = decide_promotion(
        metric="roc_auc",
        higher_is_better=True,
        min_improvement=0.01,
        challenger_score=0.705,
        champion_score=0.7,
    )
    assert verdict.action == "reject"
    assert "0.7050 vs champion 0.7000" in verdict.reason
    assert verdict.improvement == pytest.approx(0.005)


@given(challenger=scores, champion=scores, margin=margins)
def test_promotes_exactly_when_the_gain_reaches_the_margin(
    challenger: float, champion: float, margin: float
) -> None:
    verdict = decide_promotion(
        metric="accuracy",
        higher_is_better=True,
        min_improvement=margin,
        challenger_score=challenger,
        champion_score=champion,
    )
    gain = challenger - champion
    assert (verdict.action == "promote") == (gain >= margin and gain > 0)


@given(challenger=scores, champion=scores, margin=margins)
def test_lower_is_better_metrics_mirror_higher_is_better(
    challenger: float, champion: float, margin: float
) -> None:
    higher = decide_promotion(
        metric="accuracy",
        higher_is_better=True,
        min_improvement=margin,
        challenger_score=challenger,
        champion_score=champion,
    )
    lower = decide_promotion(
        metric="log_loss",
        higher_is_better=False,
        min_improvement=margin,
        challenger_score=-challenger,
        champion_score=-champion,
    )
    assert higher.action == lower.action


@given(score=scores)
def test_equal_models_are_never_promoted(score: float) -> None:
    verdict = decide_promotion(
        metric="roc_auc",
        higher_is_better=True,
        min_improvement=0.0,
        challenger_score=score,
        champion_score=score,
    )
    assert verdict.action == "reject"


def test_rollback_undoes_the_last_champion_move() -> None:
    history = [move(1, 1, None), move(2, 2, 1, alias=CHALLENGER), move(3, 2, 1), move(4, 3, 2)]
    plan = rollback_target(history, current_champion=3)
    assert (plan.from_version, plan.to_version) == (3, 2)
    assert "undo move #4" in plan.reason


def test_rollback_without_previous_champion_moves_nothing() -> None:
    with pytest.raises(NothingToRollBack, match="no previous champion"):
        rollback_target([move(1, 1, None)], current_champion=1)


def test_rollback_without_champion_is_refused() -> None:
    with pytest.raises(NothingToRollBack, match="nothing to roll back"):
        rollback_target([], current_champion=None)


def test_rollback_to_a_version_never_champion_needs_force() -> None:
    history = [move(1, 1, None), move(2, 2, 1)]
    with pytest.raises(NothingToRollBack, match="never champion; set force=true"):
        rollback_target(history, current_champion=2, requested_version=5)
    assert (
        rollback_target(history, current_champion=2, requested_version=5, force=True).to_version
        == 5
    )


def test_rollback_to_the_current_champion_is_refused() -> None:
    with pytest.raises(NothingToRollBack, match="already champion"):
        rollback_target([move(1, 1, None), move(2, 2, 1)], current_champion=2, requested_version=2)


@st.composite
def champion_histories(draw: st.DrawFn) -> list[AliasMove]:
    versions = draw(st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=12))
    history, previous = [], None
    for sequence, version in enumerate(versions, start=1):
        if version == previous:
            continue
        history.append(
            move(sequence, version, previous, kind=draw(st.sampled_from(["promote", "rollback"])))
        )
        previous = version
    return history


@given(history=champion_histories())
def test_default_rollback_target_is_the_version_before_the_current_one(
    history: list[AliasMove],
) -> None:
    current = history[-1].to_version
    try:
        plan = rollback_target(history, current_champion=current)
    except NothingToRollBack:
        assert history[-1].from_version is None
        return
    assert plan.to_version == history[-1].from_version
    assert plan.to_version != current
    assert any(m.to_version == plan.to_version for m in history)
