"""Everything the monitoring view shows about one model, or about all of them, read from the stores.

`model_view` and `overview` do the I/O (ledger, monitor checks, validation records, prediction log,
registry, approvals, Airflow) and hand plain records to the page, the charts and the status table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote

from monitoring import queries
from monitoring.airflow_runs import (
    PROMOTE_OUTCOME,
    AirflowRunsClient,
    AirflowUnavailable,
    dag_ids,
    run_url,
)
from monitoring.readings import (
    DriftPoint,
    MetricPoint,
    RatePoint,
    RunSummary,
    TimelineRow,
    bucket_seconds,
    deadline,
    drift_by_feature,
    error_point,
    error_points,
    live_error_metric,
    metric_points,
    parse_time,
    period_total,
    rate_points,
    run_outcome,
    timeline,
    version_text,
    wilson_interval,
)
from monitoring.settings import MonitoringSettings
from policies.loader import load_valid_policies
from policies.schema import Policy
from promotion.records import CANARY, CHALLENGER, CHAMPION, SHADOW
from promotion.rollout_state import SHARE_TAG, RolloutStateError, state_from_tags
from registry import get_version
from registry.alias_drift import AliasDrift, read_alias_drifts
from registry.ledger import ledger_at
from registry.listing import get_all_model_aliases
from registry.monitor_checks import MonitorCheck, read_checks
from registry.serving import get_model_aliases
from registry.validation_records import ValidationRecord, read_validations

ALIASES = (CHAMPION, CHALLENGER, CANARY, SHADOW)
RUNS_PER_DAG = 3
DRIFT_CHECKS = 500
ALIAS_DRIFTS = 20
OVERVIEW_DAYS = 7
OVERVIEW_VALIDATION_DAYS = 30


@dataclass(frozen=True)
class AliasState:
    """Where one alias points, since when, and what it does there (a canary's traffic share)."""

    alias: str
    version: int
    since: datetime | None
    detail: str = ""


@dataclass(frozen=True)
class RolloutProgress:
    """A canary or shadow period under way: its step, share and last check."""

    mode: str
    version: int
    step: int | None
    steps: int
    share: float | None
    status: str
    checked_at: str

    @property
    def text(self) -> str:
        share = f", {self.share:.0%} of traffic" if self.share is not None else ""
        step = f"step {self.step} of {self.steps}" if self.step is not None else "starting"
        status = f"; last check: {self.status}" if self.status else ""
        when = f" at {self.checked_at}" if self.checked_at else ""
        return f"{self.mode} v{self.version}: {step}{share}{status}{when}"


@dataclass(frozen=True)
class ApprovalWaiting:
    """An approval request nobody has settled yet: who may answer and until when."""

    version: int
    requested_at: datetime
    deadline: datetime
    approvers: tuple[str, ...]
    quorum: int
    votes: tuple[str, ...]
    channel: str

    @property
    def text(self) -> str:
        votes = f"; votes so far: {', '.join(self.votes)}" if self.votes else "; no votes yet"
        return (
            f"v{self.version} waits for {self.quorum} of {', '.join(self.approvers)} in "
            f"{self.channel} until {self.deadline:%Y-%m-%d %H:%M} UTC{votes}"
        )


@dataclass(frozen=True)
class TriggerPoint:
    """The performance trigger's reading at one monitor check."""

    at: datetime
    value: float
    lower: float | None
    upper: float | None
    fired: bool


@dataclass(frozen=True)
class VersionLinks:
    """Where to read about one version: its MLflow page and its evaluation report."""

    version: int
    mlflow_url: str
    report_url: str | None


@dataclass(frozen=True)
class ModelView:
    """The monitoring view of one model."""

    model_name: str
    generated_at: datetime
    since: datetime
    aliases: tuple[AliasState, ...]
    rollout: RolloutProgress | None
    approvals: tuple[ApprovalWaiting, ...]
    confidence: float
    metric: tuple[MetricPoint, ...]
    metric_name: str
    metric_note: str
    trigger_metric: str | None
    trigger_points: tuple[TriggerPoint, ...]
    floor: float | None
    validation: tuple[RatePoint, ...]
    failed_validations: tuple[ValidationRecord, ...]
    drift: dict[str, list[DriftPoint]]
    last_check: MonitorCheck | None
    runs: tuple[RunSummary, ...]
    runs_note: str
    timeline: tuple[TimelineRow, ...]
    alias_drifts: tuple[AliasDrift, ...] = ()
    links: dict[int, VersionLinks] = field(default_factory=dict)

    @property
    def metric_total(self) -> MetricPoint | None:
        """The champion's accuracy over the whole period, with its interval."""
        return period_total(self.metric, self.confidence)

    @property
    def pending(self) -> list[str]:
        """What is waiting, in words."""
        items = [] if self.rollout is None else [f"rollout: {self.rollout.text}"]
        return items + [f"approval: {approval.text}" for approval in self.approvals]


@dataclass(frozen=True)
class ModelSummary:
    """One model's line in the overview across models."""

    model_name: str
    aliases: tuple[AliasState, ...]
    pending: tuple[str, ...]
    metric_name: str
    accuracy: float | None
    accuracy_low: float | None
    accuracy_high: float | None
    labeled: int
    validations: int
    validations_passed: int
    last_check: MonitorCheck | None
    last_move: TimelineRow | None
    last_runs: tuple[RunSummary, ...]


@dataclass(frozen=True)
class Overview:
    """Every model the policies describe, one summary each."""

    generated_at: datetime
    models: tuple[ModelSummary, ...]
    runs_note: str
    problems: tuple[str, ...]


class Sources:
    """The stores the view reads, built from the settings; `runs` is None when Airflow's REST API
    is not reachable with an identity (the view then says so instead of listing runs)."""

    def __init__(self, settings: MonitoringSettings, runs: AirflowRunsClient | None) -> None:
        self.settings = settings
        self.runs = runs

    def policies(self) -> tuple[list[Policy], list[str]]:
        """The valid policies, and one line per policy file that is not."""
        policies, errors = load_valid_policies(self.settings.policies_dir)
        return policies, [str(error) for error in errors]

    def policy(self, model_name: str) -> Policy | None:
        """The policy of one model, None when no valid policy file names it."""
        return next((p for p in self.policies()[0] if p.model_name == model_name), None)


def model_view(sources: Sources, policy: Policy, *, now: datetime, days: int = 30) -> ModelView:
    """Gather the monitoring view of one model over the last `days` days."""
    settings = sources.settings
    name = policy.model_name
    since = now - timedelta(days=days)
    confidence = policy.promotion.confidence
    ledger = ledger_at(settings.ledger_url)
    moves = ledger.moves(name)
    aliases, tags = _aliases(name, moves, get_model_aliases(name))
    checks = read_checks(settings.ledger_url, name, limit=DRIFT_CHECKS)
    trigger_metric, floor = trigger_floor(policy, checks)
    metric_name = _live_metric_name(policy)
    metric, metric_note = _champion_metric(sources, name, metric_name, since, now, confidence)
    bucket_s = bucket_seconds(since, now)
    validation = rate_points(
        queries.validation_buckets(
            settings.ledger_url, name, since=since, until=now, bucket_s=bucket_s
        ),
        bucket_s,
    )
    failed = tuple(
        record
        for record in read_validations(settings.ledger_url, name, limit=50)
        if not record.passed
    )[:10]
    runs, runs_note = _model_runs(sources, name, ledger)
    versions = sorted({v for run in runs for v in run.versions} | {a.version for a in aliases})
    return ModelView(
        model_name=name,
        generated_at=now,
        since=since,
        aliases=aliases,
        rollout=rollout_progress(policy, aliases, tags),
        approvals=_approvals(sources, [name]).get(name, ()),
        confidence=confidence,
        metric=tuple(metric),
        metric_name=metric_name,
        metric_note=metric_note,
        trigger_metric=trigger_metric,
        trigger_points=tuple(_trigger_points(checks, since)),
        floor=floor,
        validation=tuple(validation),
        failed_validations=failed,
        drift=drift_by_feature(c for c in checks if parse_time(c.checked_at) >= since),
        last_check=checks[0] if checks else None,
        runs=tuple(runs),
        runs_note=runs_note,
        timeline=tuple(timeline(moves)),
        alias_drifts=tuple(read_alias_drifts(settings.ledger_url, name, limit=ALIAS_DRIFTS)),
        links={v: _version_links(settings, name, v, tags.get(v)) for v in versions},
    )


def overview(sources: Sources, *, now: datetime) -> Overview:
    """Gather one summary line per model the policies describe."""
    settings = sources.settings
    policies, problems = sources.policies()
    names = [p.model_name for p in policies]
    accuracy: dict[str, tuple[int, int]] = {}
    log = (
        queries.prediction_log(settings.log_url, settings.log_schema) if settings.log_url else None
    )
    errors: dict[str, tuple[int, float, float, float]] = {}
    if log is not None and queries.has_log(log):
        week = {"since": now - timedelta(days=OVERVIEW_DAYS), "until": now}
        accuracy = queries.champion_accuracy_by_model(log, **week)
        if any(p.model.task == "regression" for p in policies):
            errors = queries.champion_errors_by_model(log, **week)
    validated = queries.validation_totals_by_model(
        settings.ledger_url, since=now - timedelta(days=OVERVIEW_VALIDATION_DAYS), until=now
    )
    approvals = _approvals(sources, names)
    last_runs, runs_note = _newest_runs(sources, names)
    ledger = ledger_at(settings.ledger_url)
    registered = get_all_model_aliases()
    summaries = []
    for policy in policies:
        name = policy.model_name
        moves = ledger.moves(name)
        aliases, tags = _aliases(name, moves, registered.get(name, {}))
        rollout = rollout_progress(policy, aliases, tags)
        pending = ([] if rollout is None else [rollout.text]) + [
            a.text for a in approvals.get(name, ())
        ]
        live = _live_total(policy, accuracy.get(name, (0, 0)), errors.get(name), now)
        total, passed = validated.get(name, (0, 0))
        checks = read_checks(settings.ledger_url, name, limit=1)
        rows = timeline(moves[-1:])
        runs = last_runs.get(name, [])
        changes = ledger.changes(name) if runs else []
        summaries.append(
            ModelSummary(
                model_name=name,
                aliases=aliases,
                pending=tuple(pending),
                metric_name=_live_metric_name(policy),
                accuracy=None if live is None else live.value,
                accuracy_low=None if live is None else live.low,
                accuracy_high=None if live is None else live.high,
                labeled=0 if live is None else live.labeled,
                validations=total,
                validations_passed=passed,
                last_check=checks[0] if checks else None,
                last_move=rows[0] if rows else None,
                last_runs=tuple(_summary(sources, run, changes, []) for run in runs),
            )
        )
    return Overview(
        generated_at=now, models=tuple(summaries), runs_note=runs_note, problems=tuple(problems)
    )


def _live_total(
    policy: Policy,
    accuracy: tuple[int, int],
    errors: tuple[int, float, float, float] | None,
    now: datetime,
) -> MetricPoint | None:
    """A model's live metric over the overview's period, None without labeled rows."""
    confidence, metric_name = policy.promotion.confidence, _live_metric_name(policy)
    if metric_name != "accuracy":
        if not errors or not errors[0]:
            return None
        return error_point(now, errors[0], errors[1:], metric_name, confidence)
    labeled, correct = accuracy
    if not labeled:
        return None
    low, high = wilson_interval(correct, labeled, confidence)
    return MetricPoint(now, labeled, correct, correct / labeled, low, high)


def trigger_floor(
    policy: Policy, checks: Sequence[MonitorCheck]
) -> tuple[str | None, float | None]:
    """The performance trigger's metric and floor: from the policy's `triggers.performance` when the
    policy has one, else from the newest monitor check that measured performance."""
    performance = policy.triggers.performance
    if performance is not None and performance.floor is not None:
        return policy.promotion.metric, performance.floor
    for check in checks:
        signal = (check.signals or {}).get("performance")
        if signal and signal.get("floor") is not None:
            return signal.get("metric"), float(signal["floor"])
    return None, None


def _aliases(
    name: str, moves: Sequence[object], current: dict[str, int]
) -> tuple[tuple[AliasState, ...], dict[int, dict]]:
    """The aliases with since when they point where they do, and the tags of the canary and shadow
    versions (their rollout state); other versions' tags are read only when linked."""
    rolling = {current[a] for a in (CANARY, SHADOW) if a in current}
    tags = {version: get_version(name, version).tags for version in rolling}
    states = []
    for alias in (*ALIASES, *sorted(set(current) - set(ALIASES))):
        version = current.get(alias)
        if version is None:
            continue
        arrived = [m for m in moves if m.alias == alias and m.to_version == version]
        since = parse_time(arrived[-1].at) if arrived else None
        detail = ""
        if alias == CANARY:
            share = tags[version].get(SHARE_TAG)
            detail = f"answers {float(share):.0%} of traffic" if share else ""
        elif alias == SHADOW:
            detail = "scores a copy of traffic, never answers"
        states.append(AliasState(alias, version, since, detail))
    return tuple(states), tags


def rollout_progress(
    policy: Policy, aliases: Sequence[AliasState], tags: dict[int, dict]
) -> RolloutProgress | None:
    """The canary or shadow period under way, from the rollout state mirrored on its version's
    `rollout.state` tag (or the loose tags of an earlier release); None if none."""
    rolling = next((a for a in aliases if a.alias in (CANARY, SHADOW)), None)
    if rolling is None:
        return None
    steps = len(policy.rollout.traffic_steps) if rolling.alias == CANARY else 1
    try:
        state = state_from_tags(policy.model_name, rolling.version, tags.get(rolling.version, {}))
    except RolloutStateError as error:
        return RolloutProgress(rolling.alias, rolling.version, None, steps, None, str(error), "")
    if state is None:
        return RolloutProgress(rolling.alias, rolling.version, None, steps, None, "", "")
    return RolloutProgress(
        mode=rolling.alias,
        version=rolling.version,
        step=state.step,
        steps=steps,
        share=state.share if rolling.alias == CANARY else None,
        status=state.status,
        checked_at=state.checked_at or "",
    )


def _approvals(sources: Sources, names: Sequence[str]) -> dict[str, tuple[ApprovalWaiting, ...]]:
    url = sources.settings.approval_db_url
    if not url or not names:
        return {}
    waiting: dict[str, list[ApprovalWaiting]] = {}
    for stored in queries.pending_approvals(url, names):
        waiting.setdefault(stored.request.model, []).append(
            ApprovalWaiting(
                version=stored.request.challenger_version,
                requested_at=stored.created_at,
                deadline=deadline(stored.created_at, stored.config.timeout_seconds),
                approvers=tuple(stored.config.approvers),
                quorum=stored.config.quorum,
                votes=tuple(f"{v.user_name} ({v.choice})" for v in stored.votes),
                channel=stored.config.channel,
            )
        )
    return {name: tuple(items) for name, items in waiting.items()}


def _live_metric_name(policy: Policy) -> str:
    """What the view shows of the champion's live quality: accuracy for a classifier, the error
    (RMSE or MAE) for a regressor."""
    if policy.model.task == "regression":
        return live_error_metric(policy.promotion.metric)
    return "accuracy"


def _champion_metric(
    sources: Sources,
    name: str,
    metric_name: str,
    since: datetime,
    until: datetime,
    confidence: float,
) -> tuple[list[MetricPoint], str]:
    settings = sources.settings
    if not settings.log_url:
        return [], "GATEWAY_LOG_URL is not set: the prediction log is not read"
    log = queries.prediction_log(settings.log_url, settings.log_schema)
    if not queries.has_log(log):
        return [], "the prediction log has no tables yet: no gateway has logged to GATEWAY_LOG_URL"
    bucket_s = bucket_seconds(since, until)
    if metric_name == "accuracy":
        rows = queries.champion_accuracy(log, name, since=since, until=until, bucket_s=bucket_s)
        points = metric_points(rows, bucket_s, confidence)
    else:
        errors = queries.champion_errors(log, name, since=since, until=until, bucket_s=bucket_s)
        points = error_points(errors, bucket_s, confidence, metric_name)
    return points, "" if points else "no labeled predictions of the champion in this period"


def _trigger_points(checks: Sequence[MonitorCheck], since: datetime) -> list[TriggerPoint]:
    points = []
    for check in checks:
        signal = (check.signals or {}).get("performance")
        at = parse_time(check.checked_at)
        if not signal or signal.get("value") is None or at < since:
            continue
        points.append(
            TriggerPoint(
                at=at,
                value=float(signal["value"]),
                lower=_optional(signal.get("lower")),
                upper=_optional(signal.get("upper")),
                fired=bool(signal.get("fired")),
            )
        )
    return sorted(points, key=lambda p: p.at)


def _runs_unavailable() -> str:
    return (
        "Airflow's REST API is not configured: set AIRFLOW_API_URL with AIRFLOW_API_USERNAME and "
        "AIRFLOW_API_PASSWORD (or AIRFLOW_API_TOKEN) to list runs"
    )


def _model_runs(sources: Sources, name: str, ledger: object) -> tuple[list[RunSummary], str]:
    if sources.runs is None:
        return [], _runs_unavailable()
    changes = ledger.changes(name)
    summaries = []
    try:
        for dag_id in dag_ids(name):
            for run in sources.runs.last_runs(dag_id, RUNS_PER_DAG):
                run_id = run["dag_run_id"]
                failed = (
                    sources.runs.failed_tasks(dag_id, run_id) if run["state"] == "failed" else []
                )
                said = None
                if dag_id.startswith("promote_"):
                    said = sources.runs.xcom(dag_id, run_id, *PROMOTE_OUTCOME)
                summaries.append(_summary(sources, run, changes, failed, said))
    except AirflowUnavailable as error:
        return summaries, str(error)
    return summaries, ""


def _newest_runs(sources: Sources, names: Sequence[str]) -> tuple[dict[str, list[dict]], str]:
    """The newest run of each of the models' DAGs, by model, from one batch call to Airflow."""
    if sources.runs is None or not names:
        return {}, _runs_unavailable() if sources.runs is None else ""
    ids = {dag_id: name for name in names for dag_id in dag_ids(name)}
    try:
        runs = sources.runs.newest_runs(list(ids))
    except AirflowUnavailable as error:
        return {}, str(error)
    seen: set[str] = set()
    newest: dict[str, list[dict]] = {}
    for run in runs:
        if run["dag_id"] not in seen:
            seen.add(run["dag_id"])
            newest.setdefault(ids[run["dag_id"]], []).append(run)
    return newest, ""


def _summary(
    sources: Sources,
    run: dict,
    changes: Sequence[object],
    failed_tasks: Sequence[str],
    said: object | None = None,
) -> RunSummary:
    """A run in words: what the run said it decided (`said`), then the transitions the ledger
    recorded with the run as actor and why, then its failed tasks."""
    dag_id, run_id = run["dag_id"], run["dag_run_id"]
    actor = f"{dag_id}/{run_id}"
    mine = [c for c in changes if c.actor == actor or c.actor.startswith(f"{actor} (")]
    decisions = [str(said)] if said else []
    decisions += [f"{version_text(c.version)} {c.to_state}" for c in mine]
    if mine:
        decisions.append(f"why: {mine[-1].reason}")
    started = run.get("start_date") or run.get("run_after")
    return RunSummary(
        dag_id=dag_id,
        run_id=run_id,
        state=run["state"],
        started=parse_time(started.replace("Z", "+00:00")) if started else None,
        outcome=run_outcome(run["state"], run.get("note"), decisions, failed_tasks),
        airflow_url=run_url(sources.settings.airflow_ui_url, dag_id, run_id),
        versions=tuple(sorted({c.version for c in mine})),
    )


def _version_links(
    settings: MonitoringSettings, name: str, version: int, tags: dict | None
) -> VersionLinks:
    if tags is None:
        tags = get_version(name, version).tags
    eval_run = tags.get("eval.run_id")
    report = (
        f"{settings.mlflow_ui_url}/get-artifact?path=evaluation/report.html&run_uuid={eval_run}"
        if eval_run
        else None
    )
    return VersionLinks(
        version=version,
        mlflow_url=f"{settings.mlflow_ui_url}/#/models/{quote(name, safe='')}/versions/{version}",
        report_url=report,
    )


def _optional(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
