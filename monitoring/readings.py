"""Pure shaping of what the stores hold into what the view shows: intervals, buckets, the alias
timeline, run outcomes in words, drift per feature. No I/O here, so all of it is tested alone."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from statistics import NormalDist

# Buckets tried in order, so that a chart gets at most this many points whatever the time span.
MAX_POINTS = 120
BUCKETS_S = (3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)


# The live error a regressor's view shows: the policy's metric when it is one of these, else RMSE.
ERROR_METRICS = ("rmse", "mae")


@dataclass(frozen=True)
class MetricPoint:
    """The champion's live metric on the labeled rows of one time bucket, with its interval:
    accuracy (a classifier: `correct` of `labeled`), or an error (`metric` rmse or mae, a
    regressor: `error_sums` are the absolute errors', squared errors' and their squares' sums)."""

    start: datetime
    labeled: int
    correct: int
    value: float
    low: float
    high: float
    metric: str = "accuracy"
    error_sums: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class RatePoint:
    """Validated windows of one time bucket and how many of them passed."""

    start: datetime
    validated: int
    passed: int

    @property
    def rate(self) -> float:
        return self.passed / self.validated


@dataclass(frozen=True)
class DriftPoint:
    """One feature's drift statistic at one monitor check."""

    at: datetime
    psi: float | None
    p_value: float | None
    drifted: bool


@dataclass(frozen=True)
class TimelineRow:
    """One alias move as a reader sees it: when, alias, from → to, kind, who, why, the numbers."""

    sequence: int
    at: datetime
    alias: str
    change: str
    kind: str
    who: str
    why: str
    numbers: str


@dataclass(frozen=True)
class RunSummary:
    """The last run of one of a model's DAGs, its outcome in words and where to look."""

    dag_id: str
    run_id: str
    state: str
    started: datetime | None
    outcome: str
    airflow_url: str
    versions: tuple[int, ...] = ()


def wilson_interval(correct: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of a proportion; keeps inside [0, 1] and behaves at 0 and n."""
    if n <= 0:
        return (0.0, 1.0)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # At 0 or n the bound is exactly 0 or 1; rounding would leave it a hair inside.
    low = 0.0 if correct == 0 else max(0.0, min(p, centre - half))
    high = 1.0 if correct == n else min(1.0, max(p, centre + half))
    return (low, high)


def bucket_seconds(since: datetime, until: datetime) -> int:
    """The smallest bucket that gives at most MAX_POINTS points over [since, until)."""
    span = (until - since).total_seconds()
    return next((size for size in BUCKETS_S if span / size <= MAX_POINTS), BUCKETS_S[-1])


def from_epoch(seconds: float) -> datetime:
    """A UTC datetime from seconds since the epoch."""
    return datetime.fromtimestamp(seconds, UTC)


def parse_time(moment: str) -> datetime:
    """An ISO-8601 time as an aware UTC datetime (a naive one is taken as UTC)."""
    parsed = datetime.fromisoformat(moment)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def metric_points(
    buckets: Iterable[tuple[float, int, int]], bucket_s: int, confidence: float
) -> list[MetricPoint]:
    """(bucket index, labeled, correct) rows as accuracy points with their Wilson interval."""
    points = []
    for index, labeled, correct in sorted(buckets):
        if labeled <= 0:
            continue
        low, high = wilson_interval(correct, labeled, confidence)
        points.append(
            MetricPoint(
                start=from_epoch(index * bucket_s),
                labeled=int(labeled),
                correct=int(correct),
                value=correct / labeled,
                low=low,
                high=high,
            )
        )
    return points


def live_error_metric(policy_metric: str) -> str:
    """The error a regressor's view shows for a policy promoting on `policy_metric`."""
    return policy_metric if policy_metric in ERROR_METRICS else "rmse"


def error_point(
    start: datetime,
    labeled: int,
    sums: tuple[float, float, float],
    metric: str,
    confidence: float,
) -> MetricPoint:
    """RMSE or MAE of `labeled` rows from their error sums, with a normal interval: of the mean
    absolute error (MAE), or of the mean squared error, square-rooted (RMSE); never below 0."""
    absolute, squared, fourth = sums
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    if metric == "mae":
        mean, second = absolute / labeled, squared / labeled
    else:
        mean, second = squared / labeled, fourth / labeled
    half = z * math.sqrt(max(0.0, second - mean * mean) / labeled)
    low, high = max(0.0, mean - half), mean + half
    if metric != "mae":
        mean, low, high = math.sqrt(mean), math.sqrt(low), math.sqrt(high)
    return MetricPoint(start, labeled, 0, mean, low, high, metric, sums)


def error_points(
    buckets: Iterable[tuple[float, int, float, float, float]],
    bucket_s: int,
    confidence: float,
    metric: str,
) -> list[MetricPoint]:
    """(bucket index, labeled, error sums…) rows as RMSE or MAE points with their interval."""
    return [
        error_point(from_epoch(index * bucket_s), int(labeled), tuple(sums), metric, confidence)
        for index, labeled, *sums in sorted(buckets)
        if labeled > 0
    ]


def period_total(points: Sequence[MetricPoint], confidence: float) -> MetricPoint | None:
    """All the points' labeled rows pooled into one, dated at the first; None without points."""
    labeled = sum(p.labeled for p in points)
    if not labeled:
        return None
    if points[0].metric != "accuracy":
        sums = tuple(sum(p.error_sums[i] for p in points) for i in range(3))
        return error_point(points[0].start, labeled, sums, points[0].metric, confidence)
    correct = sum(p.correct for p in points)
    low, high = wilson_interval(correct, labeled, confidence)
    return MetricPoint(points[0].start, labeled, correct, correct / labeled, low, high)


def rate_points(buckets: Iterable[tuple[float, int, int]], bucket_s: int) -> list[RatePoint]:
    """(bucket index, validated, passed) rows as pass-rate points, oldest first."""
    return [
        RatePoint(start=from_epoch(index * bucket_s), validated=int(total), passed=int(passed))
        for index, total, passed in sorted(buckets)
        if total > 0
    ]


def number(value: object) -> str:
    """A value as a short readable string: floats to 4 significant digits, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and "." in value:
        try:
            value = float(value)  # a number recorded as text, e.g. "0.770090"
        except ValueError:
            return value
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}"
    return str(value)


def numbers_text(evidence: Mapping[str, object]) -> str:
    """The numbers behind a move, `key=value` comma-separated, in the order they were recorded."""
    return ", ".join(f"{key}={number(value)}" for key, value in evidence.items())


def version_text(version: int | None) -> str:
    return "none" if version is None else f"v{version}"


def timeline(moves: Sequence[object]) -> list[TimelineRow]:
    """The alias moves (records with AliasMove's fields) as readable rows, newest first."""
    rows = [
        TimelineRow(
            sequence=move.sequence,
            at=parse_time(move.at),
            alias=move.alias,
            change=f"{version_text(move.from_version)} → {version_text(move.to_version)}",
            kind=move.kind,
            who=move.actor,
            why=move.reason,
            numbers=numbers_text(move.evidence),
        )
        for move in moves
    ]
    return sorted(rows, key=lambda row: row.sequence, reverse=True)


def run_outcome(
    state: str,
    note: str | None,
    decisions: Sequence[str],
    failed_tasks: Sequence[str],
) -> str:
    """A run's outcome in words: what it decided (the ledger's transitions and moves it made, or
    its note), and for a failed run which tasks failed."""
    parts = []
    if note:
        parts.append(note.strip())
    parts.extend(d for d in decisions if d not in parts)
    if state == "failed":
        where = f" in {', '.join(failed_tasks)}" if failed_tasks else ""
        parts.append(f"failed{where}")
    elif not parts:
        parts.append(
            {"success": "succeeded", "running": "running", "queued": "queued"}.get(state, state)
        )
    return "; ".join(parts)


def drift_by_feature(checks: Iterable[object]) -> dict[str, list[DriftPoint]]:
    """Per feature, its drift at each monitor check that measured it, oldest first."""
    series: dict[str, list[DriftPoint]] = {}
    for check in checks:
        drift = (check.signals or {}).get("drift") or {}
        for feature, stats in (drift.get("features") or {}).items():
            series.setdefault(feature, []).append(
                DriftPoint(
                    at=parse_time(check.checked_at),
                    psi=_float(stats.get("psi")),
                    p_value=_float(stats.get("p_value")),
                    drifted=bool(stats.get("drifted")),
                )
            )
    return {
        feature: sorted(points, key=lambda p: p.at) for feature, points in sorted(series.items())
    }


def deadline(created_at: datetime, timeout_seconds: float) -> datetime:
    """When an approval request expires."""
    return created_at + timedelta(seconds=timeout_seconds)


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
