"""The promotion lifecycle of a model version, as one state machine.

candidate → evaluated → (approved) → shadow or canary step n → champion, with the exits rejected,
reverted, retired (replaced by a promotion) and rolled_back (replaced by a rollback). The registry
records every transition in its ledger and asks this module first: `check_transition` for a state
a caller records, `plan_move` for the transitions an alias move implies. Plain Python, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class State(StrEnum):
    """Where a version is in its promotion lifecycle."""

    CANDIDATE = "candidate"
    EVALUATED = "evaluated"
    APPROVED = "approved"
    SHADOW = "shadow"
    CANARY = "canary"
    CHAMPION = "champion"
    REJECTED = "rejected"
    REVERTED = "reverted"
    RETIRED = "retired"
    ROLLED_BACK = "rolled_back"


# What moves a version from one state to another: "record" is a decision recorded on its own
# (registry.record_transition); the others are the `kind` of the alias move that implies it.
RECORD = "record"
MOVE_KINDS = ("candidate", "promote", "reject", "revert", "rollback")

# The aliases whose arrival puts a version in a state of the same name.
ALIAS_STATES: Mapping[str, State] = {
    "shadow": State.SHADOW,
    "canary": State.CANARY,
    "champion": State.CHAMPION,
}
CHALLENGER_ALIAS = "challenger"
_GIVE_UP = frozenset({"reject", "revert", "rollback"})
_RETURN = frozenset({"rollback", "revert"})
_CHAMPION_KINDS = _RETURN | {"promote"}
_BEFORE_ROLLOUT = frozenset({None, State.CANDIDATE, State.EVALUATED, State.APPROVED})


@dataclass(frozen=True)
class Rule:
    """One allowed transition: from any of `sources` to `target`, caused by one of `causes`.

    A source of None stands for a version registered before anything was recorded about it.
    """

    sources: frozenset[State | None]
    target: State
    causes: frozenset[str]
    meaning: str


def _rule(sources: set[State | None], target: State, causes: set[str], meaning: str) -> Rule:
    return Rule(frozenset(sources), target, frozenset(causes), meaning)


RULES: tuple[Rule, ...] = (
    _rule(
        {None}, State.CANDIDATE, {RECORD, "candidate"}, "registered by training as the challenger"
    ),
    _rule({None, State.CANDIDATE}, State.EVALUATED, {RECORD, "promote"}, "passed the evaluation"),
    _rule({State.EVALUATED}, State.APPROVED, {RECORD}, "approved by a human"),
    _rule(
        {None, State.CANDIDATE, State.EVALUATED, State.APPROVED},
        State.REJECTED,
        {RECORD, "reject"},
        "failed its evaluation or approval",
    ),
    _rule(
        {State.EVALUATED, State.APPROVED},
        State.SHADOW,
        {"promote"},
        "receives a copy of live traffic",
    ),
    _rule(
        {State.EVALUATED, State.APPROVED, State.SHADOW},
        State.CANARY,
        {"promote"},
        "serves a first share of traffic",
    ),
    _rule({State.CANARY}, State.CANARY, {RECORD}, "steps up to the next canary share"),
    _rule(
        {State.EVALUATED, State.APPROVED, State.SHADOW, State.CANARY},
        State.CHAMPION,
        {"promote"},
        "promoted: serves all traffic",
    ),
    _rule(
        {State.RETIRED, State.ROLLED_BACK},
        State.CHAMPION,
        set(_RETURN),
        "a former champion put back",
    ),
    _rule({State.CHAMPION}, State.RETIRED, {"promote"}, "replaced by a promoted version"),
    _rule({State.CHAMPION}, State.ROLLED_BACK, set(_RETURN), "replaced by a rollback"),
    _rule(
        {State.SHADOW, State.CANARY},
        State.REVERTED,
        _GIVE_UP | {"promote"},
        "taken out of its rollout: given up, or replaced by another version",
    ),
)


class TransitionRefused(ValueError):
    """The lifecycle does not allow a transition; the message says why and how to proceed."""


@dataclass(frozen=True)
class TransitionCheck:
    """Whether a transition is allowed, and the rule (or the refusal) that says so."""

    allowed: bool
    reason: str
    forced: bool = False


@dataclass(frozen=True)
class Transition:
    """A planned change of one version's state, and its cause (RECORD or a move's kind)."""

    version: int
    from_state: State | None
    to_state: State
    cause: str
    reason: str
    forced: bool = False


@dataclass(frozen=True)
class StateChange:
    """One recorded transition: which version, from which state to which, who, when and why."""

    sequence: int
    version: int
    from_state: State | None
    to_state: State
    cause: str
    at: str
    actor: str
    reason: str
    evidence: dict[str, float | int | str | None] = field(default_factory=dict)
    forced: bool = False
    alias_move: int | None = None


def describe(state: State | None) -> str:
    """A state's name, or what an unrecorded state means."""
    return "unrecorded (registered before the lifecycle was recorded)" if state is None else state


def check_transition(
    current: State | None, target: State, *, cause: str, force: bool = False
) -> TransitionCheck:
    """Is `current` → `target`, caused by `cause`, allowed? `force` allows any transition.

    A refusal names the version's state, what the target may be reached from, and the way out.
    """
    for rule in RULES:
        if current in rule.sources and rule.target is target and cause in rule.causes:
            return TransitionCheck(True, rule.meaning)
    sources = sorted(
        {describe(s) for r in RULES if r.target is target and cause in r.causes for s in r.sources}
    )
    if target is State.CHAMPION and cause in _RETURN:
        refusal = (
            f"a {cause} only returns to a version that was champion before "
            f"(retired or rolled_back), and this one is {describe(current)}: it was never champion"
        )
    elif not sources:
        refusal = f"nothing reaches {target} by {cause}"
    else:
        refusal = (
            f"{describe(current)} → {target} by {cause} is not allowed; "
            f"{target} by {cause} is reached only from {', '.join(sources)}"
        )
    if force:
        return TransitionCheck(True, f"forced: {refusal}", forced=True)
    return TransitionCheck(False, f"{refusal}; set force=true to override")


def _checked(
    version: int, current: State | None, target: State, cause: str, force: bool
) -> Transition:
    verdict = check_transition(current, target, cause=cause, force=force)
    if not verdict.allowed:
        raise TransitionRefused(f"v{version}: {verdict.reason}")
    return Transition(version, current, target, cause, verdict.reason, verdict.forced)


def plan_transition(
    version: int, current: State | None, target: State, *, force: bool = False
) -> Transition | None:
    """The transition a recorded decision makes, None when the version is already there.

    Only decisions that move no alias are recorded this way (evaluated, approved, rejected, the
    next canary step); shadow, canary, champion and their exits follow from alias moves.
    """
    if current is target and target is not State.CANARY:
        return None
    if target in (State.SHADOW, State.CHAMPION, State.RETIRED, State.ROLLED_BACK, State.REVERTED):
        raise TransitionRefused(
            f"v{version}: {target} follows from an alias move; move the alias instead"
        )
    if target is State.CANARY and current is not State.CANARY:
        raise TransitionRefused(
            f"v{version}: a canary starts when the canary alias reaches it; move the alias first"
        )
    return _checked(version, current, target, RECORD, force)


def plan_move(
    *,
    alias: str,
    from_version: int | None,
    to_version: int | None,
    kind: str,
    states: Mapping[int, State],
    aliases: Mapping[str, int],
    force: bool = False,
) -> tuple[Transition, ...]:
    """The transitions an alias move implies, in order; raises TransitionRefused when not allowed.

    `states` holds each version's current state (absent: unrecorded), `aliases` the model's aliases
    before the move. A promote move to a candidate implies its evaluation, since the promotion
    verdict is that evaluation. Clearing shadow or canary by a promote leaves the version's state
    to the champion move, in either order; giving it up (reject, revert, rollback) or putting
    another version there reverts it. A rollback of `champion` is refused while a canary runs:
    the canary is cleared first, so the rollback is not followed by a promotion of the canary.
    """
    if from_version == to_version:
        return ()
    if alias == "champion" and kind not in _CHAMPION_KINDS and not force:
        raise TransitionRefused(
            f"champion moves only by {', '.join(sorted(_CHAMPION_KINDS))}, not by {kind}"
        )
    planned: list[Transition] = []
    if alias == "champion" and kind in _RETURN and "canary" in aliases and not force:
        raise TransitionRefused(
            f"canary v{aliases['canary']} is still running; clear the canary alias before the "
            f"{kind} of champion"
        )
    if from_version is not None:
        leaving = _departure(alias, from_version, to_version, kind, states.get(from_version))
        if leaving is not None:
            planned.append(leaving)
    if to_version is not None:
        planned.extend(_arrival(alias, to_version, kind, states.get(to_version), force))
    return tuple(planned)


def _departure(
    alias: str, version: int, to_version: int | None, kind: str, current: State | None
) -> Transition | None:
    """What leaving `alias` does to a version: a consequence, not checked against the rules, so
    a version made champion before anything was recorded can still be replaced."""
    if alias == "champion":
        target = State.ROLLED_BACK if kind in _RETURN else State.RETIRED
        return Transition(version, current, target, kind, f"champion moved on ({kind})")
    # Only an alias that is a state of its own (shadow, canary) reverts the version it leaves; a
    # version that was never recorded (registered and aliased outside the workflow) is in no state,
    # which must not read as "in the state of an alias that has none", such as challenger.
    held = ALIAS_STATES.get(alias)
    if held is not None and held is current and (to_version is not None or kind in _GIVE_UP):
        return Transition(version, current, State.REVERTED, kind, f"{alias} left it ({kind})")
    if alias == CHALLENGER_ALIAS and kind == "reject" and current in _BEFORE_ROLLOUT:
        return Transition(version, current, State.REJECTED, kind, "challenger rejected")
    return None


def _arrival(
    alias: str, version: int, kind: str, current: State | None, force: bool
) -> list[Transition]:
    if alias == CHALLENGER_ALIAS:
        if current is None:
            return [_checked(version, None, State.CANDIDATE, "candidate", force)]
        return []
    target = ALIAS_STATES.get(alias)
    if target is None or current is target:
        return []
    steps: list[Transition] = []
    if kind == "promote" and current in (None, State.CANDIDATE):
        steps.append(
            Transition(version, current, State.EVALUATED, kind, "implied: its promotion verdict")
        )
        current = State.EVALUATED
    steps.append(_checked(version, current, target, kind, force))
    return steps


def current_states(changes: list[StateChange]) -> dict[int, State]:
    """Each version's state after a history of changes (oldest first)."""
    return {change.version: change.to_state for change in changes}
