"""The champion summary and the rollback form text made from it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from promotion.champion_summary import (
    ChampionSummary,
    champion_summary,
    readable_time,
    version_description,
)
from promotion.decisions import NothingToRollBack, rollback_target
from promotion.records import CHAMPION, AliasMove


def move(sequence: int, to: int | None, frm: int | None, kind: str = "promote") -> AliasMove:
    at = f"2026-06-{sequence:02d}T08:30:00+00:00"
    return AliasMove(sequence, CHAMPION, frm, to, kind, at, "test", "why")  # type: ignore[arg-type]


AS_OF = "2026-06-30T12:00:00+00:00"


def test_the_summary_names_the_champion_and_the_default_target_with_their_times() -> None:
    history = [move(1, 1, None), move(2, 2, 1), move(3, 3, 2)]
    summary = champion_summary("churn", history, current_champion=3, as_of=AS_OF)
    assert (summary.champion, summary.champion_since) == (3, "2026-06-03T08:30:00+00:00")
    assert (summary.target, summary.target_until) == (2, "2026-06-03T08:30:00+00:00")
    assert summary.target_reason.startswith("most recent former champion not rolled back from: v2")


def test_after_a_rollback_the_summary_skips_the_version_rolled_back_from() -> None:
    history = [move(1, 1, None), move(2, 2, 1), move(3, 3, 2), move(4, 2, 3, kind="rollback")]
    summary = champion_summary("churn", history, current_champion=2, as_of=AS_OF)
    assert (summary.champion, summary.target, summary.target_until) == (
        2,
        1,
        "2026-06-02T08:30:00+00:00",
    )


def test_without_a_target_the_summary_says_why() -> None:
    summary = champion_summary("churn", [move(1, 1, None)], current_champion=1, as_of=AS_OF)
    assert summary.target is None and summary.target_until is None
    assert "no previous champion" in summary.target_reason


@st.composite
def histories(draw: st.DrawFn) -> list[AliasMove]:
    moves, champion = [], None
    for sequence in range(1, draw(st.integers(min_value=1, max_value=8)) + 1):
        to = draw(st.integers(min_value=1, max_value=5).filter(lambda v, now=champion: v != now))
        kind = draw(st.sampled_from(["promote", "rollback", "revert"])) if champion else "promote"
        moves.append(move(sequence, to, champion, kind))
        champion = to
    return moves


@given(history=histories())
def test_the_form_shows_the_target_a_default_rollback_would_plan(
    history: list[AliasMove],
) -> None:
    current = history[-1].to_version
    summary = champion_summary("churn", history, current_champion=current, as_of=AS_OF)
    try:
        planned = rollback_target(history, current_champion=current).to_version
    except NothingToRollBack:
        planned = None
    assert summary.target == planned


def test_the_version_field_shows_champion_target_why_and_as_of_when() -> None:
    history = [move(1, 1, None), move(2, 2, 1)]
    text = version_description(champion_summary("churn", history, current_champion=2, as_of=AS_OF))
    assert "- Current champion: **v2** since 2026-06-02 08:30 UTC" in text
    assert (
        "- Default target (this field empty): **v1**, champion until 2026-06-02 08:30 UTC: "
        "most recent former champion not rolled back from: v1" in text
    )
    assert "_As of 2026-06-30 12:00 UTC" in text


def test_the_version_field_without_a_summary_says_why_nothing_is_shown() -> None:
    text = version_description(None, "PROMOTION_CHAMPIONS_DIR is not set")
    assert text.startswith("Version to make champion. Empty: the most recent former champion")
    assert text.endswith("not shown: PROMOTION_CHAMPIONS_DIR is not set._")


def test_a_summary_survives_its_json_form() -> None:
    summary = ChampionSummary("churn", AS_OF, 2, "2026-06-02T08:30:00+00:00", None, "none", None)
    assert ChampionSummary.from_json_dict(summary.to_json_dict()) == summary


def test_times_are_shown_in_utc() -> None:
    assert readable_time("2026-06-30T14:00:00+02:00") == "2026-06-30 12:00 UTC"
    assert readable_time("2026-06-30T12:00:00") == "2026-06-30 12:00 UTC"
    assert readable_time("yesterday") == "yesterday"
