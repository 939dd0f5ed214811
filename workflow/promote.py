"""Task bodies of promote_<model>: evaluate both aliases on the same holdout, decide, act."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

import registry
from policies.schema import Policy
from promotion.decisions import PromotionVerdict, decide_promotion
from promotion.records import CHALLENGER, CHAMPION
from workflow import modeling
from workflow.runs import RunContext
from workflow.sources import Window, read_window, resolve_url
from workflow.validation import validate_window


def find_candidates(policy: Policy, requested_version: int | None) -> dict:
    """The challenger to evaluate (the given version, else the `challenger` alias) and the champion."""
    name = policy.model_name
    challenger = requested_version or registry.get_alias_version(name, CHALLENGER)
    champion = registry.get_alias_version(name, CHAMPION)
    if challenger is not None:
        registry.get_version(name, challenger)  # a missing version fails here, clearly
    return {"model": name, "challenger": challenger, "champion": champion}


def evaluate(policy: Policy, candidates: dict) -> dict:
    """Score champion and challenger on the challenger's holdout window: fresh rows neither saw."""
    name, challenger, champion = (
        candidates["model"],
        candidates["challenger"],
        candidates["champion"],
    )
    tags = registry.get_version(name, challenger).tags
    holdout = Window(
        datetime.fromisoformat(tags["lineage.holdout_start"]),
        datetime.fromisoformat(tags["lineage.holdout_end"]),
    )
    frame = read_window(resolve_url(policy.source), policy.source, holdout)
    validate_window(
        frame, policy.source, policy.validation, f"holdout window {holdout.describe()} of {name}"
    )
    features, labels = frame[policy.source.features.all], frame[policy.source.target].to_numpy()
    metric = policy.promotion.metric

    def score_of(version: int) -> float:
        model = registry.load_model(name, version)
        return modeling.score(metric, labels, modeling.positive_probabilities(model, features))

    return {
        **candidates,
        "metric": metric,
        "holdout_start": holdout.start.isoformat(),
        "holdout_end": holdout.end.isoformat(),
        "rows": len(frame),
        "challenger_score": score_of(challenger),
        "champion_score": None if champion is None else score_of(champion),
    }


def decide(policy: Policy, evaluation: dict) -> dict:
    """The promotion verdict for an evaluation (a pure decision; see promotion.decisions)."""
    verdict = decide_promotion(
        metric=evaluation["metric"],
        higher_is_better=policy.metric_higher_is_better,
        min_improvement=policy.promotion.min_improvement,
        challenger_score=evaluation["challenger_score"],
        champion_score=evaluation["champion_score"],
    )
    return asdict(verdict)


def apply(policy: Policy, evaluation: dict, verdict: dict, run: RunContext) -> dict:
    """Act on the verdict: move `champion` to a winner, tag a loser with why; clear `challenger`."""
    name, challenger = evaluation["model"], evaluation["challenger"]
    outcome = PromotionVerdict(**verdict)
    evidence = {
        "metric": outcome.metric,
        "challenger_score": outcome.challenger_score,
        "champion_score": outcome.champion_score,
        "improvement": outcome.improvement,
        "holdout_rows": evaluation["rows"],
    }
    registry.set_version_tags(
        name,
        challenger,
        {
            "promotion.verdict": outcome.action,
            "promotion.reason": outcome.reason,
            "promotion.metric": outcome.metric,
            "promotion.challenger_score": f"{outcome.challenger_score:.6f}",
            "promotion.champion_score": ""
            if outcome.champion_score is None
            else f"{outcome.champion_score:.6f}",
            "promotion.champion_version": evaluation["champion"] or "",
            "promotion.holdout": f"[{evaluation['holdout_start']}, {evaluation['holdout_end']})",
            "promotion.decided_by": run.actor,
        },
    )
    moved = None
    if outcome.action == "promote":
        moved = registry.move_alias(
            name,
            CHAMPION,
            challenger,
            kind="promote",
            actor=run.actor,
            reason=outcome.reason,
            evidence=evidence,
        )
    if registry.get_alias_version(name, CHALLENGER) == challenger:
        registry.move_alias(
            name,
            CHALLENGER,
            None,
            kind=outcome.action,
            actor=run.actor,
            reason=f"evaluated: {outcome.action}",
            evidence=evidence,
        )
    return {
        "action": outcome.action,
        "champion": registry.get_alias_version(name, CHAMPION),
        "moved": moved is not None,
        "reason": outcome.reason,
    }
