"""Task bodies of rollback_<model>: choose the version `champion` returns to, then move it."""

from __future__ import annotations

from dataclasses import asdict

import registry
from policies.schema import Policy
from promotion.decisions import NothingToRollBack, RollbackPlan, rollback_target
from promotion.records import CHAMPION
from workflow.runs import RunContext


def plan(policy: Policy, requested_version: int | None, force: bool) -> dict:
    """The rollback plan; raises NothingToRollBack (nothing moved) when there is no valid target."""
    name = policy.model_name
    target = rollback_target(
        registry.alias_history(name, CHAMPION),
        current_champion=registry.get_alias_version(name, CHAMPION),
        requested_version=requested_version,
        force=force,
    )
    try:
        registry.get_version(name, target.to_version)
    except Exception as error:
        raise NothingToRollBack(
            f"version {target.to_version} cannot be read from the registry: {error}"
        ) from error
    return asdict(target)


def apply(policy: Policy, planned: dict, reason: str, run: RunContext) -> dict:
    """Move `champion` as planned, unless it moved since the plan was made (then nothing moves)."""
    name = policy.model_name
    target = RollbackPlan(**planned)
    current = registry.get_alias_version(name, CHAMPION)
    if current != target.from_version:
        raise NothingToRollBack(
            f"champion moved from v{target.from_version} to v{current} after the rollback was planned; "
            "trigger the rollback again"
        )
    registry.move_alias(
        name,
        CHAMPION,
        target.to_version,
        kind="rollback",
        actor=run.actor,
        reason=f"{reason} ({target.reason})",
        evidence={"from_version": target.from_version},
    )
    registry.set_version_tags(
        name,
        target.from_version,
        {"promotion.rolled_back_by": run.actor, "promotion.rollback_reason": reason},
    )
    return {"champion": target.to_version, "previous": target.from_version}
