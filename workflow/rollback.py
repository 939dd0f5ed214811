"""Task bodies of rollback_<model>: plan the move and show it, then make it.

A rollback cannot make things worse: its default target is the most recent former champion that
was never rolled back from; the plan scores the current champion and the target on the most
recent labeled data (the gateway's prediction log when it holds enough labeled requests with
every feature in the clear, else the source's newest window) and refuses a target worse by more
than `rollback.margin` unless forced; the target must still exist and load; a running canary is
cleared first; and the move is a compare-and-set on the champion the plan saw, so a rollback
planned before another move changes nothing. After the move, the champion summary the trigger
form shows is written again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

import registry
from gateway.predlog import LabeledRequest, create_engine, labeled_requests, log_tables
from policies.schema import Policy
from promotion.decisions import (
    NothingToRollBack,
    RollbackCheck,
    RollbackPlan,
    check_rollback_scores,
    choose_recent_data,
    rollback_target,
)
from promotion.metrics import higher_is_better, metric_value
from promotion.records import CANARY, CHAMPION
from workflow.champion_summary import publish_champion_summary
from workflow.params import require_version
from workflow.runs import RunContext
from workflow.scoring import class_labels, predictions
from workflow.sources import (
    SourceError,
    SourceUnavailable,
    Window,
    read_window,
    resolve_url,
    windows_for,
)

LOG_URL_ENV = "GATEWAY_LOG_URL"
LOG_SCHEMA_ENV = "GATEWAY_LOG_SCHEMA"
PREDICTION_LOG = "prediction log"
SOURCE_WINDOW = "source window"
# The newest labeled requests read from the log at most: enough for a stable score, bounded memory.
MAX_LOG_ROWS = 100_000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RollbackSettings:
    """Where the gateway's prediction log is (the preflight's first choice of recent data); read
    once at the task edge. No URL: the source's newest window is scored."""

    log_url: str | None = None
    log_schema: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> RollbackSettings:
        """GATEWAY_LOG_URL and GATEWAY_LOG_SCHEMA, the variables the gateway and rollout read."""
        env = os.environ if environ is None else environ
        return cls(env.get(LOG_URL_ENV) or None, env.get(LOG_SCHEMA_ENV) or None)


class RollbackRefused(NothingToRollBack):
    """The preflight refused the target on its recent scores; the message is the whole plan."""


@dataclass(frozen=True)
class RecentScores:
    """Both versions' scores on the same recent labeled rows, or why they could not be scored.

    `data` says which rows (PREDICTION_LOG or SOURCE_WINDOW), `window` their time range,
    `fallback` why the prediction log was not used.
    """

    metric: str
    window: str
    rows: int
    champion: float | None
    target: float | None
    not_scored: str = ""
    data: str = SOURCE_WINDOW
    fallback: str = ""


@dataclass(frozen=True)
class LoggedRows:
    """The newest labeled answered requests of the prediction log with every feature the models
    read, as a frame shaped like the source (features and the target column), and when the
    first and last of them were logged."""

    frame: pd.DataFrame
    first: datetime | None
    last: datetime | None

    def describe(self) -> str:
        if self.first is None or self.last is None:
            return "-"
        return f"[{_iso(self.first)}, {_iso(self.last)}]"


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
    data: str = SOURCE_WINDOW

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
    settings: RollbackSettings | None = None,
    announce: Callable[[str], None] | None = None,
) -> PlannedRollback:
    """The rollback plan, logged (and given to `announce`, e.g. the run's note) before anything
    moves; raises ParamError when the requested version does not exist, NothingToRollBack when
    there is no valid target, and RollbackRefused when the target scores worse than the champion
    on recent data (before `as_of`, default now) by more than `rollback.margin` and `force` is not
    set. `settings` say where the prediction log is; without them the source is scored.

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
        scores = recent_scores(
            policy,
            target.from_version,
            target.to_version,
            target_model,
            moment,
            settings or RollbackSettings(),
        )
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
        data=scores.data,
    )
    if announce is not None:
        announce(planned.plan)
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
        f"  recent data: {recent_data_text(scores)}",
        f"  {scores.metric} on it: {scored}",
        f"  decision: {decision}",
    ]
    return "\n".join(lines)


def recent_data_text(scores: RecentScores) -> str:
    """Which rows both versions were scored on, their time range and count, and why the
    prediction log was not used when it was not."""
    if scores.data == PREDICTION_LOG:
        return (
            f"prediction log, {scores.rows} labeled rows logged {scores.window} "
            "(the newest answered rows with every feature)"
        )
    text = f"source window {scores.window or '-'}, {scores.rows} labeled rows"
    return f"{text} (not the prediction log: {scores.fallback})" if scores.fallback else text


def masked_features(policy: Policy) -> list[str]:
    """The features the models read that the policy has the prediction log hash or leave out."""
    masking = policy.prediction_log
    hidden = set(masking.hashed_features) | set(masking.unlogged_features)
    return [name for name in policy.source.features.all if name in hidden]


def recent_scores(
    policy: Policy,
    champion: int,
    target: int,
    target_model: Any,
    as_of: datetime,
    settings: RollbackSettings,
) -> RecentScores:
    """Both versions scored with the promotion metric on the same recent labeled rows: the
    prediction log's newest labeled requests of the holdout-length window before `as_of` when
    `promotion.decisions.choose_recent_data` allows, else the source's newest holdout window
    (labeled, and seen by neither in training if the source is fresh). What cannot be read or
    scored is said in `not_scored`."""
    source, metric = policy.source, policy.promotion.metric
    _, window = windows_for(as_of, source)
    masked = masked_features(policy)
    logged, unreadable = None, ""
    if settings.log_url is not None and not masked:
        try:
            logged = labeled_log_rows(policy, settings, window)
        except sa.exc.SQLAlchemyError as error:
            unreadable = f"{type(error).__name__}: {str(error).splitlines()[0]}"
    choice = choose_recent_data(
        log_configured=settings.log_url is not None,
        masked_features=masked,
        usable_rows=None if logged is None else len(logged.frame),
        min_rows=policy.rollback.min_rows,
        unreadable=unreadable,
    )
    if choice.use_log and logged is not None:
        frame = logged.frame
        unscored = RecentScores(
            metric, logged.describe(), len(frame), None, None, "", PREDICTION_LOG
        )
    else:
        unscored = RecentScores(
            metric, window.describe(), 0, None, None, "", SOURCE_WINDOW, choice.reason
        )
        try:
            frame = read_window(resolve_url(source), source, window)
        except (SourceError, SourceUnavailable, sa.exc.SQLAlchemyError) as error:
            return _unscored(unscored, f"the source cannot be read: {error}")
        if source.target in frame.columns:
            frame = frame[frame[source.target].notna()]
        unscored = _with_rows(unscored, len(frame))
        if len(frame) < policy.rollback.min_rows:
            return _unscored(
                unscored,
                f"too few labeled rows: {len(frame)} < "
                f"rollback.min_rows={policy.rollback.min_rows}",
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
        metric,
        unscored.window,
        unscored.rows,
        found[champion],
        found[target],
        "; ".join(problems),
        unscored.data,
        unscored.fallback,
    )


def labeled_log_rows(policy: Policy, settings: RollbackSettings, window: Window) -> LoggedRows:
    """The prediction log's newest labeled rows answered by `champion` or `canary` (no error) in
    `window`, at most MAX_LOG_ROWS, keeping only rows that logged every feature the models read.
    Raises SQLAlchemyError when the log cannot be read."""
    engine = create_engine(str(settings.log_url))
    try:
        rows = labeled_requests(
            engine,
            log_tables(settings.log_schema),
            policy.model_name,
            since=window.start.replace(tzinfo=UTC),
            until=window.end.replace(tzinfo=UTC),
            task=policy.task,
            limit=MAX_LOG_ROWS,
        )
    finally:
        engine.dispose()
    return logged_frame(policy, rows)


def logged_frame(policy: Policy, rows: Sequence[LabeledRequest]) -> LoggedRows:
    """Labeled log rows as a source-shaped frame: rows missing a feature are left out; a missing
    value logged as null is NaN, as in the source."""
    features, target = policy.source.features, policy.source.target
    usable = [row for row in rows if all(name in (row.features or {}) for name in features.all)]
    frame = pd.DataFrame.from_records(
        [{name: row.features[name] for name in features.all} for row in usable],
        columns=features.all,
    )
    for name in features.numeric:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    frame[target] = [row.label for row in usable]
    times = [_utc(row.created_at) for row in usable]
    return LoggedRows(frame, min(times, default=None), max(times, default=None))


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _with_rows(scores: RecentScores, rows: int) -> RecentScores:
    return RecentScores(
        scores.metric, scores.window, rows, None, None, "", scores.data, scores.fallback
    )


def _unscored(scores: RecentScores, why: str) -> RecentScores:
    return RecentScores(
        scores.metric, scores.window, scores.rows, None, None, why, scores.data, scores.fallback
    )


def _score(policy: Policy, model: Any, frame: pd.DataFrame) -> float:
    labels = frame[policy.source.target].to_numpy()
    if policy.task == "multiclass":
        classes = class_labels(model)
        # The log keeps class names as text; a model's classes may be numbers.
        index = {str(label): i for i, label in enumerate(classes)}
        index.update({label: i for i, label in enumerate(classes)})
        labels = np.asarray(
            [index[label] if label in index else index[str(label)] for label in labels]
        )
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
                "preflight_data": planned.data,
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
    publish_champion_summary(name)
    return {
        "champion": target.to_version,
        "previous": target.from_version,
        "canary_cleared": canary,
        "plan": planned.plan,
    }
