"""Champion–challenger verdict, rollback target and the rollback preflight rule: the decisions
the DAGs act on."""

from __future__ import annotations

import math
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


# Champion moves of these kinds take `champion` away from a version found wanting: a rollback, or
# a rollout's guard window reverting a fresh promotion.
_GIVEN_UP = frozenset({"rollback", "revert"})


def rolled_back_from(history: Sequence[AliasMove]) -> frozenset[int]:
    """The versions that lost `champion` through a rollback or a revert."""
    return frozenset(
        move.from_version
        for move in history
        if move.alias == CHAMPION and move.kind in _GIVEN_UP and move.from_version is not None
    )


def rollback_target(
    history: Sequence[AliasMove],
    *,
    current_champion: int | None,
    requested_version: int | None = None,
    force: bool = False,
) -> RollbackPlan:
    """Which version `champion` returns to.

    With no requested version, the most recent former champion that never lost `champion`
    through a rollback or a revert: a second default rollback never flips back to the version the
    first one left. A requested version must have been champion before, unless `force` is set, so
    a typo cannot put a never-reviewed version in front of traffic; it may be a version rolled
    back from.
    """
    if current_champion is None:
        raise NothingToRollBack(
            "no version holds the 'champion' alias, so there is nothing to roll back"
        )
    champion_moves = [move for move in history if move.alias == CHAMPION]
    if requested_version is None:
        return _default_target(champion_moves, current_champion)
    if requested_version == current_champion:
        raise NothingToRollBack(f"version {requested_version} is already champion")
    was_champion = any(move.to_version == requested_version for move in champion_moves)
    if not was_champion and not force:
        raise NothingToRollBack(
            f"version {requested_version} was never champion; set force=true to make it champion anyway"
        )
    how = "requested version" if was_champion else "requested version, forced (never champion)"
    if requested_version in rolled_back_from(champion_moves):
        how += ", although it was rolled back from before"
    return RollbackPlan(current_champion, requested_version, how)


def _default_target(champion_moves: list[AliasMove], current_champion: int) -> RollbackPlan:
    if not any(move.to_version == current_champion for move in champion_moves):
        raise NothingToRollBack(
            f"version {current_champion} is champion but no recorded move put it there; "
            "give an explicit 'version' to roll back to"
        )
    # When each former champion last held the alias: the move that took it away from it.
    last_held: dict[int, AliasMove] = {}
    for move in sorted(champion_moves, key=lambda m: m.sequence):
        if move.from_version is not None and move.from_version != current_champion:
            last_held[move.from_version] = move
    excluded = rolled_back_from(champion_moves)
    eligible = [move for version, move in last_held.items() if version not in excluded]
    if not eligible:
        if not last_held:
            raise NothingToRollBack(
                f"version {current_champion} became champion with no previous champion; "
                "there is no earlier version to roll back to"
            )
        skipped = ", ".join(f"v{v}" for v in sorted(last_held))
        raise NothingToRollBack(
            f"no previous champion to return to by default: every former champion ({skipped}) "
            "was rolled back from or reverted; give an explicit 'version' (with force=true if "
            "the preflight refuses it) to return to one of them anyway"
        )
    last = max(eligible, key=lambda move: move.sequence)
    target = int(last.from_version)  # type: ignore[arg-type]
    skipped = sorted(
        v for v in last_held if v in excluded and last_held[v].sequence > last.sequence
    )
    reason = (
        f"most recent former champion not rolled back from: v{target}, champion until move "
        f"#{last.sequence} ({last.kind}: v{target} → v{last.to_version})"
    )
    if skipped:
        reason += "; skipped " + ", ".join(f"v{v}" for v in skipped) + " (rolled back from)"
    return RollbackPlan(current_champion, target, reason)


@dataclass(frozen=True)
class RollbackCheck:
    """Whether a rollback may move once both versions were scored on recent data, and why.

    `shortfall` is how much worse the target scores than the champion (positive: worse, whatever
    the metric's direction); None when they could not be compared.
    """

    allowed: bool
    reason: str
    shortfall: float | None


def check_rollback_scores(
    *,
    metric: str,
    higher_is_better: bool,
    margin: float,
    champion_score: float | None,
    target_score: float | None,
    force: bool,
    not_scored: str = "",
) -> RollbackCheck:
    """The preflight rule: refuse a target scoring worse than the champion by more than `margin`
    on the same recent rows, unless `force`.

    When either score is missing (no recent data, a model that cannot score) the rollback goes
    ahead: it must stay possible in an emergency, so the missing comparison is a warning, not a
    refusal.
    """
    if champion_score is None or target_score is None or math.isnan(champion_score + target_score):
        why = not_scored or "a score is undefined"
        return RollbackCheck(True, f"WARNING: not compared ({why}); moving without the check", None)
    shortfall = champion_score - target_score if higher_is_better else target_score - champion_score
    comparison = (
        f"{metric} target {target_score:.4f} vs champion {champion_score:.4f} "
        f"(target worse by {shortfall:+.4f}, rollback.margin {margin:.4f})"
    )
    if shortfall <= margin:
        return RollbackCheck(True, f"target within the margin: {comparison}", shortfall)
    if force:
        return RollbackCheck(True, f"forced although the target is worse: {comparison}", shortfall)
    return RollbackCheck(
        False,
        f"refused: the target scores worse than the champion on recent data: {comparison}; "
        "nothing was moved. Set force=true to roll back anyway",
        shortfall,
    )


@dataclass(frozen=True)
class RecentDataChoice:
    """Which recent labeled rows the rollback preflight scores both versions on, and why:
    the gateway's prediction log (the requests the champion really answered) or, failing that,
    the source's newest window."""

    use_log: bool
    reason: str


def choose_recent_data(
    *,
    log_configured: bool,
    masked_features: Sequence[str],
    usable_rows: int | None,
    min_rows: int,
    unreadable: str = "",
) -> RecentDataChoice:
    """The prediction log when it is configured, keeps every feature the models read in the clear,
    can be read, and holds at least `min_rows` labeled answered rows with all those features
    (`usable_rows`, None when it was not read); else the source's newest window.

    A hashed or unlogged feature cannot be fed to a model, so any masked feature rules the log out
    before it is read.
    """
    if not log_configured:
        return RecentDataChoice(False, "no prediction log is configured (GATEWAY_LOG_URL)")
    if masked_features:
        return RecentDataChoice(
            False,
            "the prediction log masks features the models read ("
            + ", ".join(sorted(masked_features))
            + "; policy prediction_log.hashed_features/unlogged_features), so its rows "
            "cannot be scored",
        )
    if unreadable or usable_rows is None:
        return RecentDataChoice(
            False, f"the prediction log cannot be read: {unreadable or 'not read'}"
        )
    if usable_rows < min_rows:
        return RecentDataChoice(
            False,
            f"the prediction log holds {usable_rows} labeled rows with every feature, fewer "
            f"than rollback.min_rows={min_rows}",
        )
    return RecentDataChoice(
        True,
        f"the prediction log's newest labeled requests ({usable_rows} rows with every feature)",
    )
