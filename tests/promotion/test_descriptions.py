"""The text the MLflow pages show: state lines, version descriptions, the alias-history table."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from promotion.descriptions import (
    MAX_DESCRIPTION_CHARS,
    history_table,
    model_description,
    state_line,
    version_description,
)
from promotion.lifecycle import State, StateChange
from promotion.records import AliasMove

AT = "2026-02-01T08:30:00+00:00"


def change(state: State, cause: str = "promote", reason: str = "better") -> StateChange:
    return StateChange(1, 3, None, state, cause, AT, "promote_churn/run-1", reason)


def move(sequence: int, reason: str = "better", **evidence: object) -> AliasMove:
    return AliasMove(
        sequence, "champion", sequence, sequence + 1, "promote", AT, "me", reason, evidence
    )


def test_a_retired_version_names_the_champion_that_replaced_it() -> None:
    line = state_line(change(State.RETIRED), 3, {"champion": 4})
    assert line == (
        "**State: retired** on 2026-02-01 08:30 UTC, superseded by a promotion by "
        "`promote_churn/run-1`; champion is now v4. Holds no alias."
    )


def test_the_state_line_gives_the_reason_of_the_move_a_person_wrote() -> None:
    restored = change(State.CHAMPION, "rollback", "bad AUC (a former champion put back)")
    rollback = AliasMove(9, "champion", 4, 3, "rollback", AT, "alice", "bad AUC")
    line = state_line(restored, 3, {"champion": 3, "challenger": 3}, rollback)
    assert ": bad AUC. Aliases now: `challenger`, `champion`." in line


def test_an_unrecorded_version_says_so() -> None:
    assert state_line(None, 2, {}).startswith("**State: unrecorded** (nothing in the alias history")


def test_a_new_state_line_replaces_the_old_and_keeps_evaluation_and_note() -> None:
    old = "**State: candidate** since …\n\n---\n\n**Evaluation: promote**\n\n---\n\nTrained on X."
    assert version_description(old, state="**State: champion** since now.") == (
        "**State: champion** since now.\n\n---\n\n**Evaluation: promote**\n\n---\n\nTrained on X."
    )
    assert version_description("Trained on X.", evaluation="**Evaluation: reject**") == (
        "**Evaluation: reject**\n\n---\n\nTrained on X."
    )


def test_a_long_evaluation_summary_gives_way_so_the_description_fits() -> None:
    text = version_description(
        "Trained on X.",
        state="**State: champion** since now.",
        evaluation="**Evaluation" + "x" * 6000,
    )
    assert len(text) == MAX_DESCRIPTION_CHARS
    assert text.startswith("**State: champion** since now.") and text.endswith("Trained on X.")


def test_history_numbers_are_rounded_and_empty_ones_left_out() -> None:
    table = history_table([move(1, roc_auc=0.8123456789, rows="1200", ci_low=None)], 5000)
    assert table.splitlines()[-1].endswith("| roc_auc 0.8123, rows 1200 |")


def test_a_pipe_in_a_reason_does_not_break_the_table() -> None:
    row = history_table([move(1, reason="a | b")], 5000).splitlines()[-1]
    assert row.count(" | ") == 6 and "a \\| b" in row


def test_the_model_description_keeps_its_own_text_above_the_history() -> None:
    first = model_description("Churn model.", [move(1)])
    second = model_description(first, [move(1), move(2)])
    assert second.startswith("Churn model.\n\n---\n\n### Alias history")
    assert second.count("### Alias history") == 1 and second.count("| `champion` |") == 2


@given(
    moves=st.integers(0, 300),
    reason=st.text(min_size=0, max_size=400),
    base=st.text(max_size=3000).filter(lambda t: "### Alias history" not in t),
)
def test_the_model_description_always_fits_mlflows_column(
    moves: int, reason: str, base: str
) -> None:
    history = [move(i + 1, reason=reason, roc_auc=0.123456789) for i in range(moves)]
    text = model_description(base, history)
    assert len(text) <= MAX_DESCRIPTION_CHARS
    shown = text.count("| `champion` |")
    if shown < moves:
        assert f"{moves - shown} older move(s)" in text
