"""Champion–challenger verdict and rollback target: the decisions the DAGs act on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from promotion.records import CHAMPION, AliasMove


@dataclass(frozen=True)
class PromotionVerdict:
    """Whether the challenger replaces the champion, with the numbers and the reason."""

    action: Literal["promote", "reject"]
    reason: str
    metric: str
    challenger_score: float
    champion_score: float | None
    improvement: float | None


def decide_promotion(
    *,
    metric: str,
    higher_is_better: bool,
    min_improvement: float,
    challenger_score: float,
    champion_score: float | None,
) -> PromotionVerdict:
    """The point-estimate rule: promote when there is no champion, or when the challenger's score
    beats the champion's by `min_improvement`.

    The workflow decides with `promotion.evaluation.evaluate_challenger` instead; this rule stays
    as the baseline `bench/decision_quality.py` measures it against (it promotes an equally good
    model about half the time). Both scores must come from the same holdout rows. Improvement is signed so that a positive
    value always means "the challenger is better", whatever the metric's direction.
    """
    if challenger_score != challenger_score:  # NaN: the metric could not be computed
        return PromotionVerdict(
            "reject",
            f"challenger {metric} is undefined on the holdout",
            metric,
            challenger_score,
            champion_score,
            None,
        )
    if champion_score is None:
        return PromotionVerdict(
            "promote",
            f"no champion yet; first valid candidate ({metric}={challenger_score:.4f})",
            metric,
            challenger_score,
            None,
            None,
        )
    improvement = challenger_score - champion_score
    if not higher_is_better:
        improvement = -improvement
    comparison = (
        f"{metric} {challenger_score:.4f} vs champion {champion_score:.4f} "
        f"(improvement {improvement:+.4f}, required ≥ {min_improvement:.4f})"
    )
    if improvement >= min_improvement and improvement > 0:
        return PromotionVerdict(
            "promote",
            f"challenger wins: {comparison}",
            metric,
            challenger_score,
            champion_score,
            improvement,
        )
    return PromotionVerdict(
        "reject",
        f"challenger does not beat the champion: {comparison}",
        metric,
        challenger_score,
        champion_score,
        improvement,
    )


class NothingToRollBack(ValueError):
    """Rollback has no valid target; nothing was moved."""


@dataclass(frozen=True)
class RollbackPlan:
    """The champion move a rollback will make."""

    from_version: int
    to_version: int
    reason: str


def rollback_target(
    history: Sequence[AliasMove],
    *,
    current_champion: int | None,
    requested_version: int | None = None,
    force: bool = False,
) -> RollbackPlan:
    """Which version `champion` returns to.

    With no requested version, the last move that made the current version champion is undone.
    A requested version must have been champion before, unless `force` is set, so a typo cannot
    put a never-reviewed version in front of traffic.
    """
    if current_champion is None:
        raise NothingToRollBack(
            "no version holds the 'champion' alias, so there is nothing to roll back"
        )
    champion_moves = [move for move in history if move.alias == CHAMPION]
    if requested_version is None:
        arrivals = [move for move in champion_moves if move.to_version == current_champion]
        if not arrivals:
            raise NothingToRollBack(
                f"version {current_champion} is champion but no recorded move put it there; "
                "give an explicit 'version' to roll back to"
            )
        last = max(arrivals, key=lambda move: move.sequence)
        if last.from_version is None:
            raise NothingToRollBack(
                f"version {current_champion} became champion with no previous champion; "
                "there is no earlier version to roll back to"
            )
        return RollbackPlan(
            current_champion,
            last.from_version,
            f"undo move #{last.sequence} ({last.kind}: v{last.from_version} → v{current_champion})",
        )
    if requested_version == current_champion:
        raise NothingToRollBack(f"version {requested_version} is already champion")
    was_champion = any(move.to_version == requested_version for move in champion_moves)
    if not was_champion and not force:
        raise NothingToRollBack(
            f"version {requested_version} was never champion; set force=true to make it champion anyway"
        )
    how = "requested version" if was_champion else "requested version, forced (never champion)"
    return RollbackPlan(current_champion, requested_version, how)
