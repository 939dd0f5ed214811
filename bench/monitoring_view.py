"""How quickly the monitoring view answers with 50 models and a year of history.

Builds, in a temporary directory: 50 policies, 50 registered models (champion and challenger set),
and in SQLite a year of each store the view reads: alias moves in the ledger, monitor checks
every 6 hours (drift on 6 features and the performance signal), one validated window a day, and
the champion's prediction log with a label on every row (`--rows-per-day` per model). The stores
are written in bulk through the projects' own table definitions (the writers' per-row paths would
take hours for a year).

Measured (median of `--repeat` runs, the same process and data): the overview across the 50
models; one model's page over 365 days (queries, three charts, HTML); and the champion-metric
series alone, by the view (GROUP BY time bucket in SQL) against the naive baseline that reads the
model's labeled rows into Python and buckets them row by row. Both must give the same numbers.
Airflow's REST API is not part of it (the view's runs section makes 5 to 10 calls to it).

    .venv/bin/python bench/monitoring_view.py [--models 50] [--days 365] [--rows-per-day 48]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import sqlalchemy as sa
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FEATURES = (
    "sessions_7d",
    "days_since_signup",
    "avg_order_value",
    "support_tickets",
    "plan",
    "region",
)


def write_policies(directory: Path, names: list[str]) -> None:
    template = yaml.safe_load((ROOT / "policies" / "user_churn.yaml").read_text())
    directory.mkdir()
    for name in names:
        (directory / f"{name}.yaml").write_text(yaml.safe_dump({**template, "model_name": name}))


def register_models(names: list[str]) -> None:
    from registry.client import client

    mlflow_client = client()
    for name in names:
        mlflow_client.create_registered_model(name)
        for version in (1, 2):
            mlflow_client.create_model_version(name, source=f"file:///models/{name}/{version}")
        mlflow_client.set_registered_model_alias(name, "champion", "1")
        mlflow_client.set_registered_model_alias(name, "challenger", "2")


def fill_ledger(ledger_url: str, names: list[str], now: datetime, days: int) -> dict[str, int]:
    from registry.ledger import alias_moves, ledger_at
    from registry.ledger import metadata as ledger_metadata
    from registry.monitor_checks import metadata as checks_metadata
    from registry.monitor_checks import monitor_checks
    from registry.validation_records import metadata as validation_metadata
    from registry.validation_records import validations

    engine = ledger_at(ledger_url).engine
    for schema in (ledger_metadata, checks_metadata, validation_metadata):
        schema.create_all(engine)
    rng = np.random.default_rng(1)
    moves, checks, windows = [], [], []
    start = now - timedelta(days=days)
    for name in names:
        for sequence, day in enumerate(range(0, days, 4), start=1):
            moves.append(
                {
                    "model_name": name,
                    "sequence": sequence,
                    "alias": "champion" if sequence % 2 else "challenger",
                    "from_version": 1,
                    "to_version": 2,
                    "kind": "promote",
                    "at": (start + timedelta(days=day)).isoformat(),
                    "actor": f"promote_{name}/run-{sequence}",
                    "reason": "better",
                    "evidence": json.dumps({"delta": 0.01, "ci_low": 0.002}),
                    "forced": False,
                }
            )
        for step in range(days * 4):
            at = start + timedelta(hours=6 * step)
            features = {
                f: {
                    "kind": "numeric",
                    "psi": float(rng.random() * 0.3),
                    "psi_band": [0, 0.1],
                    "test": "ks",
                    "statistic": 0.1,
                    "p_value": 0.5,
                    "drifted": False,
                }
                for f in FEATURES
            }
            signals = {
                "performance": {
                    "metric": "accuracy",
                    "value": 0.8,
                    "lower": 0.75,
                    "upper": 0.85,
                    "floor": 0.7,
                    "fired": False,
                },
                "drift": {
                    "fired": False,
                    "reason": "",
                    "rows": 500,
                    "source": "prediction_log",
                    "features": features,
                },
            }
            checks.append(
                {
                    "model_name": name,
                    "checked_at": at.isoformat(timespec="microseconds"),
                    "champion_version": 1,
                    "outcome": "quiet",
                    "fired": "[]",
                    "reason": "nothing fired",
                    "signals": json.dumps(signals),
                    "run_id": f"monitor_{name}/{step}",
                }
            )
        for day in range(days):
            at = start + timedelta(days=day, hours=1)
            passed = bool(rng.random() > 0.1)
            windows.append(
                {
                    "model_name": name,
                    "validated_at": at.isoformat(),
                    "window_start": at.date().isoformat(),
                    "window_end": at.date().isoformat(),
                    "rows": 5000,
                    "passed": passed,
                    "failed_checks": "[]" if passed else json.dumps(["rows: 120 < 500"]),
                    "run_id": None,
                }
            )
    with engine.begin() as connection:
        connection.execute(alias_moves.insert(), moves)
        connection.execute(monitor_checks.insert(), checks)
        connection.execute(validations.insert(), windows)
    return {"moves": len(moves), "checks": len(checks), "validations": len(windows)}


def fill_prediction_log(
    log_url: str, names: list[str], now: datetime, days: int, per_day: int
) -> int:
    from gateway.predlog import create_engine, log_tables

    engine, tables = create_engine(log_url), log_tables()
    tables.metadata.create_all(engine)
    rng = np.random.default_rng(2)
    start = now - timedelta(days=days)
    step = timedelta(days=1) / per_day
    total = 0
    for name in names:
        count = days * per_day
        scores = rng.random(count)
        labels = (rng.random(count) < np.where(scores > 0.5, 0.85, 0.2)).astype(float)
        rows = [
            {
                "request_id": f"{name}-{i}",
                "row_index": 0,
                "model_name": name,
                "version": 1,
                "role": "champion",
                "routing_key": None,
                "features": {},
                "prediction": float(scores[i]),
                "error": None,
                "latency_ms": 3.0,
                "created_at": start + step * i,
            }
            for i in range(count)
        ]
        label_rows = [
            {
                "model_name": name,
                "request_id": f"{name}-{i}",
                "row_index": 0,
                "label": float(labels[i]),
                "labeled_at": start + step * i,
            }
            for i in range(count)
        ]
        with engine.begin() as connection:
            connection.execute(tables.predictions.insert(), rows)
            connection.execute(tables.labels.insert(), label_rows)
        total += count
    engine.dispose()
    return total


def naive_metric(log_url: str, name: str, since: datetime, until: datetime, bucket_s: int) -> list:
    """The baseline: every labeled champion row of the period read into Python, bucketed per row."""
    from gateway.predlog import create_engine, log_tables

    engine, tables = create_engine(log_url), log_tables()
    log, labels = tables.predictions, tables.labels
    query = (
        sa.select(log.c.created_at, log.c.prediction, labels.c.label)
        .select_from(
            log.join(
                labels,
                sa.and_(
                    labels.c.model_name == log.c.model_name,
                    labels.c.request_id == log.c.request_id,
                    labels.c.row_index == log.c.row_index,
                ),
            )
        )
        .where(
            log.c.model_name == name,
            log.c.role == "champion",
            log.c.error.is_(None),
            log.c.created_at >= since,
            log.c.created_at < until,
        )
    )
    buckets: dict[int, list[int]] = {}
    with engine.connect() as connection:
        for created_at, prediction, label in connection.execute(query):
            moment = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
            counts = buckets.setdefault(int(moment.timestamp()) // bucket_s, [0, 0])
            counts[0] += 1
            counts[1] += (prediction >= 0.5) == (label >= 0.5)
    engine.dispose()
    return sorted((float(b), n, c) for b, (n, c) in buckets.items())


def median_ms(action: Callable[[], object], repeat: int) -> tuple[float, object]:
    timings, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rows-per-day", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="monitoring-bench-"))
    tracking_uri = f"sqlite:///{work / 'mlflow.db'}"
    log_url = f"sqlite:///{work / 'predictions.db'}"
    os.environ.update(
        MLFLOW_TRACKING_URI=tracking_uri,
        GATEWAY_LOG_URL=log_url,
        PROMOTION_POLICIES_DIR=str(work / "policies"),
    )
    os.environ.pop("PROMOTION_LEDGER_URL", None)
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    from monitoring import queries
    from monitoring.pages import model_page, overview_page
    from monitoring.readings import bucket_seconds
    from monitoring.settings import MonitoringSettings
    from monitoring.view import Sources, model_view, overview

    names = [f"model_{i:02d}" for i in range(args.models)]
    now = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    write_policies(work / "policies", names)
    register_models(names)
    settings = MonitoringSettings.from_environment()
    counts = fill_ledger(settings.ledger_url, names, now, args.days)
    counts["prediction_rows"] = fill_prediction_log(
        log_url, names, now, args.days, args.rows_per_day
    )
    print(f"data written in {time.perf_counter() - started:.1f} s: {counts}")

    sources = Sources(settings, None)
    policy = sources.policy(names[0])
    since = now - timedelta(days=args.days)
    bucket_s = bucket_seconds(since, now)
    log = queries.prediction_log(log_url)

    overview_ms, _ = median_ms(
        lambda: overview_page(overview(sources, now=now), user="bench"), args.repeat
    )
    page_ms, _ = median_ms(
        lambda: model_page(model_view(sources, policy, now=now, days=args.days), user="bench"),
        args.repeat,
    )
    query_ms, by_sql = median_ms(
        lambda: queries.champion_accuracy(log, names[0], since=since, until=now, bucket_s=bucket_s),
        args.repeat,
    )
    naive_ms, by_python = median_ms(
        lambda: naive_metric(log_url, names[0], since, now, bucket_s), args.repeat
    )
    if sorted(by_sql) != by_python:
        raise SystemExit("the view's SQL series and the per-row baseline disagree")

    print(
        f"\n{args.models} models, {args.days} days, {counts['prediction_rows']:,} labeled predictions, "
        f"{counts['checks']:,} monitor checks, {counts['validations']:,} validations, {counts['moves']:,} moves; "
        f"bucket {bucket_s // 3600} h; median of {args.repeat}\n"
    )
    print("| what | view ms | naive per-row baseline ms | baseline / view |")
    print("| --- | --- | --- | --- |")
    print(
        f"| champion metric series, one model, {args.days} days | {query_ms:.1f} | {naive_ms:.1f} | "
        f"{naive_ms / query_ms:.1f}× |"
    )
    print(
        f"| one model's page ({args.days} days: queries, 3 charts, HTML) | {page_ms:.1f} | – | – |"
    )
    print(f"| overview of {args.models} models | {overview_ms:.1f} | – | – |")
    result = {
        "models": args.models,
        "days": args.days,
        "prediction_rows": counts["prediction_rows"],
        "monitor_checks": counts["checks"],
        "overview_ms": round(overview_ms, 1),
        "model_page_ms": round(page_ms, 1),
        "metric_series_ms": round(query_ms, 1),
        "naive_metric_series_ms": round(naive_ms, 1),
        "speedup_vs_naive": round(naive_ms / query_ms, 2),
    }
    print(f"RESULT {json.dumps(result)}")


if __name__ == "__main__":
    main()
