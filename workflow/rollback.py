"""Task bodies of rollback_<model>: choose the version `champion` returns to, then move it.

A rollback cannot make things worse: its target must have been champion (unless forced), still
exist and still load; a running canary is cleared first; and the move is a compare-and-set on the
champion the plan saw, so a rollback planned before another move changes nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import registry
from policies.schema import Policy
from promotion.decisions import NothingToRollBack, RollbackPlan, rollback_target
from promotion.records import CANARY, CHAMPION
from workflow.params import require_version
from workflow.runs import RunContext


@dataclass(frozen=True)
class PlannedRollback:
    """What plan_rollback hands to apply_rollback over XCom: the champion move, the canary the
    plan saw (cleared first), and whether the move is forced."""

    from_version: int
    to_version: int
    reason: str
    canary: int | None
    force: bool

    def to_xcom(self) -> dict:
        """The JSON-able form a task returns."""
        return asdict(self)

    @classmethod
    def from_xcom(cls, value: dict) -> PlannedRollback:
        """The record from what `to_xcom` returned."""
        return cls(**value)


def plan(
    policy: Policy, requested_version: int | None, force: bool, run: RunContext | None = None
) -> PlannedRollback:
    """The rollback plan; raises ParamError when the requested version does not exist, and
    NothingToRollBack (nothing moved) when there is no valid target.

    Given its `run`, a rerun of a run that already rolled back plans that same move again, so
    clearing the whole run cannot undo its own rollback.
    """
    name = policy.model_name
    if requested_version is not None:
        require_version(name, requested_version)
    history = registry.alias_history(name, CHAMPION)
    done = next(
        (
            m
            for m in reversed(history)
            if run is not None and (m.actor, m.kind) == (run.actor, "rollback")
        ),
        None,
    )
    if done is not None and done.from_version is not None and done.to_version is not None:
        target = RollbackPlan(done.from_version, done.to_version, "already done by this run")
    else:
        target = rollback_target(
            history,
            current_champion=registry.get_alias_version(name, CHAMPION),
            requested_version=requested_version,
            force=force,
        )
    _require_loadable(name, target.to_version)
    return PlannedRollback(
        **asdict(target), canary=registry.get_alias_version(name, CANARY), force=force
    )


def _require_loadable(name: str, version: int) -> None:
    try:
        info = registry.get_version(name, version)
    except Exception as error:
        raise NothingToRollBack(
            f"version {version} cannot be read from the registry (deleted?): {error}"
        ) from error
    if info.status != "READY":
        raise NothingToRollBack(f"version {version} is {info.status}, not READY")
    try:
        registry.load_model(name, version)
    except Exception as error:
        raise NothingToRollBack(
            f"version {version}'s artifacts no longer load ({type(error).__name__}: {error}); "
            "roll back to another version, or restore its artifacts"
        ) from error


def apply(policy: Policy, planned: PlannedRollback, reason: str, run: RunContext) -> dict:
    """Clear a running canary, then move `champion` as planned, unless either moved since the plan.

    A retried task finds its moves done and changes nothing; a refusal raises NothingToRollBack
    with the reason, and nothing of this rollback moves.
    """
    name = policy.model_name
    canary, force = planned.canary, planned.force
    target = RollbackPlan(planned.from_version, planned.to_version, planned.reason)
    try:
        if canary is not None:
            registry.move_alias(
                name,
                CANARY,
                None,
                kind="rollback",
                actor=run.actor,
                reason=f"canary cleared before the rollback of champion: {reason}",
                expected_from=canary,
            )
        registry.move_alias(
            name,
            CHAMPION,
            target.to_version,
            kind="rollback",
            actor=run.actor,
            reason=f"{reason} ({target.reason})",
            evidence={"from_version": target.from_version},
            expected_from=target.from_version,
            force=force,
        )
    except registry.MoveRefused as refusal:
        raise NothingToRollBack(f"{refusal}; trigger the rollback again") from refusal
    registry.set_version_tags(
        name,
        target.from_version,
        {"promotion.rolled_back_by": run.actor, "promotion.rollback_reason": reason},
    )
    return {
        "champion": target.to_version,
        "previous": target.from_version,
        "canary_cleared": canary,
    }
