from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promotion.decisions import (
    NothingToRollBack,
    check_rollback_scores,
    choose_recent_data,
    decide_promotion,
    rollback_target,
)
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


def test_rollback_returns_to_the_previous_champion() -> None:
    history = [move(1, 1, None), move(2, 2, 1, alias=CHALLENGER), move(3, 2, 1), move(4, 3, 2)]
    plan = rollback_target(history, current_champion=3)
    assert (plan.from_version, plan.to_version) == (3, 2)
    assert "champion until move #4 (promote: v2 → v3)" in plan.reason


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
    """Champion moves among a few versions: promotions, rollbacks and guard-window reverts."""
    versions = draw(st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=12))
    kinds = st.sampled_from(["promote", "rollback", "revert"])
    history, previous = [], None
    for sequence, version in enumerate(versions, start=1):
        if version == previous:
            continue
        history.append(move(sequence, version, previous, kind=draw(kinds)))
        previous = version
    return history


def test_a_second_default_rollback_does_not_flip_back() -> None:
    history = [move(1, 1, None), move(2, 2, 1), move(3, 1, 2, kind="rollback")]
    with pytest.raises(NothingToRollBack, match=r"every former champion \(v2\) was rolled back"):
        rollback_target(history, current_champion=1)


def test_default_rollback_skips_versions_rolled_back_from() -> None:
    history = [
        move(1, 1, None),
        move(2, 2, 1),
        move(3, 3, 2),
        move(4, 2, 3, kind="rollback"),
        move(5, 4, 2),
    ]
    plan = rollback_target(history, current_champion=4)
    assert plan.to_version == 2  # v3 was rolled back from; v2 lost champion to a promotion last
    history.append(move(6, 2, 4, kind="revert"))
    plan = rollback_target(history, current_champion=2)
    assert plan.to_version == 1
    assert "skipped v3, v4 (rolled back from)" in plan.reason


def test_an_explicit_version_may_be_one_rolled_back_from() -> None:
    history = [move(1, 1, None), move(2, 2, 1), move(3, 1, 2, kind="rollback")]
    plan = rollback_target(history, current_champion=1, requested_version=2)
    assert plan.to_version == 2
    assert "rolled back from before" in plan.reason


@given(history=champion_histories())
def test_default_rollback_target_is_a_former_champion_never_rolled_back_from(
    history: list[AliasMove],
) -> None:
    current = history[-1].to_version
    given_up = {m.from_version for m in history if m.kind in ("rollback", "revert")}
    former = {m.from_version for m in history if m.from_version not in (None, current)}
    try:
        plan = rollback_target(history, current_champion=current)
    except NothingToRollBack:
        assert former <= given_up
        return
    assert plan.from_version == current
    assert plan.to_version != current
    assert plan.to_version in former
    assert plan.to_version not in given_up
    assert any(m.to_version == plan.to_version for m in history)


@given(history=champion_histories())
def test_default_rollback_target_is_the_one_that_held_champion_last(
    history: list[AliasMove],
) -> None:
    current = history[-1].to_version
    given_up = {m.from_version for m in history if m.kind in ("rollback", "revert")}
    try:
        plan = rollback_target(history, current_champion=current)
    except NothingToRollBack:
        return
    left_at = {m.from_version: m.sequence for m in history if m.from_version is not None}
    later = [
        v
        for v, seq in left_at.items()
        if seq > left_at[plan.to_version] and v != current and v not in given_up
    ]
    assert later == []


def check(champion: float | None, target: float | None, *, force: bool = False, higher=True):
    return check_rollback_scores(
        metric="roc_auc" if higher else "log_loss",
        higher_is_better=higher,
        margin=0.02,
        champion_score=champion,
        target_score=target,
        force=force,
        not_scored="source down",
    )


def test_a_target_worse_than_the_champion_by_more_than_the_margin_is_refused() -> None:
    refused = check(0.74, 0.44)
    assert not refused.allowed
    assert "roc_auc target 0.4400 vs champion 0.7400" in refused.reason
    assert "force=true" in refused.reason
    assert refused.shortfall == pytest.approx(0.30)


def test_force_moves_to_a_worse_target_and_says_so() -> None:
    forced = check(0.74, 0.44, force=True)
    assert forced.allowed
    assert forced.reason.startswith("forced although the target is worse")


def test_unscored_versions_roll_back_with_a_warning() -> None:
    for champion, target in ((None, 0.7), (0.7, None), (math.nan, 0.7)):
        verdict = check(champion, target)
        assert verdict.allowed and verdict.shortfall is None
        assert verdict.reason.startswith("WARNING: not compared")


@given(champion=scores, target=scores, force=st.booleans())
def test_the_preflight_refuses_exactly_beyond_the_margin(
    champion: float, target: float, force: bool
) -> None:
    verdict = check(champion, target, force=force)
    assert verdict.allowed == (force or champion - target <= 0.02)
    mirrored = check(-champion, -target, force=force, higher=False)
    assert mirrored.allowed == verdict.allowed


def choose(**changes: object):
    settings = {"log_configured": True, "masked_features": [], "usable_rows": 500, "min_rows": 200}
    return choose_recent_data(**{**settings, **changes})  # type: ignore[arg-type]


def test_the_prediction_log_is_scored_when_enough_rows_logged_every_feature() -> None:
    choice = choose(usable_rows=200)
    assert choice.use_log
    assert "200 rows with every feature" in choice.reason


def test_too_few_usable_logged_rows_fall_back_to_the_source_and_say_how_many() -> None:
    choice = choose(usable_rows=199)
    assert not choice.use_log
    assert "holds 199 labeled rows with every feature, fewer than rollback.min_rows=200" in (
        choice.reason
    )


def test_a_masked_feature_rules_the_log_out_and_is_named() -> None:
    choice = choose(masked_features=["postcode", "age"], usable_rows=None)
    assert not choice.use_log
    assert "masks features the models read (age, postcode" in choice.reason


def test_an_unconfigured_or_unreadable_log_falls_back_to_the_source() -> None:
    assert "GATEWAY_LOG_URL" in choose(log_configured=False).reason
    unreadable = choose(usable_rows=None, unreadable="OperationalError: no such table")
    assert not unreadable.use_log
    assert "cannot be read: OperationalError: no such table" in unreadable.reason


@given(
    configured=st.booleans(),
    masked=st.lists(st.sampled_from(["a", "b", "c"]), max_size=2),
    rows=st.none() | st.integers(min_value=0, max_value=1000),
    min_rows=st.integers(min_value=1, max_value=1000),
    unreadable=st.sampled_from(["", "down"]),
)
def test_the_log_is_used_exactly_when_configured_clear_readable_and_large_enough(
    configured: bool, masked: list[str], rows: int | None, min_rows: int, unreadable: str
) -> None:
    choice = choose_recent_data(
        log_configured=configured,
        masked_features=masked,
        usable_rows=rows,
        min_rows=min_rows,
        unreadable=unreadable,
    )
    usable = configured and not masked and not unreadable and rows is not None
    assert choice.use_log == (usable and rows >= min_rows)  # type: ignore[operator]
    assert choice.reason
