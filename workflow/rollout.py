"""Task bodies of the rollout: hand an approved winner to live traffic, watch it step by step, then
promote or revert it, and guard the new champion for a while.

The verdicts are `promotion.rollout`'s pure functions; this module feeds them the gateway's
prediction log, moves aliases through `registry`, and keeps the rollout's state as one record
(`promotion.rollout_state`) in the ledger, mirrored to the version's `rollout.state` tag, so a
rerun, a restart or a person reading the MLflow UI sees where it stands.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import registry
from approval.messages import Message, escape
from approval.slack import SlackDeliveryError
from gateway.predlog import (
    CHAMPION_PAIRED,
    WindowTotals,
    create_engine,
    log_tables,
    window_totals,
)
from policies.schema import Policy
from promotion import rollout_state
from promotion.decisions import NothingToRollBack
from promotion.evaluation import EvaluationResult
from promotion.lifecycle import State
from promotion.records import CHAMPION
from promotion.rollout import (
    ArmStats,
    PairedStats,
    RolloutConfig,
    ShadowStats,
    StepStats,
    analyze_shadow,
    analyze_step,
    guard_window_verdict,
)
from registry.serving import get_model_aliases
from workflow import rollback
from workflow.approve import ApprovalSettings
from workflow.champion_summary import publish_champion_summary
from workflow.promote import (
    NotPromoted,
    clear_challenger,
    evidence_of,
    promote_challenger,
    with_approval,
)
from workflow.runs import RunContext

LOG_URL_ENV = "GATEWAY_LOG_URL"
LOG_SCHEMA_ENV = "GATEWAY_LOG_SCHEMA"

log = logging.getLogger(__name__)


class RolloutError(ValueError):
    """The rollout cannot go on as asked; the message says why and what to fix. A retry would
    meet the same problem."""


@dataclass(frozen=True)
class RolloutSettings:
    """Where the gateway's prediction log is and how Slack is reached; read once at the task edge."""

    log_url: str
    log_schema: str | None = None
    slack: ApprovalSettings | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> RolloutSettings:
        env = dict(os.environ if environ is None else environ)
        if not env.get(LOG_URL_ENV):
            raise RolloutError(
                f"{LOG_URL_ENV} is not set: the rollout reads the serving gateway's prediction log; "
                "set it to the URL the gateway logs to (its --log-url)"
            )
        slack = None
        if env.get("SLACK_BOT_TOKEN"):
            slack = ApprovalSettings.from_environment(env, require_store=False)
        return cls(env[LOG_URL_ENV], env.get(LOG_SCHEMA_ENV) or None, slack)


@dataclass(frozen=True)
class RolloutWatch:
    """What begin_rollout hands to the watch over XCom: the version holding the rollout alias,
    the champion it is compared with, and when its rollout started."""

    model: str
    version: int
    alias: str
    champion: int
    started_at: str

    def to_xcom(self) -> dict:
        """The JSON-able form a task returns."""
        return asdict(self)

    @classmethod
    def from_xcom(cls, value: dict) -> RolloutWatch:
        """The record from what `to_xcom` returned."""
        return cls(**value)


@dataclass(frozen=True)
class Verdict:
    """A final verdict of the rollout's watch or of the guard window: the action (promote,
    revert, superseded; keep, moved for the guard), why, the evidence's numbers, the step it was
    reached in and when."""

    action: str
    reasons: tuple[str, ...]
    evidence: dict = field(default_factory=dict)
    step: int | None = None
    decided_at: str | None = None

    def to_xcom(self) -> dict:
        """The JSON-able form a task returns."""
        return {**asdict(self), "reasons": list(self.reasons)}

    @classmethod
    def from_xcom(cls, value: dict) -> Verdict:
        """The record from what `to_xcom` returned."""
        return cls(**{**value, "reasons": tuple(value["reasons"])})


@dataclass(frozen=True)
class RolloutOutcome:
    """What conclude_rollout did (promoted, reverted, superseded), for the guard window: when
    promoted, the previous champion's level in the rollout's metric and the guard's end."""

    model: str
    version: int
    champion: int
    verdict: str = "promoted"
    reasons: tuple[str, ...] = ()
    previous_level: float | None = None
    promoted_at: str | None = None
    guard_until: str | None = None

    def to_xcom(self) -> dict:
        """The JSON-able form a task returns."""
        return {**asdict(self), "reasons": list(self.reasons)}

    @classmethod
    def from_xcom(cls, value: dict) -> RolloutOutcome:
        """The record from what `to_xcom` returned."""
        return cls(**{**value, "reasons": tuple(value.get("reasons", ()))})


@dataclass(frozen=True)
class GuardOutcome:
    """What settle_guard did: who is champion now, the guard's verdict (kept, ended, reverted)."""

    model: str
    champion: int
    guard_verdict: str
    reasons: tuple[str, ...]

    def to_xcom(self) -> dict:
        """The JSON-able form a task returns."""
        return {**asdict(self), "reasons": list(self.reasons)}


def rollout_config(policy: Policy) -> RolloutConfig:
    """The rollout settings of a policy, as the pure rollout analysis takes them."""
    rules = policy.rollout
    if rules.mode == "none":
        raise RolloutError(f"policies/{policy.model_name}.yaml: rollout.mode is none: no rollout")
    try:
        return RolloutConfig(
            mode=rules.mode,
            task=policy.task,
            traffic_steps=tuple(rules.traffic_steps),
            alpha=rules.alpha,
            expected_effect=rules.expected_effect,
            min_labeled_per_step=rules.min_labeled_per_step,
            max_step_seconds=rules.max_step_minutes * 60,
            on_timeout=rules.on_timeout,
            max_error_rate=rules.max_error_rate,
            max_p99_latency_ms=rules.max_p99_latency_ms,
            min_agreement=rules.min_agreement,
            guard_margin=rules.guard_margin,
            margin=rules.margin,
        )
    except ValueError as error:
        raise RolloutError(f"policies/{policy.model_name}.yaml: {error}") from error


def start(policy: Policy, evaluation: dict, run: RunContext, approval: dict | None = None) -> dict:
    """Hand the evaluated (and approved) challenger to live traffic: record its rollout's state,
    point the policy's `canary` (at the first traffic step) or `shadow` alias at it, and clear
    `challenger`.

    Refuses (NotPromoted) when `champion` moved since the evaluation. With no champion yet, live
    traffic has nothing to compare with, so the challenger is promoted at once.
    """
    name, version, champion = evaluation["model"], evaluation["challenger"], evaluation["champion"]
    config = rollout_config(policy)
    current = registry.get_alias_version(name, CHAMPION)
    if champion is None or current == version:
        return {**promote_challenger(policy, evaluation, run, approval), "alias": None}
    if current != champion:
        raise NotPromoted(
            f"champion moved from v{champion} to v{current} since v{version} was evaluated; "
            "promote again to evaluate against the current champion"
        )
    result = EvaluationResult.from_json_dict(evaluation["result"])
    evidence = evidence_of(evaluation, result)
    reason = with_approval(
        f"{config.mode} rollout against champion v{champion}: " + "; ".join(result.reasons),
        evidence,
        approval,
    )
    alias = config.mode
    before = registry.get_alias_version(name, alias)
    existing = _read_state(name, version)
    rerun = existing is not None and existing.running and existing.started_by == run.actor
    if not (before == version and rerun):
        # The state (and the share it mirrors) is saved before the alias moves, so the gateway
        # never routes the new canary with its configured default share first.
        _start_state(name, version, config, champion, run, datetime.now(UTC), existing)
    _move(name, alias, version, kind="promote", run=run, reason=reason, evidence=evidence)
    clear_challenger(name, version, "promote", run, f"handed to the {alias} rollout", evidence)
    return {
        "model": name,
        "version": version,
        "alias": alias,
        "champion": champion,
        "canary_share": config.traffic_steps[0] if alias == "canary" else None,
    }


def _start_state(
    name: str,
    version: int,
    config: RolloutConfig,
    champion: int,
    run: RunContext,
    now: datetime,
    replacing: rollout_state.RolloutState | None,
) -> rollout_state.RolloutState:
    started = rollout_state.start(
        name,
        version,
        mode=config.mode,  # type: ignore[arg-type]
        champion=champion,
        started_by=run.actor,
        traffic_steps=config.traffic_steps,
        now=now,
        replacing=replacing,
    )
    return registry.save_rollout_state(started)


def _read_state(name: str, version: int) -> rollout_state.RolloutState | None:
    try:
        return registry.rollout_state(name, version)
    except rollout_state.RolloutStateError as error:
        raise RolloutError(
            f"{error}; repair the stored state (the ledger's promotion_rollout_states row, or "
            "the version's loose rollout.* tags of an earlier release) to go on"
        ) from error


def _running_state(name: str, version: int) -> rollout_state.RolloutState:
    state = _read_state(name, version)
    if state is None or not state.running:
        said = "no rollout state" if state is None else f"its rollout was {state.phase} already"
        raise RolloutError(f"{name} v{version}: {said}; begin the rollout again")
    return state


def begin(policy: Policy, run: RunContext, now: datetime | None = None) -> RolloutWatch | None:
    """The rollout to watch: the version the policy's rollout alias points at and the champion it
    is compared with; None when no version holds the alias (nothing to watch).

    A version aliased by hand, without the state `start` saves (or whose earlier rollout has
    concluded), starts its rollout clock now.
    """
    name, config = policy.model_name, rollout_config(policy)
    version = registry.get_alias_version(name, config.mode)
    if version is None:
        return None
    state = _read_state(name, version)
    if state is None or not state.running:
        champion = registry.get_alias_version(name, CHAMPION)
        if champion is None:
            raise RolloutError(
                f"{name} v{version} holds `{config.mode}` but there is no champion to compare it "
                "with; promote a champion first"
            )
        state = _start_state(name, version, config, champion, run, now or datetime.now(UTC), state)
    return RolloutWatch(
        model=name,
        version=version,
        alias=config.mode,
        champion=state.champion,
        started_at=state.started_at,
    )


def step_windows(starts: list[datetime], now: datetime) -> list[tuple[datetime, datetime]]:
    """The [since, until) window of each step from the times the steps started; the last ends now."""
    return list(zip(starts, [*starts[1:], now], strict=True))


def arm_stats(window: WindowTotals, role: str, version: int) -> ArmStats:
    """One arm's counts from the prediction log's totals of a window (empty when it served
    nothing)."""
    found = window.arm(role, version)
    if found is None:
        return ArmStats()
    return ArmStats(
        labeled=found.labeled,
        correct=found.correct,
        requests=found.requests,
        errors=found.errors,
        p99_latency_ms=found.p99_latency_ms,
        outcome_sum=found.outcome_sum,
        outcome_sq_sum=found.outcome_sq_sum,
    )


def step_stats(window: WindowTotals, champion: int, canary: int) -> StepStats:
    """Champion and canary over one step, as the canary analysis takes them, with the canary's
    requests the champion also scored off the request path (`paired`, None when it scored none)."""
    pair = window.pair(("canary", canary), (CHAMPION_PAIRED, champion))
    paired = None
    if pair is not None:
        paired = PairedStats(
            labeled=pair.labeled,
            challenger_correct=pair.answered_correct,
            champion_correct=pair.paired_correct,
            both_correct=pair.both_correct,
            challenger_outcome_sum=pair.answered_outcome_sum,
            champion_outcome_sum=pair.paired_outcome_sum,
            # The pairs add the canary's outcome minus the champion's; the contract the other way.
            error_difference_sum=-pair.difference_sum,
            error_difference_sq_sum=pair.difference_sq_sum,
        )
    return StepStats(
        champion=arm_stats(window, "champion", champion),
        challenger=arm_stats(window, "canary", canary),
        paired=paired,
    )


def shadow_stats(window: WindowTotals, champion: int, shadow: int) -> ShadowStats:
    """Champion and shadow on the same requests, as the shadow analysis takes them.

    Labeled counts and outcomes come from the pairs, so both arms are judged on the same labeled
    requests; request health (errors, latency) from each arm's own totals.
    """
    pair = window.pair(("champion", champion), ("shadow", shadow))
    answered = arm_stats(window, "champion", champion)
    scored = arm_stats(window, "shadow", shadow)
    if pair is None:
        return ShadowStats(
            champion=ArmStats(0, 0, answered.requests, answered.errors, answered.p99_latency_ms),
            challenger=ArmStats(0, 0, scored.requests, scored.errors, scored.p99_latency_ms),
        )
    return ShadowStats(
        champion=ArmStats(
            pair.labeled,
            pair.answered_correct,
            answered.requests,
            answered.errors,
            answered.p99_latency_ms,
            outcome_sum=pair.answered_outcome_sum,
        ),
        challenger=ArmStats(
            pair.labeled,
            pair.paired_correct,
            scored.requests,
            scored.errors,
            scored.p99_latency_ms,
            outcome_sum=pair.paired_outcome_sum,
        ),
        compared=pair.compared,
        agreed=pair.agreed,
        both_correct=pair.both_correct,
        difference_sum=pair.difference_sum,
        difference_sq_sum=pair.difference_sq_sum,
    )


def check(
    policy: Policy,
    begun: RolloutWatch,
    run: RunContext,
    settings: RolloutSettings,
    now: datetime | None = None,
) -> Verdict | None:
    """One look at the rollout: analyze the current step on the prediction log; step the canary up
    when the step passed; return the final verdict (promote, revert, superseded) or None to wait.
    """
    now = now or datetime.now(UTC)
    name, version, alias, champion = begun.model, begun.version, begun.alias, begun.champion
    config = rollout_config(policy)
    aliases = get_model_aliases(name)
    if aliases.get(alias) != version:
        return _final(
            "superseded",
            f"{alias} moved from v{version} to {_v(aliases.get(alias))} during the rollout; "
            "this rollout ends and moves nothing",
        )
    if aliases.get(CHAMPION) != champion:
        return _final(
            "revert",
            f"champion moved from v{champion} to {_v(aliases.get(CHAMPION))} during the rollout, "
            "so its evidence compares against a champion that no longer serves; roll out again",
        )
    state = _running_state(name, version)
    starts = [datetime.fromisoformat(s) for s in state.step_starts]
    windows = step_windows(starts, now)
    elapsed = (now - starts[-1]).total_seconds()
    engine, tables = create_engine(settings.log_url), log_tables(settings.log_schema)
    try:
        if config.mode == "canary":
            periods = [
                step_stats(totals, champion, version)
                for totals in window_totals(
                    engine,
                    tables,
                    name,
                    windows,
                    task=config.task,
                    pairs=[("canary", CHAMPION_PAIRED)],
                )
            ]
            verdict = analyze_step(
                config, len(starts) - 1, periods[-1], elapsed, earlier_steps=periods[:-1]
            )
        else:
            (totals,) = window_totals(
                engine, tables, name, windows[:1], task=config.task, pairs=[("champion", "shadow")]
            )
            verdict = analyze_shadow(config, shadow_stats(totals, champion, version), elapsed)
    finally:
        engine.dispose()
    log.info("%s v%s: %s", name, version, " | ".join(verdict.reasons))
    evidence = verdict.evidence.as_dict()
    if verdict.action == "step_up":
        _step_up(state, config, verdict.reasons, evidence, run, now)
        return None
    if verdict.action == "wait":
        registry.save_rollout_state(
            rollout_state.record_wait(state, verdict.reasons, evidence, now)
        )
        return None
    return Verdict(verdict.action, verdict.reasons, evidence, len(starts), _iso(now))


def _step_up(
    state: rollout_state.RolloutState,
    config: RolloutConfig,
    reasons: tuple[str, ...],
    evidence: dict,
    run: RunContext,
    now: datetime,
) -> None:
    stepped = rollout_state.step_up(state, config.traffic_steps, reasons, evidence, now)
    step, share = stepped.step, stepped.share
    try:
        registry.record_transition(
            state.model,
            state.version,
            State.CANARY,
            actor=run.actor,
            reason=f"step {step}/{len(config.traffic_steps)}: {share:.0%} of traffic; "
            + "; ".join(reasons),
            evidence={"step": step, "canary_share": share},
        )
    except registry.MoveRefused as refusal:
        raise RolloutError(str(refusal)) from refusal
    registry.save_rollout_state(stepped)


def _final(action: str, reason: str) -> Verdict:
    return Verdict(action, (reason,))


def conclude(
    policy: Policy,
    begun: RolloutWatch,
    verdict: Verdict,
    run: RunContext,
    settings: RolloutSettings,
    now: datetime | None = None,
) -> RolloutOutcome:
    """Act on the final verdict. Promote: `champion` moves to the version (the previous champion is
    recorded for rollback) and the rollout alias is cleared. Revert: the rollout alias is cleared.
    Either way the rollout's state records the verdict and its numbers, and Slack is told. A rerun
    after the verdict was recorded moves nothing and returns what was recorded.
    """
    now = now or datetime.now(UTC)
    name, version, alias, champion = begun.model, begun.version, begun.alias, begun.champion
    state = _read_state(name, version)
    if state is None:
        raise RolloutError(f"{name} v{version}: no rollout state to conclude; begin it again")
    if not state.running:
        return _outcome_of(state)
    reasons, evidence = list(verdict.reasons), verdict.evidence
    if verdict.action == "superseded":
        registry.save_rollout_state(
            rollout_state.conclude(
                state, "superseded", reasons, evidence, decided_by=run.actor, now=now
            )
        )
        return RolloutOutcome(name, version, champion, "superseded", tuple(reasons))
    promoted = False
    if verdict.action == "promote":
        try:
            _move(
                name,
                CHAMPION,
                version,
                kind="promote",
                run=run,
                reason=f"{alias} rollout passed: " + "; ".join(reasons),
                evidence=evidence,
                expected_from=champion,
            )
            promoted = True
            publish_champion_summary(name)
        except RolloutError as refusal:
            reasons.insert(0, f"not promoted: {refusal}")
    try:
        _move(
            name,
            alias,
            None,
            kind="promote" if promoted else "revert",
            run=run,
            reason="promoted to champion" if promoted else "reverted: " + "; ".join(reasons),
            evidence=evidence,
            expected_from=version,
        )
    except RolloutError as refusal:
        if promoted:
            raise
        reasons.append(f"{alias} not cleared: {refusal}")
    minutes = policy.rollout.guard_window_minutes
    concluded = rollout_state.conclude(
        state,
        "promoted" if promoted else "reverted",
        reasons,
        {key: value for key, value in evidence.items() if value is not None},
        decided_by=run.actor,
        now=now,
        after_step=verdict.step,
        guard_until=now + timedelta(minutes=minutes) if promoted and minutes else None,
    )
    saved = registry.save_rollout_state(concluded)
    if promoted:
        headline = f":white_check_mark: *{escape(name)} v{version} promoted* to champion"
    else:
        headline = f":no_entry: *{escape(name)} v{version} reverted*: its {alias} did not hold up"
    told = _tell_slack(policy, settings, version, headline, reasons)
    registry.save_rollout_state(rollout_state.with_notice(saved, told))
    return _outcome_of(saved)


def _outcome_of(state: rollout_state.RolloutState) -> RolloutOutcome:
    guard = state.guard
    return RolloutOutcome(
        state.model,
        state.version,
        state.champion,
        state.phase,
        () if state.verdict is None else state.verdict.reasons,
        None if guard is None else guard.previous_level,
        None if guard is None else guard.promoted_at,
        None if guard is None else guard.until,
    )


def revert_unfinished(
    policy: Policy, run: RunContext, settings: RolloutSettings, now: datetime | None = None
) -> RolloutOutcome | None:
    """Fail closed: when the watch ends without a verdict (an error, or Airflow's timeout), revert
    the version still holding the rollout alias. None when no version holds it."""
    begun = begin(policy, run, now)
    if begun is None:
        return None
    reason = (
        "the rollout's watch ended without a verdict (failed or timed out; see the task log of "
        "watch_rollout): reverted, fail closed"
    )
    return conclude(policy, begun, _final("revert", reason), run, settings, now)


def guard_check(
    policy: Policy,
    promoted: RolloutOutcome,
    settings: RolloutSettings,
    now: datetime | None = None,
) -> Verdict | None:
    """One look at a new champion in its guard window: revert when it is shown to fall below the
    previous champion's recorded level by the margin; keep at the window's end; else None (wait).
    """
    now = now or datetime.now(UTC)
    name, version = promoted.model, promoted.version
    if registry.get_alias_version(name, CHAMPION) != version:
        return _final("moved", f"champion no longer points at v{version}: nothing to guard")
    level = promoted.previous_level
    if level is None:
        return _final("keep", "no level of the previous champion was recorded: nothing to guard")
    engine, tables = create_engine(settings.log_url), log_tables(settings.log_schema)
    try:
        since = datetime.fromisoformat(str(promoted.promoted_at))
        config = rollout_config(policy)
        (totals,) = window_totals(engine, tables, name, [(since, now)], task=config.task, pairs=())
    finally:
        engine.dispose()
    verdict = guard_window_verdict(config, arm_stats(totals, "champion", version), level)
    log.info("%s v%s guard window: %s", name, version, " | ".join(verdict.reasons))
    ended = now >= datetime.fromisoformat(str(promoted.guard_until))
    if verdict.action == "revert" or ended:
        return Verdict(verdict.action, verdict.reasons, verdict.evidence.as_dict(), None, _iso(now))
    _save_guard(
        name,
        version,
        lambda state: rollout_state.guard_wait(
            state, verdict.reasons, verdict.evidence.as_dict(), now
        ),
    )
    return None


def settle_guard(
    policy: Policy,
    promoted: RolloutOutcome,
    guard: Verdict,
    run: RunContext,
    settings: RolloutSettings,
    now: datetime | None = None,
) -> GuardOutcome:
    """Act on the guard window's verdict: put the previous champion back through the rollback
    (the same plan and move as rollback_<model>), or record that the new champion stays."""
    now = now or datetime.now(UTC)
    name, version, previous = promoted.model, promoted.version, promoted.champion
    reasons = list(guard.reasons)
    evidence = {key: value for key, value in guard.evidence.items() if value is not None}
    if guard.action != "revert":
        verdict = "kept" if guard.action == "keep" else "ended"
        _save_guard(
            name,
            version,
            lambda state: rollout_state.settle_guard(
                state, verdict, guard.action, reasons, evidence, now
            ),
        )
        return GuardOutcome(name, version, verdict, tuple(reasons))
    reason = f"guard window of v{version}: " + "; ".join(reasons)
    try:
        # Forced: the guard's live evidence on the champion's own traffic is what decides here;
        # the preflight's scores on recent data are shown in the plan but cannot veto it.
        planned = rollback.plan(
            policy,
            previous,
            True,
            run,
            settings=rollback.RollbackSettings(settings.log_url, settings.log_schema),
        )
        rollback.apply(policy, planned, reason, run)
    except NothingToRollBack as refusal:
        raise RolloutError(f"guard window could not revert v{version}: {refusal}") from refusal
    _save_guard(
        name,
        version,
        lambda state: rollout_state.settle_guard(
            state, "reverted", guard.action, reasons, evidence, now
        ),
    )
    headline = (
        f":rewind: *{escape(name)} v{version} reverted* in its guard window: "
        f"champion is v{previous} again"
    )
    told = _tell_slack(policy, settings, version, headline, reasons)
    _save_guard(name, version, lambda state: rollout_state.with_guard_notice(state, told))
    return GuardOutcome(name, previous, "reverted", tuple(reasons))


def _save_guard(
    name: str,
    version: int,
    change: Callable[[rollout_state.RolloutState], rollout_state.RolloutState],
) -> None:
    # A champion promoted without a rollout of this workflow has no guard window to record in;
    # the guard's verdict still acts, only its record is skipped.
    state = _read_state(name, version)
    if state is None or state.guard is None:
        log.warning(
            "%s v%s: no rollout promoted it; the guard window is not recorded", name, version
        )
        return
    registry.save_rollout_state(change(state))


def notice(model: str, version: int, headline: str, reasons: list[str], link: str) -> Message:
    """The Slack message telling a rollout's outcome, with every reason and the version's link."""
    details = "\n".join(f"• {escape(reason)}" for reason in reasons)[:2900]
    return Message(
        text=headline.replace("*", ""),
        blocks=[
            {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
            {"type": "section", "text": {"type": "mrkdwn", "text": details or "no details"}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"<{link}|{model} v{version}>"}],
            },
        ],
    )


def _tell_slack(
    policy: Policy,
    settings: RolloutSettings,
    version: int,
    headline: str,
    reasons: list[str],
) -> str:
    """Where the notice went, or why it was not sent, to be recorded in the rollout's state."""
    # A notice Slack refuses is recorded, never undoes or blocks the moves before it.
    name, channel = policy.model_name, policy.approval.channel
    if settings.slack is None or not channel:
        return "not sent: " + (
            "SLACK_BOT_TOKEN is not set"
            if settings.slack is None
            else "the policy names no channel"
        )
    link = f"{settings.slack.mlflow_ui_url}/#/models/{name}/versions/{version}"
    try:
        posted = settings.slack.slack().post_message(
            channel, notice(name, version, headline, reasons, link)
        )
    except SlackDeliveryError as error:
        log.error("%s v%s: Slack was not told: %s", name, version, error)
        return f"not sent: {error}"
    return f"posted to {posted.channel} at {posted.ts}"


def _move(
    name: str,
    alias: str,
    to_version: int | None,
    *,
    kind: str,
    run: RunContext,
    reason: str,
    evidence: dict,
    expected_from: int | None | str = registry.ANY,
) -> None:
    try:
        registry.move_alias(
            name,
            alias,
            to_version,
            kind=kind,  # type: ignore[arg-type]
            actor=run.actor,
            reason=reason,
            evidence=evidence,
            expected_from=expected_from,  # type: ignore[arg-type]
        )
    except registry.MoveRefused as refusal:
        raise RolloutError(str(refusal)) from refusal


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _v(version: int | None) -> str:
    return "nothing" if version is None else f"v{version}"
