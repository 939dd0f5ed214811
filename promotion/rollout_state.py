"""The state of one rollout as one typed record, and the pure transitions that move it along.

A rollout (canary or shadow) is at a step with a traffic share, knows when each step started and
what its last check said, and ends promoted, reverted or superseded; a promotion opens a guard
window with a verdict of its own. `registry` keeps the record in the ledger database (the truth)
and mirrors it onto the version as the one tag `rollout.state`, for people and the gateway.
Nothing here reads the clock: every transition is given `now`.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Literal

SCHEMA = 1
STATE_TAG = "rollout.state"
SHARE_TAG = "rollout.canary_share"
# MLflow 3 accepts model-version tag values of up to 100,000 characters; stores created before its
# Text migration hold 5,000. The mirror stays under the smaller, so it fits any store.
TAG_CHARS = 5000

Mode = Literal["canary", "shadow"]
Phase = Literal["running", "promoted", "reverted", "superseded"]
Outcome = Literal["promoted", "reverted", "superseded"]
GuardVerdict = Literal["kept", "ended", "reverted"]
Scalar = float | int | str | None

MODES: tuple[str, ...] = typing.get_args(Mode)
PHASES: tuple[str, ...] = typing.get_args(Phase)


class RolloutStateError(ValueError):
    """A stored rollout state cannot be read, or a transition does not fit the state it is applied
    to; the message names the version and the field."""


@dataclass(frozen=True)
class Decision:
    """A verdict the rollout reached: the action (wait, step_up, promote, revert, …), why, the
    numbers behind it, and when."""

    action: str
    reasons: tuple[str, ...]
    evidence: dict[str, Scalar] = field(default_factory=dict)
    at: str | None = None

    @property
    def reason(self) -> str:
        """Every reason in one line."""
        return "; ".join(self.reasons)


@dataclass(frozen=True)
class GuardWindow:
    """After a promotion: the previous champion and its level the new one is held to, until when,
    and the guard's last check and verdict (kept, ended, reverted)."""

    previous_champion: int
    previous_level: float | None
    promoted_at: str
    until: str | None
    status: str = ""
    checked_at: str | None = None
    verdict: GuardVerdict | None = None
    decision: Decision | None = None
    notice: str | None = None


@dataclass(frozen=True)
class RolloutState:
    """Where one version's rollout stands. `step` counts from 1 and `step_starts` holds when each
    step started; `share` is the canary's share of traffic (None for a shadow). `revision` counts
    the saves, so that two writers cannot silently overwrite each other (0: never saved)."""

    model: str
    version: int
    mode: Mode
    champion: int
    started_at: str
    started_by: str
    step: int
    share: float | None
    step_starts: tuple[str, ...]
    phase: Phase = "running"
    status: str = ""
    checked_at: str | None = None
    verdict: Decision | None = None
    decided_by: str | None = None
    decided_at: str | None = None
    notice: str | None = None
    guard: GuardWindow | None = None
    revision: int = 0

    def __post_init__(self) -> None:
        where = f"{self.model} v{self.version}: rollout state"
        if self.mode not in MODES:
            raise RolloutStateError(f"{where}: mode must be one of {MODES}, got {self.mode!r}")
        if self.phase not in PHASES:
            raise RolloutStateError(f"{where}: phase must be one of {PHASES}, got {self.phase!r}")
        if self.step < 1 or len(self.step_starts) != self.step:
            raise RolloutStateError(
                f"{where}: step {self.step} needs as many step_starts, got {len(self.step_starts)}"
            )
        if self.mode == "shadow" and (self.step != 1 or self.share is not None):
            raise RolloutStateError(f"{where}: a shadow has one step and no share")
        if self.mode == "canary" and not (self.share is not None and 0.0 <= self.share <= 1.0):
            raise RolloutStateError(f"{where}: share must be in [0, 1], got {self.share!r}")
        if self.revision < 0:
            raise RolloutStateError(f"{where}: revision must be ≥ 0, got {self.revision}")

    @property
    def running(self) -> bool:
        """The rollout has not concluded yet."""
        return self.phase == "running"

    @property
    def reason(self) -> str:
        """The last verdict's reasons in one line ('' before the first check)."""
        return "" if self.verdict is None else self.verdict.reason

    def to_json(self) -> str:
        """The compact, versioned JSON the ledger stores."""
        return _dumps(self)

    @classmethod
    def from_json(cls, text: str, where: str) -> RolloutState:
        """The record from `to_json`'s text; a wrong schema, an unknown field or a malformed value
        raises RolloutStateError naming `where` (the version it was read for) and the field."""
        try:
            data = json.loads(text)
        except ValueError as error:
            raise RolloutStateError(f"{where}: rollout state is not JSON: {error}") from error
        if not isinstance(data, dict):
            raise RolloutStateError(f"{where}: rollout state must be a JSON object")
        schema = data.pop("schema", None)
        if schema != SCHEMA:
            raise RolloutStateError(
                f"{where}: rollout state has schema {schema!r}; this release reads schema {SCHEMA}"
            )
        return _decode(cls, data, f"{where}: rollout state")


def to_tag(state: RolloutState, limit: int = TAG_CHARS) -> str:
    """The state as the version's `rollout.state` tag: the same JSON, with reasons and statuses
    shortened until it fits in `limit` characters (the ledger keeps them whole)."""
    text = _dumps(state)
    for chars in (1000, 300, 100, 20):
        if len(text) <= limit:
            return text
        text = _dumps(_shortened(state, chars))
    if len(text) > limit:
        raise ValueError(
            f"{state.model} v{state.version}: rollout state does not fit {limit} chars"
        )
    return text


def start(
    model: str,
    version: int,
    *,
    mode: Mode,
    champion: int,
    started_by: str,
    traffic_steps: Sequence[float],
    now: datetime,
    replacing: RolloutState | None = None,
) -> RolloutState:
    """A rollout starting now at its first step (a canary at the first traffic share); it replaces
    `replacing` (an earlier rollout of the same version) when given."""
    return RolloutState(
        model=model,
        version=version,
        mode=mode,
        champion=champion,
        started_at=_iso(now),
        started_by=started_by,
        step=1,
        share=float(traffic_steps[0]) if mode == "canary" else None,
        step_starts=(_iso(now),),
        status=f"{mode} started",
        revision=0 if replacing is None else replacing.revision,
    )


def record_wait(
    state: RolloutState, reasons: Sequence[str], evidence: Mapping[str, Scalar], now: datetime
) -> RolloutState:
    """The state after a check that asked to wait: the step stays, its status says why."""
    _require_running(state, "wait")
    decision = Decision("wait", tuple(reasons), dict(evidence), _iso(now))
    return replace(state, status=reasons[0], checked_at=_iso(now), verdict=decision)


def step_up(
    state: RolloutState,
    traffic_steps: Sequence[float],
    reasons: Sequence[str],
    evidence: Mapping[str, Scalar],
    now: datetime,
) -> RolloutState:
    """The canary moved to its next traffic step, which starts now."""
    _require_running(state, "step up")
    if state.mode != "canary" or state.step >= len(traffic_steps):
        raise RolloutStateError(
            f"{state.model} v{state.version}: a {state.mode} at step {state.step} of "
            f"{len(traffic_steps)} has no next step"
        )
    decision = Decision("step_up", tuple(reasons), dict(evidence), _iso(now))
    return replace(
        state,
        step=state.step + 1,
        share=float(traffic_steps[state.step]),
        step_starts=(*state.step_starts, _iso(now)),
        status=reasons[0],
        checked_at=_iso(now),
        verdict=decision,
    )


def conclude(
    state: RolloutState,
    outcome: Outcome,
    reasons: Sequence[str],
    evidence: Mapping[str, Scalar],
    *,
    decided_by: str,
    now: datetime,
    after_step: int | None = None,
    guard_until: datetime | None = None,
) -> RolloutState:
    """The rollout ended: promoted (which opens the guard window against the champion it was
    compared with, at the level the verdict measured), reverted, or superseded."""
    _require_running(state, "conclude")
    if outcome not in typing.get_args(Outcome):
        raise RolloutStateError(f"{state.model} v{state.version}: unknown outcome {outcome!r}")
    action = {"promoted": "promote", "reverted": "revert"}.get(outcome, outcome)
    decision = Decision(action, tuple(reasons), dict(evidence), _iso(now))
    guard = None
    if outcome == "promoted":
        level = evidence.get("champion_value")
        guard = GuardWindow(
            previous_champion=state.champion,
            previous_level=None if level is None else float(level),
            promoted_at=_iso(now),
            until=None if guard_until is None else _iso(guard_until),
        )
    step = f" after step {after_step}" if after_step else ""
    return replace(
        state,
        phase=outcome,
        status=outcome + step if outcome != "superseded" else f"superseded: {reasons[0]}",
        verdict=decision,
        decided_by=decided_by,
        decided_at=_iso(now),
        guard=guard,
    )


def with_notice(state: RolloutState, notice: str) -> RolloutState:
    """The state noting where the rollout's Slack notice went (or why it was not sent)."""
    return replace(state, notice=notice)


def guard_wait(
    state: RolloutState, reasons: Sequence[str], evidence: Mapping[str, Scalar], now: datetime
) -> RolloutState:
    """The guard window's check found nothing to act on yet."""
    guard = _require_guard(state, "check its guard window")
    decision = Decision("wait", tuple(reasons), dict(evidence), _iso(now))
    return replace(
        state,
        guard=replace(guard, status=reasons[-1], checked_at=_iso(now), decision=decision),
    )


def settle_guard(
    state: RolloutState,
    verdict: GuardVerdict,
    action: str,
    reasons: Sequence[str],
    evidence: Mapping[str, Scalar],
    now: datetime,
) -> RolloutState:
    """The guard window's verdict: the new champion was kept, the window ended with it moved
    elsewhere, or it was reverted to the previous champion."""
    guard = _require_guard(state, "settle its guard window")
    if verdict not in typing.get_args(GuardVerdict):
        raise RolloutStateError(
            f"{state.model} v{state.version}: unknown guard verdict {verdict!r}"
        )
    decision = Decision(action, tuple(reasons), dict(evidence), _iso(now))
    return replace(
        state,
        guard=replace(
            guard, verdict=verdict, status=verdict, checked_at=_iso(now), decision=decision
        ),
    )


def with_guard_notice(state: RolloutState, notice: str) -> RolloutState:
    """The state noting where the guard window's Slack notice went."""
    return replace(
        state, guard=replace(_require_guard(state, "note a guard notice"), notice=notice)
    )


def state_from_tags(model: str, version: int, tags: Mapping[str, str]) -> RolloutState | None:
    """The rollout state a version's tags show: its `rollout.state` mirror, else the loose tags a
    rollout started by an earlier release wrote; None when neither is there."""
    where = f"{model} v{version}"
    if STATE_TAG in tags:
        return RolloutState.from_json(tags[STATE_TAG], f"{where}: tag {STATE_TAG}")
    return from_legacy_tags(model, version, tags)


def legacy_tag_keys(tags: Mapping[str, str]) -> list[str]:
    """The loose `rollout.*` tags of an earlier release that the record replaces (all but the
    record's own tag and the gateway's share)."""
    return sorted(k for k in tags if k.startswith("rollout.") and k not in (STATE_TAG, SHARE_TAG))


_LEGACY_EVIDENCE_SKIP = {
    "canary_share", "step", "step_starts", "started_by", "started_at", "champion_version",
    "status", "verdict", "mode", "checked_at", "reason", "decided_by", "decided_at",
    "previous_champion", "previous_champion_level", "promoted_at", "guard_until", "notice",
}  # fmt: skip


def from_legacy_tags(model: str, version: int, tags: Mapping[str, str]) -> RolloutState | None:
    """The record of a rollout started by the release that kept its state in loose `rollout.*`
    tags (read once on upgrade, so a rollout under way survives it); None without such a rollout.
    """
    if "rollout.step_starts" not in tags:
        return None
    where = f"{model} v{version}: tag"

    def get(key: str, parse: typing.Callable[[str], object] = str, default: object = None):
        value = tags.get(f"rollout.{key}")
        if value is None or value == "":
            return default
        try:
            return parse(value)
        except ValueError as error:
            raise RolloutStateError(f"{where} rollout.{key}={value!r}: {error}") from error

    def starts(value: str) -> tuple[str, ...]:
        parsed = json.loads(value)
        if not (isinstance(parsed, list) and parsed and all(isinstance(s, str) for s in parsed)):
            raise ValueError("must be a JSON list of ISO times")
        return tuple(parsed)

    step_starts = get("step_starts", starts)
    mode = get("mode", default="canary")
    verdict = get("verdict")
    evidence = {
        key.removeprefix("rollout."): _scalar(value)
        for key, value in tags.items()
        if key.startswith("rollout.")
        and key.removeprefix("rollout.") not in _LEGACY_EVIDENCE_SKIP
        and not key.startswith("rollout.guard_")
        and key not in (STATE_TAG,)
    }
    reason = get("reason")
    decision = None
    if verdict is not None:
        action = {"promoted": "promote", "reverted": "revert"}.get(verdict, verdict)
        decision = Decision(action, (reason or "",), evidence, get("decided_at"))
    guard = None
    if get("promoted_at") is not None:
        guard_evidence = {
            key.removeprefix("rollout.guard_"): _scalar(value)
            for key, value in tags.items()
            if key.startswith("rollout.guard_")
            and key
            not in (
                "rollout.guard_until",
                "rollout.guard_status",
                "rollout.guard_verdict",
                "rollout.guard_reason",
                "rollout.guard_notice",
            )
        }
        guard_verdict = get("guard_verdict")
        guard_reason = get("guard_reason")
        guard = GuardWindow(
            previous_champion=get("previous_champion", int, get("champion_version", int)),
            previous_level=get("previous_champion_level", float),
            promoted_at=get("promoted_at"),
            until=get("guard_until"),
            status=get("guard_status", default=guard_verdict or ""),
            verdict=guard_verdict,
            decision=None
            if guard_reason is None
            else Decision(guard_verdict or "wait", (guard_reason,), guard_evidence),
            notice=get("guard_notice"),
        )
    data = {
        "model": model,
        "version": version,
        "mode": mode,
        "champion": get("champion_version", int),
        "started_at": get("started_at", default=step_starts[0]),
        "started_by": get("started_by", default="unknown"),
        "step": get("step", int, len(step_starts)),
        "share": get("canary_share", float) if mode == "canary" else None,
        "step_starts": step_starts,
        "phase": verdict or "running",
        "status": get("status", default=""),
        "checked_at": get("checked_at"),
        "verdict": decision,
        "decided_by": get("decided_by"),
        "decided_at": get("decided_at"),
        "notice": get("notice"),
        "guard": guard,
    }
    if data["champion"] is None:
        raise RolloutStateError(f"{where} rollout.champion_version is missing")
    if verdict is not None and verdict not in PHASES:
        raise RolloutStateError(f"{where} rollout.verdict={verdict!r}: not one of {PHASES[1:]}")
    try:
        return RolloutState(**data)
    except TypeError as error:
        raise RolloutStateError(f"{model} v{version}: loose rollout tags: {error}") from error


def _scalar(value: str) -> Scalar:
    for parse in (int, float):
        try:
            return parse(value)
        except ValueError:
            pass
    return None if value == "" else value


def _require_running(state: RolloutState, what: str) -> None:
    if not state.running:
        raise RolloutStateError(
            f"{state.model} v{state.version}: cannot {what}: the rollout was {state.phase} already"
        )


def _require_guard(state: RolloutState, what: str) -> GuardWindow:
    if state.phase != "promoted" or state.guard is None:
        raise RolloutStateError(
            f"{state.model} v{state.version}: cannot {what}: the version was not promoted by its "
            f"rollout (it is {state.phase})"
        )
    return state.guard


def _shortened(state: RolloutState, chars: int) -> RolloutState:
    def cut(text: str) -> str:
        return text if len(text) <= chars else text[: max(0, chars - 1)] + "…"

    def cut_decision(decision: Decision | None) -> Decision | None:
        if decision is None:
            return None
        return replace(decision, reasons=tuple(cut(r) for r in decision.reasons))

    guard = state.guard
    if guard is not None:
        guard = replace(
            guard,
            status=cut(guard.status),
            decision=cut_decision(guard.decision),
            notice=None if guard.notice is None else cut(guard.notice),
        )
    return replace(
        state,
        status=cut(state.status),
        verdict=cut_decision(state.verdict),
        notice=None if state.notice is None else cut(state.notice),
        guard=guard,
    )


def _dumps(state: RolloutState) -> str:
    return json.dumps({"schema": SCHEMA, **asdict(state)}, separators=(",", ":"))


def _decode(cls: type, data: object, where: str, path: str = "") -> object:
    """A dataclass of `cls` from JSON data, every field checked against its annotation; errors
    name the field by its dotted path (`verdict.evidence.e_value`)."""
    if not isinstance(data, dict):
        raise _malformed(where, path, f"must be a JSON object, got {data!r}")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise _malformed(where, _join(path, unknown[0]), "unknown field")
    values = {}
    for f in fields(cls):
        if f.name in data:
            values[f.name] = _value(hints[f.name], data[f.name], where, _join(path, f.name))
        elif f.default is MISSING and f.default_factory is MISSING:
            raise _malformed(where, _join(path, f.name), "is missing")
    try:
        return cls(**values)
    except RolloutStateError:
        raise
    except (TypeError, ValueError) as error:
        raise RolloutStateError(f"{where}: {error}") from error


def _value(hint: object, value: object, where: str, path: str) -> object:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if hint == Scalar:
            if not (number or isinstance(value, str)):
                raise _malformed(where, path, f"must be a number or text, got {value!r}")
            return value
        return _value(next(a for a in args if a is not type(None)), value, where, path)
    if origin is Literal:
        if value not in args:
            raise _malformed(where, path, f"must be one of {args}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise _malformed(where, path, f"must be a list, got {value!r}")
        return tuple(_value(args[0], item, where, f"{path}[{i}]") for i, item in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise _malformed(where, path, f"must be an object, got {value!r}")
        return {k: _value(args[1], v, where, _join(path, k)) for k, v in value.items()}
    if hint is float:
        if not number:
            raise _malformed(where, path, f"must be a number, got {value!r}")
        return float(value)  # type: ignore[arg-type]
    if hint is int:
        if not (number and isinstance(value, int)):
            raise _malformed(where, path, f"must be an integer, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise _malformed(where, path, f"must be text, got {value!r}")
        return value
    if dataclasses.is_dataclass(hint):
        return _decode(hint, value, where, path)  # type: ignore[arg-type]
    raise TypeError(f"no decoder for {hint!r}")  # a field type this module does not know


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _malformed(where: str, path: str, problem: str) -> RolloutStateError:
    return RolloutStateError(f"{where}: field {path!r}: {problem}")


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"a rollout time must carry its time zone, got {moment!r}")
    return moment.astimezone(UTC).isoformat()
