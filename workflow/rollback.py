"""Task bodies of rollback_<model>: plan the move and show it, then make it.

A rollback cannot make things worse: its default target is the most recent former champion that
was never rolled back from; the plan scores the current champion and the target on the most
recent labeled rows of the source and refuses a target worse by more than `rollback.margin`
unless forced; the target must still exist and load; a running canary is cleared first; and the
move is a compare-and-set on the champion the plan saw, so a rollback planned before another move
changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

import registry
from policies.schema import Policy
from promotion.decisions import (
    NothingToRollBack,
    RollbackCheck,
    RollbackPlan,
    check_rollback_scores,
    rollback_target,
)
from promotion.metrics import higher_is_better, metric_value
from promotion.records import CANARY, CHAMPION
from workflow.params import require_version
from workflow.runs import RunContext
from workflow.scoring import class_labels, predictions
from workflow.sources import SourceError, SourceUnavailable, read_window, resolve_url, windows_for

log = logging.getLogger(__name__)


class RollbackRefused(NothingToRollBack):
    """The preflight refused the target on its recent scores; the message is the whole plan."""


@dataclass(frozen=True)
class RecentScores:
    """Both versions' scores on the same recent labeled rows, or why they could not be scored."""

    metric: str
    window: str
    rows: int
    champion: float | None
    target: float | None
    not_scored: str = ""


@dataclass(frozen=True)
class PlannedRollback:
    """What plan_rollback hands to apply_rollback over XCom: the champion move, the canary the
    plan saw (cleared first), whether the move is forced, both versions' recent scores, the
    preflight's verdict and the plan as shown to the user."""

    from_version: int
    to_version: int
    reason: str
    canary: int | None
    force: bool
    metric: str
    window: str
    rows: int
    champion_score: float | None
    target_score: float | None
    check: str
    plan: str

    def to_xcom(self) -> dict:
        """The JSON-able form a task returns."""
        return asdict(self)

    @classmethod
    def from_xcom(cls, value: dict) -> PlannedRollback:
        """The record from what `to_xcom` returned."""
        return cls(**value)


def plan(
    policy: Policy,
    requested_version: int | None,
    force: bool,
    run: RunContext | None = None,
    as_of: datetime | None = None,
) -> PlannedRollback:
    """The rollback plan, logged before anything moves; raises ParamError when the requested
    version does not exist, NothingToRollBack when there is no valid target, and RollbackRefused
    when the target scores worse than the champion on recent data (before `as_of`, default now)
    by more than `rollback.margin` and `force` is not set.

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
        done = None
        target = rollback_target(
            history,
            current_champion=registry.get_alias_version(name, CHAMPION),
            requested_version=requested_version,
            force=force,
        )
    target_model = _require_loadable(name, target.to_version)
    if done is not None:
        scores = RecentScores(policy.promotion.metric, "", 0, None, None, "already done")
        check = RollbackCheck(True, "already done by this run; nothing is left to move", None)
    else:
        moment = as_of or datetime.now(UTC).replace(tzinfo=None)
        scores = recent_scores(policy, target.from_version, target.to_version, target_model, moment)
        check = check_rollback_scores(
            metric=scores.metric,
            higher_is_better=higher_is_better(scores.metric),
            margin=policy.rollback.margin,
            champion_score=scores.champion,
            target_score=scores.target,
            force=force,
            not_scored=scores.not_scored,
        )
    canary = registry.get_alias_version(name, CANARY)
    planned = PlannedRollback(
        **asdict(target),
        canary=canary,
        force=force,
        metric=scores.metric,
        window=scores.window,
        rows=scores.rows,
        champion_score=scores.champion,
        target_score=scores.target,
        check=check.reason,
        plan=plan_text(name, target, canary, scores, check),
    )
    if not check.allowed:
        log.error("%s", planned.plan)
        raise RollbackRefused(planned.plan)
    log.log(logging.WARNING if check.shortfall is None else logging.INFO, "%s", planned.plan)
    return planned


def plan_text(
    name: str,
    target: RollbackPlan,
    canary: int | None,
    scores: RecentScores,
    check: RollbackCheck,
) -> str:
    """The plan as the user reads it in the task's log and its XCom: who is champion, where it
    goes and why, both scores on which rows, and the decision."""
    if scores.not_scored:
        scored = f"not scored: {scores.not_scored}"
    else:
        scored = (
            f"champion v{target.from_version} {scores.champion:.4f}, "
            f"target v{target.to_version} {scores.target:.4f}"
        )
    decision = (
        f"will move champion v{target.from_version} → v{target.to_version}: {check.reason}"
        if check.allowed
        else check.reason
    )
    lines = [
        f"Rollback plan for {name} (nothing has moved yet):",
        f"  current champion: v{target.from_version}",
        f"  target: v{target.to_version} ({target.reason})",
        f"  canary cleared first: {'none' if canary is None else f'v{canary}'}",
        f"  recent data: source window {scores.window or '-'}, {scores.rows} labeled rows",
        f"  {scores.metric} on it: {scored}",
        f"  decision: {decision}",
    ]
    return "\n".join(lines)


def recent_scores(
    policy: Policy, champion: int, target: int, target_model: Any, as_of: datetime
) -> RecentScores:
    """Both versions scored with the promotion metric on the source's newest holdout window
    before `as_of`: the same rows for both, labeled, and seen by neither in training if the
    source is fresh. What cannot be read or scored is said in `not_scored`."""
    source, metric = policy.source, policy.promotion.metric
    _, window = windows_for(as_of, source)
    unscored = RecentScores(metric, window.describe(), 0, None, None)
    try:
        frame = read_window(resolve_url(source), source, window)
    except (SourceError, SourceUnavailable, sa.exc.SQLAlchemyError) as error:
        return _unscored(unscored, f"the source cannot be read: {error}")
    if source.target in frame.columns:
        frame = frame[frame[source.target].notna()]
    rows = len(frame)
    if rows < policy.rollback.min_rows:
        return _unscored(
            RecentScores(metric, window.describe(), rows, None, None),
            f"too few labeled rows: {rows} < rollback.min_rows={policy.rollback.min_rows}",
        )
    found: dict[int, float | None] = {}
    problems = []
    for version, model in ((champion, None), (target, target_model)):
        # Whatever stops one version from scoring (artifacts gone, columns missing, a class the
        # model never saw) leaves that score out; the rollback must not fail on it.
        try:
            found[version] = _score(
                policy,
                model if model is not None else registry.load_model(policy.model_name, version),
                frame,
            )
        except Exception as error:
            found[version] = None
            problems.append(f"v{version} cannot be scored: {type(error).__name__}: {error}")
    return RecentScores(
        metric, window.describe(), rows, found[champion], found[target], "; ".join(problems)
    )


def _unscored(scores: RecentScores, why: str) -> RecentScores:
    return RecentScores(scores.metric, scores.window, scores.rows, None, None, why)


def _score(policy: Policy, model: Any, frame: pd.DataFrame) -> float:
    labels = frame[policy.source.target].to_numpy()
    if policy.task == "multiclass":
        index = {label: i for i, label in enumerate(class_labels(model))}
        labels = np.asarray([index[label] for label in labels])
    answers = predictions(model, frame[policy.source.features.all], policy.task)
    return float(metric_value(policy.promotion.metric, labels, answers))


def _require_loadable(name: str, version: int) -> Any:
    try:
        info = registry.get_version(name, version)
    except Exception as error:
        raise NothingToRollBack(
            f"version {version} cannot be read from the registry (deleted?): {error}"
        ) from error
    if info.status != "READY":
        raise NothingToRollBack(f"version {version} is {info.status}, not READY")
    try:
        return registry.load_model(name, version)
    except Exception as error:
        raise NothingToRollBack(
            f"version {version}'s artifacts no longer load ({type(error).__name__}: {error}); "
            "roll back to another version, or restore its artifacts"
        ) from error


def apply(policy: Policy, planned: PlannedRollback, reason: str, run: RunContext) -> dict:
    """Clear a running canary, then move `champion` as planned, unless either moved since the plan.

    A retried task finds its moves done and changes nothing; a refusal raises NothingToRollBack
    with the reason, and nothing of this rollback moves. The preflight's scores go on the move.
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
            evidence={
                "from_version": target.from_version,
                "preflight_metric": planned.metric,
                "preflight_window": planned.window,
                "preflight_rows": planned.rows,
                "champion_score": planned.champion_score,
                "target_score": planned.target_score,
            },
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
        "plan": planned.plan,
    }
