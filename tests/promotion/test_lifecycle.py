"""The promotion state machine: which transitions it allows, what alias moves imply, its refusals."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promotion.lifecycle import (
    MOVE_KINDS,
    RECORD,
    RULES,
    State,
    TransitionRefused,
    check_transition,
    plan_move,
    plan_transition,
)

README = Path(__file__).resolve().parents[2] / "README.md"
ALIASES = ("challenger", "shadow", "canary", "champion")


def states_after(*transitions) -> dict[int, State]:
    return {t.version: t.to_state for t in transitions}


def test_the_happy_path_is_allowed_step_by_step() -> None:
    path = [
        (None, State.CANDIDATE, "candidate"),
        (State.CANDIDATE, State.EVALUATED, RECORD),
        (State.EVALUATED, State.APPROVED, RECORD),
        (State.APPROVED, State.SHADOW, "promote"),
        (State.SHADOW, State.CANARY, "promote"),
        (State.CANARY, State.CANARY, RECORD),
        (State.CANARY, State.CHAMPION, "promote"),
        (State.CHAMPION, State.RETIRED, "promote"),
        (State.RETIRED, State.CHAMPION, "rollback"),
    ]
    for current, target, cause in path:
        assert check_transition(current, target, cause=cause).allowed, (current, target, cause)


def test_a_rejected_version_made_champion_is_refused_with_the_way_out() -> None:
    verdict = check_transition(State.REJECTED, State.CHAMPION, cause="promote")
    assert not verdict.allowed
    assert "rejected → champion by promote is not allowed" in verdict.reason
    assert "set force=true to override" in verdict.reason


def test_force_allows_a_refused_transition_and_says_it_was_forced() -> None:
    verdict = check_transition(State.REJECTED, State.CHAMPION, cause="promote", force=True)
    assert verdict.allowed and verdict.forced
    assert verdict.reason.startswith("forced: ")


def test_an_allowed_transition_is_not_marked_forced_even_when_force_is_set() -> None:
    verdict = check_transition(State.EVALUATED, State.CHAMPION, cause="promote", force=True)
    assert verdict.allowed and not verdict.forced


def test_a_rollback_to_a_version_that_never_was_champion_is_refused() -> None:
    verdict = check_transition(State.EVALUATED, State.CHAMPION, cause="rollback")
    assert not verdict.allowed
    assert "it was never champion" in verdict.reason


def test_a_former_champion_cannot_be_promoted_again_only_rolled_back_to() -> None:
    assert not check_transition(State.RETIRED, State.CHAMPION, cause="promote").allowed
    assert check_transition(State.ROLLED_BACK, State.CHAMPION, cause="rollback").allowed


def test_promoting_a_candidate_records_its_evaluation_first() -> None:
    planned = plan_move(
        alias="champion",
        from_version=None,
        to_version=1,
        kind="promote",
        states={1: State.CANDIDATE},
        aliases={"challenger": 1},
    )
    assert [(t.version, t.from_state, t.to_state) for t in planned] == [
        (1, State.CANDIDATE, State.EVALUATED),
        (1, State.EVALUATED, State.CHAMPION),
    ]


def test_promoting_a_new_champion_retires_the_old_one() -> None:
    planned = plan_move(
        alias="champion",
        from_version=1,
        to_version=2,
        kind="promote",
        states={1: State.CHAMPION, 2: State.EVALUATED},
        aliases={"champion": 1},
    )
    assert states_after(*planned) == {1: State.RETIRED, 2: State.CHAMPION}


def test_a_rollback_marks_the_replaced_champion_rolled_back() -> None:
    planned = plan_move(
        alias="champion",
        from_version=2,
        to_version=1,
        kind="rollback",
        states={1: State.RETIRED, 2: State.CHAMPION},
        aliases={"champion": 2},
    )
    assert states_after(*planned) == {1: State.CHAMPION, 2: State.ROLLED_BACK}


def test_a_rollback_while_a_canary_runs_is_refused_until_the_canary_is_cleared() -> None:
    states = {1: State.RETIRED, 2: State.CHAMPION, 3: State.CANARY}
    with pytest.raises(TransitionRefused, match="canary v3 is still running; clear the canary"):
        plan_move(
            alias="champion",
            from_version=2,
            to_version=1,
            kind="rollback",
            states=states,
            aliases={"champion": 2, "canary": 3},
        )
    cleared = plan_move(
        alias="canary",
        from_version=3,
        to_version=None,
        kind="rollback",
        states=states,
        aliases={"champion": 2, "canary": 3},
    )
    assert states_after(*cleared) == {3: State.REVERTED}


def test_clearing_the_canary_after_it_became_champion_changes_no_state() -> None:
    planned = plan_move(
        alias="canary",
        from_version=3,
        to_version=None,
        kind="promote",
        states={3: State.CHAMPION},
        aliases={"champion": 3, "canary": 3},
    )
    assert planned == ()


def test_a_canary_replaced_by_another_version_is_reverted() -> None:
    planned = plan_move(
        alias="canary",
        from_version=3,
        to_version=4,
        kind="promote",
        states={3: State.CANARY, 4: State.APPROVED},
        aliases={"canary": 3},
    )
    assert states_after(*planned) == {3: State.REVERTED, 4: State.CANARY}


def test_rejecting_the_challenger_rejects_its_version() -> None:
    planned = plan_move(
        alias="challenger",
        from_version=5,
        to_version=None,
        kind="reject",
        states={5: State.EVALUATED},
        aliases={"challenger": 5},
    )
    assert states_after(*planned) == {5: State.REJECTED}


def test_rejecting_a_challenger_the_workflow_never_recorded_rejects_it() -> None:
    planned = plan_move(
        alias="challenger",
        from_version=5,
        to_version=None,
        kind="reject",
        states={},
        aliases={"challenger": 5},
    )
    assert states_after(*planned) == {5: State.REJECTED}


def test_an_unrecorded_version_goes_through_evaluated_champion_and_retired() -> None:
    evaluated = plan_transition(5, None, State.EVALUATED)
    assert evaluated is not None and evaluated.to_state is State.EVALUATED
    promoted = plan_move(
        alias="champion",
        from_version=2,
        to_version=5,
        kind="promote",
        states={2: State.CHAMPION, 5: State.EVALUATED},
        aliases={"champion": 2, "challenger": 5},
    )
    assert states_after(*promoted) == {2: State.RETIRED, 5: State.CHAMPION}
    cleared = plan_move(
        alias="challenger",
        from_version=5,
        to_version=None,
        kind="promote",
        states={2: State.RETIRED, 5: State.CHAMPION},
        aliases={"champion": 5, "challenger": 5},
    )
    assert cleared == ()
    replaced = plan_move(
        alias="champion",
        from_version=5,
        to_version=6,
        kind="promote",
        states={6: State.EVALUATED},
        aliases={"champion": 5},
    )
    assert states_after(*replaced) == {5: State.RETIRED, 6: State.CHAMPION}


@given(
    st.sampled_from([None, State.CANDIDATE, State.EVALUATED, State.APPROVED]),
    st.sampled_from(MOVE_KINDS),
    st.one_of(st.none(), st.integers(6, 8)),
)
def test_leaving_challenger_never_reverts_a_version(
    current: State | None, kind: str, to_version: int | None
) -> None:
    """`challenger` is no state of its own: whatever the version's recorded state (none at all
    for a version registered outside the workflow), leaving it rejects it or changes nothing."""
    try:
        planned = plan_move(
            alias="challenger",
            from_version=5,
            to_version=to_version,
            kind=kind,
            states={} if current is None else {5: current},
            aliases={"challenger": 5},
        )
    except TransitionRefused:
        return
    leaving = [t for t in planned if t.version == 5]
    assert all(t.to_state is State.REJECTED for t in leaving)
    assert bool(leaving) == (kind == "reject")


def test_a_reverted_canary_cannot_come_back_without_force() -> None:
    with pytest.raises(TransitionRefused, match="v3: reverted → canary by promote"):
        plan_move(
            alias="canary",
            from_version=None,
            to_version=3,
            kind="promote",
            states={3: State.REVERTED},
            aliases={},
        )


def test_states_that_follow_from_aliases_cannot_be_recorded_directly() -> None:
    with pytest.raises(TransitionRefused, match="champion follows from an alias move"):
        plan_transition(2, State.APPROVED, State.CHAMPION)
    with pytest.raises(TransitionRefused, match="move the alias first"):
        plan_transition(2, State.APPROVED, State.CANARY)


def test_recording_the_state_a_version_is_in_changes_nothing_but_a_canary_steps_up() -> None:
    assert plan_transition(2, State.APPROVED, State.APPROVED) is None
    step = plan_transition(2, State.CANARY, State.CANARY)
    assert step is not None and step.to_state is State.CANARY


def test_approval_needs_an_evaluation_first() -> None:
    with pytest.raises(
        TransitionRefused, match="approved by record is reached only from evaluated"
    ):
        plan_transition(2, State.CANDIDATE, State.APPROVED)


moves = st.tuples(
    st.sampled_from(ALIASES),
    st.one_of(st.none(), st.integers(1, 4)),
    st.sampled_from(MOVE_KINDS),
)
records = st.tuples(
    st.integers(1, 4),
    st.sampled_from([State.EVALUATED, State.APPROVED, State.REJECTED, State.CANARY]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(moves, records), max_size=30))
def test_every_accepted_history_keeps_aliases_and_states_in_step(steps: list[tuple]) -> None:
    """Whatever is attempted, unforced: what is accepted follows the rules, the champion alias and
    the champion state agree, and a rejected or reverted version never answers traffic again."""
    aliases: dict[str, int] = {}
    states: dict[int, State] = {}
    ever_given_up: set[int] = set()
    for step in steps:
        try:
            if len(step) == 3:
                alias, to_version, kind = step
                planned = plan_move(
                    alias=alias,
                    from_version=aliases.get(alias),
                    to_version=to_version,
                    kind=kind,
                    states=states,
                    aliases=aliases,
                )
            else:
                version, target = step
                change = plan_transition(version, states.get(version), target)
                planned = () if change is None else (change,)
        except TransitionRefused:
            continue
        for transition in planned:
            assert check_transition(
                transition.from_state, transition.to_state, cause=transition.cause
            ).allowed, transition
            assert transition.from_state == states.get(transition.version)
            states[transition.version] = transition.to_state
            if transition.to_state in (State.REJECTED, State.REVERTED):
                ever_given_up.add(transition.version)
        if len(step) == 3:
            alias, to_version, _ = step
            if to_version is None:
                aliases.pop(alias, None)
            else:
                aliases[alias] = to_version
        champions = {v for v, s in states.items() if s is State.CHAMPION}
        assert champions == ({aliases["champion"]} if "champion" in aliases else set())
        serving = {aliases[a] for a in ("canary", "champion") if a in aliases}
        assert not serving & ever_given_up


@given(
    st.one_of(st.none(), st.sampled_from(list(State))),
    st.sampled_from(list(State)),
    st.sampled_from((RECORD, *MOVE_KINDS)),
)
def test_force_allows_exactly_what_the_rules_refuse(
    current: State | None, target: State, cause: str
) -> None:
    plain = check_transition(current, target, cause=cause)
    forced = check_transition(current, target, cause=cause, force=True)
    assert forced.allowed
    assert forced.forced == (not plain.allowed)
    in_rules = any(current in r.sources and r.target is target and cause in r.causes for r in RULES)
    assert plain.allowed == in_rules


def mermaid_edges(text: str) -> set[tuple[str, str, str]]:
    block = re.search(r"```mermaid\nstateDiagram-v2\n(.*?)```", text, re.S)
    assert block, "README has no mermaid stateDiagram-v2 of the lifecycle"
    edges = set()
    for line in block.group(1).splitlines():
        found = re.match(r"\s*(\S+) --> (\S+) : (.+)$", line)
        if found:
            edges.add((found[1], found[2], found[3].strip()))
    return edges


def test_the_readme_drawing_is_the_machine_in_the_code() -> None:
    expected = {
        ("[*]" if source is None else str(source), str(rule.target), ", ".join(sorted(rule.causes)))
        for rule in RULES
        for source in rule.sources
    }
    assert mermaid_edges(README.read_text()) == expected


def test_the_lifecycle_module_is_plain_python() -> None:
    script = (
        "import json, sys, promotion.lifecycle\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'numpy', 'scipy', 'mlflow', 'airflow', 'sqlalchemy', 'slack_sdk', 'pandas'})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
