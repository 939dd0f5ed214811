"""Task body of monitor_<model>: one check of the champion's retraining triggers.

Reads the champion and its lineage from the registry, its live metric from the gateway's
prediction log joined with labels, new labeled rows from the source, and recent inputs against the
version's reference profile; asks `promotion.triggers` and `promotion.drift` for the verdicts and
records one monitor check in the ledger database. A signal that cannot be computed (no labels yet,
no profile and no training window, the source down) is reported with its reason and never fires.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

import registry
from gateway.predlog import ANSWERING_ROLES, ArmWindow, arm_windows, create_engine, log_tables
from policies.schema import Policy
from promotion.drift import DriftRule, ReferenceProfile, detect_drift
from promotion.records import CHAMPION
from promotion.triggers import (
    Gate,
    PerformanceRule,
    data_volume_signal,
    decide,
    performance_signal,
)
from registry.monitor_checks import MonitorCheck, read_checks, record_check
from registry.moves import current_ledger
from workflow.profile import load_profile, profile_of
from workflow.runs import RunContext
from workflow.sources import SourceError, SourceUnavailable, Window, read_window, resolve_url

LOG_URL_ENV = "GATEWAY_LOG_URL"
LOG_SCHEMA_ENV = "GATEWAY_LOG_SCHEMA"
# MLflow keeps tag values up to 5,000 characters; the detail is cut well below.
DETAIL_LIMIT = 4000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorSettings:
    """Where the gateway's prediction log is; read once at the task edge."""

    log_url: str | None = None
    log_schema: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> MonitorSettings:
        env = os.environ if environ is None else environ
        return cls(env.get(LOG_URL_ENV) or None, env.get(LOG_SCHEMA_ENV) or None)


@dataclass(frozen=True)
class Signal:
    """One trigger's numbers for the check record, whether it held, and whether it was checked."""

    kind: str
    numbers: dict
    held: bool
    checked: bool
    reason: str


@dataclass(frozen=True)
class CheckResult:
    """What check_triggers hands to start_training over XCom: the check's outcome (fired, quiet,
    not_checked), why, the kinds that fired and, when one did, the retrain Asset event's `extra`
    (the trigger's kind and numbers)."""

    outcome: str
    reason: str
    fired: tuple[str, ...] = ()
    extra: dict | None = None

    def to_xcom(self) -> dict:
        """The JSON-able form a task returns."""
        value: dict = {"outcome": self.outcome, "reason": self.reason, "fired": list(self.fired)}
        if self.extra is not None:
            value["extra"] = self.extra
        return value

    @classmethod
    def from_xcom(cls, value: dict) -> CheckResult:
        """The record from what `to_xcom` returned."""
        return cls(value["outcome"], value["reason"], tuple(value["fired"]), value.get("extra"))


class _NotChecked(Exception):
    """A signal that cannot be computed now; the message says why."""


def _naive(moment: datetime) -> datetime:
    """Source timestamps are naive UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _tag_time(tags: Mapping[str, str], key: str, version: int) -> datetime:
    """A time tag of the version, in UTC (a tag without an offset is UTC, as source times are)."""
    if not tags.get(key):
        raise _NotChecked(f"v{version} has no {key} tag")
    moment = datetime.fromisoformat(tags[key])
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _promoted_level(policy: Policy, tags: Mapping[str, str]) -> float | None:
    """The champion's metric when it was evaluated for promotion, if recorded in the policy's metric."""
    if tags.get("eval.metric") != policy.promotion.metric or not tags.get("eval.challenger_score"):
        return None
    return float(tags["eval.challenger_score"])


def _performance(
    policy: Policy, version: registry.VersionInfo, settings: MonitorSettings, now: datetime
) -> Signal:
    rules = policy.triggers.performance
    rule = PerformanceRule(
        metric=policy.promotion.metric,
        floor=rules.floor,
        max_drop=rules.max_drop,
        min_labeled=rules.min_labeled,
        confidence=rules.confidence,
    )
    level = _promoted_level(policy, version.tags)
    if settings.log_url is None:
        raise _NotChecked(
            f"{LOG_URL_ENV} is not set: the performance trigger reads the gateway's prediction log"
        )
    since = now - timedelta(hours=rules.lookback_hours)
    if version.tags.get(f"alias.{CHAMPION}.since"):
        since = max(since, _tag_time(version.tags, f"alias.{CHAMPION}.since", version.version))
    engine = create_engine(settings.log_url)
    try:
        windows = arm_windows(
            engine,
            log_tables(settings.log_schema),
            policy.model_name,
            since=since,
            until=now,
            task=policy.task,
        )
    except sa.exc.SQLAlchemyError as error:
        raise _NotChecked(
            f"the prediction log cannot be read: {error.__class__.__name__}"
        ) from error
    finally:
        engine.dispose()
    arm = next((w for w in windows if w.role == CHAMPION and w.version == version.version), None)
    if arm is None:
        labels, scores = np.empty(0), np.empty(0)
    elif policy.task == "multiclass":
        labels, scores = class_matrix(arm, rule.metric)
    else:
        labels, scores = arm.labels, arm.scores
    signal = performance_signal(rule, labels, scores, level)
    return Signal(
        "performance", signal.as_signal(), signal.fired, signal.value is not None, signal.reason
    )


def class_matrix(arm: ArmWindow, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """A multiclass arm's labeled rows as the metric takes them: each label's column index and
    the rows' class probabilities (n × k; a label class the model does not know is a column of
    zeros). Rows logged without probabilities count by their predicted class, which serves
    accuracy and macro-F1; log loss needs every row's probabilities (else not checked)."""
    missing = sum(1 for p in arm.probabilities if p is None)
    if missing and metric == "log_loss":
        raise _NotChecked(
            f"log_loss needs the class probabilities, which {missing} labeled rows of the "
            "prediction log lack"
        )
    classes: dict[str, None] = {}
    for probabilities in arm.probabilities:
        classes.update(dict.fromkeys(probabilities or {}))
    classes.update(dict.fromkeys(str(c) for c in arm.classes))
    classes.update(dict.fromkeys(str(label) for label in arm.labels))
    column = {name: i for i, name in enumerate(classes)}
    matrix = np.zeros((len(arm.labels), len(classes)))
    for row, (probabilities, predicted) in enumerate(
        zip(arm.probabilities, arm.classes, strict=True)
    ):
        if probabilities is None:
            matrix[row, column[str(predicted)]] = 1.0
        else:
            for name, probability in probabilities.items():
                matrix[row, column[name]] = probability
    labels = np.asarray([column[str(label)] for label in arm.labels], dtype=int)
    return labels, matrix


def _data_volume(policy: Policy, version: registry.VersionInfo, now: datetime) -> Signal:
    threshold = policy.triggers.data_volume.min_new_rows
    # The champion saw its training window and its holdout: rows after the holdout are new to it.
    since = _tag_time(version.tags, "lineage.holdout_end", version.version)
    frame = _read_source(policy, Window(_naive(since), _naive(now)))
    new_rows = int(frame[policy.source.target].notna().sum()) if len(frame) else 0
    signal = data_volume_signal(new_rows, threshold, since.isoformat())
    return Signal("data_volume", signal.as_signal(), signal.fired, True, signal.reason)


def _read_source(policy: Policy, window: Window) -> pd.DataFrame:
    try:
        return read_window(resolve_url(policy.source), policy.source, window)
    except (SourceError, SourceUnavailable, sa.exc.SQLAlchemyError) as error:
        # A source that is down ends this signal's check; the next check tries again.
        raise _NotChecked(f"the source cannot be read: {error}") from error


def _reference(policy: Policy, version: registry.VersionInfo) -> tuple[ReferenceProfile, str]:
    profile = load_profile(version.run_id)
    if profile is not None:
        return profile, ""
    start = _tag_time(version.tags, "lineage.window_start", version.version)
    end = _tag_time(version.tags, "lineage.window_end", version.version)
    frame = _read_source(policy, Window(_naive(start), _naive(end)))
    if frame.empty:
        raise _NotChecked(
            f"v{version.version} has no reference profile and its training window has no rows left"
        )
    note = (
        f"v{version.version} has no reference profile (trained before profiles were kept): "
        f"profiled its training window [{start.isoformat()}, {end.isoformat()}) from the source"
    )
    return profile_of(frame, policy.source.features), note


def recent_inputs(
    settings: MonitorSettings, model_name: str, since: datetime, until: datetime
) -> pd.DataFrame:
    """The features of the rows the gateway answered (champion or canary) in [since, until):
    each request's input once (its copies scored off the request path carry none)."""
    tables = log_tables(settings.log_schema)
    log_table = tables.predictions
    query = sa.select(log_table.c.features).where(
        log_table.c.model_name == model_name,
        log_table.c.role.in_(ANSWERING_ROLES),
        log_table.c.error.is_(None),
        log_table.c.created_at >= since,
        log_table.c.created_at < until,
    )
    engine = create_engine(str(settings.log_url))
    try:
        with engine.connect() as connection:
            rows = [row.features for row in connection.execute(query)]
    finally:
        engine.dispose()
    return pd.DataFrame.from_records(rows)


def _drift(
    policy: Policy, version: registry.VersionInfo, settings: MonitorSettings, now: datetime
) -> Signal:
    rules = policy.triggers.drift
    profile, fallback = _reference(policy, version)
    notes = [fallback] if fallback else []
    since = now - timedelta(hours=rules.window_hours)
    if rules.source == "source":
        frame = _read_source(policy, Window(_naive(since), _naive(now)))
    elif settings.log_url is None:
        raise _NotChecked(
            f"{LOG_URL_ENV} is not set: drift.source prediction_log reads the gateway's log"
        )
    else:
        try:
            frame = recent_inputs(settings, policy.model_name, since, now)
        except sa.exc.SQLAlchemyError as error:
            raise _NotChecked(
                f"the prediction log cannot be read: {error.__class__.__name__}"
            ) from error
    features = policy.source.features
    masked: list[str] = []
    if rules.source == "prediction_log":
        hidden = policy.prediction_log.hashed_features + policy.prediction_log.unlogged_features
        masked = [name for name in rules.features or features.all if name in hidden]
        if masked:
            notes.append(f"masked in the prediction log, not checked: {', '.join(masked)}")
    columns = {}
    for name in rules.features or features.all:
        if name in frame and name not in masked:
            values = frame[name]
            columns[name] = (
                pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
                if name in features.numeric
                else values.to_numpy(dtype=object)
            )
    report = detect_drift(
        profile,
        columns,
        DriftRule(alpha=rules.alpha, min_psi=rules.min_psi, min_rows=rules.min_rows),
        rules.features or features.all,
    )
    reason = "; ".join([report.reason, *notes])
    numbers = {**report.as_signal(rules.source), "reason": reason}
    if fallback:
        numbers["profile"] = "training window (no stored profile)"
    return Signal("drift", numbers, report.fired, bool(report.features), reason)


def _not_checked(kind: str, policy: Policy, reason: str) -> Signal:
    numbers: dict = {"fired": False, "reason": reason}
    if kind == "data_volume":
        numbers |= {
            "new_rows": None,
            "threshold": policy.triggers.data_volume.min_new_rows,
            "since": None,
        }
    if kind == "drift":
        numbers |= {"rows": 0, "source": policy.triggers.drift.source, "features": {}}
    return Signal(kind, numbers, False, False, reason)


def _signals(
    policy: Policy, version: registry.VersionInfo, settings: MonitorSettings, now: datetime
) -> list[Signal]:
    triggers = policy.triggers
    wanted = {
        "performance": (triggers.performance, lambda: _performance(policy, version, settings, now)),
        "data_volume": (triggers.data_volume, lambda: _data_volume(policy, version, now)),
        "drift": (triggers.drift, lambda: _drift(policy, version, settings, now)),
    }
    signals = []
    for kind, (configured, compute) in wanted.items():
        if configured is None:
            continue
        try:
            signals.append(compute())
        except _NotChecked as reason:
            signals.append(_not_checked(kind, policy, str(reason)))
    return signals


def _recent_fires(
    ledger_url: str, model_name: str, now: datetime, cooldown: timedelta
) -> list[datetime]:
    since = now - max(cooldown, timedelta(days=1))
    return [
        datetime.fromisoformat(c.checked_at)
        for c in read_checks(ledger_url, model_name, since=since.isoformat())
        if c.outcome == "fired"
    ]


def check(
    policy: Policy,
    run: RunContext,
    settings: MonitorSettings,
    active_runs: Sequence[str],
    now: datetime | None = None,
) -> CheckResult:
    """Check the champion's triggers once and record the check; return whether to start a training
    and, if so, the Asset event's `extra` (the trigger's kind and numbers)."""
    now = now or datetime.now(UTC)
    name = policy.model_name
    ledger_url = current_ledger().url
    champion = registry.get_alias_version(name, CHAMPION)
    if champion is None:
        signals, reasons, decision = [], {}, None
        outcome, reason = "not_checked", f"{name} has no champion to monitor"
    else:
        version = registry.get_version(name, champion)
        signals = _signals(policy, version, settings, now)
        reasons = {s.kind: s.reason for s in signals}
        gate = Gate(timedelta(hours=policy.triggers.cooldown_hours), policy.triggers.max_per_day)
        decision = decide(
            [s.kind for s in signals if s.held],
            reasons,
            now,
            _recent_fires(ledger_url, name, now, gate.cooldown),
            active_runs,
            gate,
        )
        if decision.fire:
            outcome, reason = "fired", decision.reason
        elif not any(s.checked for s in signals):
            outcome = "not_checked"
            reason = "no trigger could be checked: " + "; ".join(
                f"{s.kind}: {s.reason}" for s in signals
            )
        else:
            outcome, reason = "quiet", decision.reason
    fired = decision.held if decision is not None and decision.fire else ()
    record = MonitorCheck(
        model_name=name,
        checked_at=now.isoformat(),
        champion_version=champion,
        outcome=outcome,
        fired=fired,
        reason=reason,
        signals={s.kind: s.numbers for s in signals},
        run_id=run.run_id,
    )
    record_check(ledger_url, record)
    log.info("%s monitor: %s — %s", name, outcome, reason)
    extra = None
    if fired:
        extra = {
            "trigger": fired[0],
            "kinds": list(fired),
            "model": name,
            "champion_version": champion,
            "reason": reason,
            "signals": {kind: _compact(record.signals[kind]) for kind in fired},
            "monitor_run_id": run.run_id,
            "checked_at": record.checked_at,
        }
    return CheckResult(outcome, reason, tuple(fired), extra)


def _compact(numbers: dict) -> dict:
    """A signal's numbers without its per-feature table, except the drifted features."""
    if "features" not in numbers:
        return numbers
    drifted = {n: f for n, f in numbers["features"].items() if f.get("drifted")}
    return {**numbers, "features": drifted}


def trigger_tags(
    run_type: str, extras: Sequence[Mapping], triggered_by: str = ""
) -> dict[str, str]:
    """The `lineage.trigger` and `lineage.trigger_detail` of a training run: the monitor's trigger
    when a retrain Asset event started it, else `schedule` for a cron run, `manual` otherwise."""
    fired = [extra for extra in extras if extra.get("trigger")]
    if fired:
        extra = fired[-1]
        detail = {k: extra.get(k) for k in ("kinds", "champion_version", "monitor_run_id")}
        room = DETAIL_LIMIT - len(json.dumps({**detail, "reason": ""}, ensure_ascii=False))
        detail["reason"] = str(extra.get("reason", ""))[:room]
        return {
            "lineage.trigger": str(extra["trigger"]),
            "lineage.trigger_detail": json.dumps(detail, ensure_ascii=False),
        }
    if run_type in ("scheduled", "backfill"):
        return {"lineage.trigger": "schedule", "lineage.trigger_detail": f"{run_type} run"}
    by = f" by {triggered_by}" if triggered_by else ""
    return {"lineage.trigger": "manual", "lineage.trigger_detail": f"{run_type} run{by}"}
