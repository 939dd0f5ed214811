"""The rollout's state as one record: its JSON round trip, its strict reading, its transitions."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promotion import rollout_state as rs
from promotion.rollout_state import RolloutState, RolloutStateError

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
STEPS = (0.05, 0.25, 0.5)


def canary(**changes: object) -> RolloutState:
    started = rs.start(
        "churn", 7, mode="canary", champion=6, started_by="promote_churn", traffic_steps=STEPS,
        now=T0,
    )  # fmt: skip
    return dataclasses.replace(started, **changes)


reasons = st.lists(st.text(max_size=400), min_size=1, max_size=4)
evidence = st.dictionaries(
    st.text(min_size=1, max_size=20),
    st.one_of(
        st.none(),
        st.integers(-(10**9), 10**9),
        st.floats(allow_nan=False),
        st.text(max_size=30),
    ),
    max_size=6,
)
# One check of the watch: wait, or step up when a step is left.
checks = st.lists(st.tuples(st.booleans(), reasons, evidence), max_size=8)


@st.composite
def watched(draw: st.DrawFn) -> tuple[RolloutState, list[RolloutState]]:
    """A canary after a drawn sequence of checks (and maybe its conclusion), with every state."""
    state, seen, now = canary(), [canary()], T0
    for step_up, why, numbers in draw(checks):
        now += timedelta(minutes=draw(st.integers(1, 120)))
        if step_up and state.step < len(STEPS):
            state = rs.step_up(state, STEPS, why, numbers, now)
        else:
            state = rs.record_wait(state, why, numbers, now)
        seen.append(state)
    outcome = draw(st.sampled_from([None, "promoted", "reverted", "superseded"]))
    if outcome is not None:
        state = rs.conclude(
            state, outcome, draw(reasons), draw(evidence), decided_by="rollout", now=now,
            guard_until=now + timedelta(minutes=30),
        )  # fmt: skip
        seen.append(state)
    return state, seen


@given(watched())
def test_a_state_reads_back_from_its_json_as_it_was(drawn: tuple[RolloutState, list]) -> None:
    state, _ = drawn
    assert RolloutState.from_json(state.to_json(), "churn v7") == state


@given(watched())
def test_the_step_only_grows_and_the_share_is_always_the_steps_share(
    drawn: tuple[RolloutState, list[RolloutState]],
) -> None:
    _, seen = drawn
    assert [s.step for s in seen] == sorted(s.step for s in seen)
    for state in seen:
        assert len(state.step_starts) == state.step
        assert state.share == STEPS[state.step - 1]
        assert list(state.step_starts) == sorted(state.step_starts)


@given(watched(), st.integers(200, 6000))
def test_the_mirror_tag_fits_its_limit_and_is_a_readable_state(
    drawn: tuple[RolloutState, list], limit: int
) -> None:
    state, _ = drawn
    long = rs.record_wait(state, ["x" * 9000], {}, T0) if state.running else state
    tag = rs.to_tag(long, max(limit, 2000))
    assert len(tag) <= max(limit, 2000)
    shown = RolloutState.from_json(tag, "churn v7")
    assert (shown.step, shown.share, shown.phase) == (long.step, long.share, long.phase)


def test_a_long_reason_is_shortened_on_the_tag_only() -> None:
    state = rs.record_wait(canary(), ["waiting: " + "n" * 8000], {"labeled": 3}, T0)
    shown = RolloutState.from_json(rs.to_tag(state), "churn v7")
    assert len(state.to_json()) > rs.TAG_CHARS >= len(rs.to_tag(state))
    assert shown.status.startswith("waiting: nnn") and shown.status.endswith("…")
    assert shown.verdict.evidence == {"labeled": 3}


def test_a_canary_cannot_step_past_its_last_step() -> None:
    last = canary(step=3, share=0.5, step_starts=(T0.isoformat(),) * 3)
    with pytest.raises(RolloutStateError, match="churn v7: a canary at step 3 of 3 has no next"):
        rs.step_up(last, STEPS, ["passed"], {}, T0)


def test_a_shadow_has_no_steps_to_climb() -> None:
    shadow = rs.start(
        "churn", 7, mode="shadow", champion=6, started_by="p", traffic_steps=STEPS, now=T0
    )
    assert (shadow.step, shadow.share) == (1, None)
    with pytest.raises(RolloutStateError, match="a shadow at step 1"):
        rs.step_up(shadow, STEPS, ["passed"], {}, T0)


def test_a_concluded_rollout_takes_no_more_checks() -> None:
    reverted = rs.conclude(canary(), "reverted", ["worse"], {}, decided_by="r", now=T0)
    with pytest.raises(RolloutStateError, match="cannot wait: the rollout was reverted already"):
        rs.record_wait(reverted, ["waiting"], {}, T0)


def test_a_promotion_opens_the_guard_window_at_the_champions_measured_level() -> None:
    promoted = rs.conclude(
        canary(), "promoted", ["better"], {"champion_value": 0.91}, decided_by="rollout_churn",
        now=T0, after_step=3, guard_until=T0 + timedelta(minutes=30),
    )  # fmt: skip
    assert (promoted.phase, promoted.status, promoted.decided_by) == (
        "promoted",
        "promoted after step 3",
        "rollout_churn",
    )
    assert promoted.guard == rs.GuardWindow(
        previous_champion=6,
        previous_level=0.91,
        promoted_at=T0.isoformat(),
        until=(T0 + timedelta(minutes=30)).isoformat(),
    )
    kept = rs.settle_guard(promoted, "kept", "keep", ["held up"], {"labeled": 400}, T0)
    assert (kept.guard.verdict, kept.guard.decision.evidence) == ("kept", {"labeled": 400})


def test_only_a_promoted_version_has_a_guard_window_to_settle() -> None:
    with pytest.raises(RolloutStateError, match="was not promoted by its rollout"):
        rs.guard_wait(canary(), ["fine"], {}, T0)


def test_a_state_of_another_schema_is_refused_with_the_version_it_was_read_for() -> None:
    data = json.loads(canary().to_json()) | {"schema": 2}
    with pytest.raises(RolloutStateError, match="churn v7: rollout state has schema 2; this"):
        RolloutState.from_json(json.dumps(data), "churn v7")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"color": "red"}, "field 'color': unknown field"),
        ({"step": "2"}, "field 'step': must be an integer, got '2'"),
        ({"share": None}, "share must be in"),
        ({"phase": "paused"}, "field 'phase': must be one of"),
        ({"step_starts": "2026-05-04"}, "field 'step_starts': must be a list"),
        ({"verdict": {"action": "wait"}}, "field 'verdict.reasons': is missing"),
        (
            {"verdict": {"action": "wait", "reasons": [], "evidence": {"n": [1]}}},
            "field 'verdict.evidence.n': must be a number or text",
        ),
    ],
)
def test_a_malformed_stored_state_names_the_version_and_field(change: dict, message: str) -> None:
    data = json.loads(canary().to_json()) | change
    with pytest.raises(RolloutStateError, match="churn v7") as raised:
        RolloutState.from_json(json.dumps(data), "churn v7")
    assert message in str(raised.value)


def test_a_missing_field_is_named() -> None:
    data = json.loads(canary().to_json())
    del data["champion"]
    with pytest.raises(RolloutStateError, match="field 'champion': is missing"):
        RolloutState.from_json(json.dumps(data), "churn v7")


def test_the_loose_tags_of_a_concluded_rollout_become_one_record() -> None:
    tags = {
        "rollout.mode": "canary",
        "rollout.started_at": T0.isoformat(),
        "rollout.started_by": "promote_churn",
        "rollout.champion_version": "6",
        "rollout.step": "1",
        "rollout.step_starts": json.dumps([T0.isoformat()]),
        "rollout.canary_share": "0.05",
        "rollout.status": "promoted after step 1",
        "rollout.verdict": "promoted",
        "rollout.reason": "step 1/3: better",
        "rollout.decided_by": "rollout_churn",
        "rollout.decided_at": T0.isoformat(),
        "rollout.metric": "accuracy",
        "rollout.champion_value": "0.9",
        "rollout.champion_labeled": "500",
        "rollout.previous_champion": "6",
        "rollout.previous_champion_level": "0.9",
        "rollout.promoted_at": T0.isoformat(),
        "rollout.guard_until": "",
        "rollout.guard_verdict": "kept",
        "rollout.guard_reason": "held up",
        "rollout.guard_labeled": "300",
        "rollout.notice": "not sent: SLACK_BOT_TOKEN is not set",
        "lineage.rows": "1000",
    }
    state = rs.from_legacy_tags("churn", 7, tags)
    assert (state.phase, state.step, state.share, state.champion) == ("promoted", 1, 0.05, 6)
    assert state.verdict == rs.Decision(
        "promote",
        ("step 1/3: better",),
        {"metric": "accuracy", "champion_value": 0.9, "champion_labeled": 500},
        T0.isoformat(),
    )
    assert (state.guard.verdict, state.guard.until, state.guard.previous_level) == (
        "kept",
        None,
        0.9,
    )
    assert state.guard.decision.evidence == {"labeled": 300}
    assert rs.legacy_tag_keys(tags) == sorted(
        k for k in tags if k.startswith("rollout.") and k != "rollout.canary_share"
    )


def test_a_version_without_rollout_tags_has_no_state() -> None:
    assert rs.state_from_tags("churn", 7, {"lineage.rows": "10"}) is None


def test_the_mirror_tag_is_read_before_any_loose_tag() -> None:
    state = canary()
    tags = {rs.STATE_TAG: rs.to_tag(state), "rollout.step_starts": "not json"}
    assert rs.state_from_tags("churn", 7, tags) == state


def test_the_rollout_state_imports_no_io_libraries() -> None:
    code = (
        "import sys, promotion.rollout_state; "
        "print(sorted({'mlflow', 'airflow', 'slack_sdk', 'sqlalchemy', 'numpy'} & "
        "{name.split('.')[0] for name in sys.modules}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
