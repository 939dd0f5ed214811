"""One rollout check's reads over a prediction log of 10,000,000 rows in PostgreSQL.

The check reads each step's totals with `gateway.predlog.window_totals` (GROUP BY in the
database). The baseline is the reader the rollout used before, `arm_windows`, which pulls every
row of the window into Python: measured at 100,000 rows (what it can handle) and extrapolated
linearly to 10,000,000. Both are measured in this run, on a temporary database that is dropped.

Traffic: a canary answering 20 % of requests, the champion scoring each of them again
(champion_paired), a fifth of requests labeled, spread over 24 hours that the rollout's three
steps cover.

Run: .venv/bin/python bench/rollout_check_scale.py [--url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.predlog import (  # noqa: E402  (the project, from the checkout above)
    CHAMPION_PAIRED,
    arm_windows,
    create_engine,
    ensure_tables,
    log_tables,
    window_totals,
)

BIG, SMALL = 10_000_000, 100_000
CANARY_EVERY = 5  # one request in five goes to the canary and is scored again by the champion
SPAN = timedelta(hours=24)

GENERATE = """
INSERT INTO prediction_log (request_id, row_index, model_name, version, role, features,
                            prediction, latency_ms, created_at)
SELECT 'r' || i, 0, :model, 1 + (i % {every} = 0)::int,
       CASE WHEN i % {every} = 0 THEN 'canary' ELSE 'champion' END,
       '{{}}'::json, random(), 1 + 20 * random(), :start + (i * :step) * interval '1 second'
FROM generate_series(1, :requests) AS i;
INSERT INTO prediction_log (request_id, row_index, model_name, version, role, features,
                            prediction, latency_ms, created_at)
SELECT 'r' || i, 0, :model, 1, 'champion_paired', '{{}}'::json, random(), 1 + 20 * random(),
       :start + (i * :step) * interval '1 second'
FROM generate_series({every}, :requests, {every}) AS i;
INSERT INTO prediction_labels (model_name, request_id, row_index, label, labeled_at)
SELECT :model, 'r' || i, 0, (random() < 0.5)::int, :start + SPAN_END
FROM generate_series(1, :requests) AS i WHERE i % 10 IN (0, 3);
"""


def generate(engine: sa.Engine, model: str, rows: int, start: datetime) -> None:
    """`rows` log rows of `model` over SPAN from `start`, in the database (no Python rows)."""
    requests = rows * CANARY_EVERY // (CANARY_EVERY + 1)
    statements = GENERATE.format(every=CANARY_EVERY).replace(
        "SPAN_END", f"interval '{int(SPAN.total_seconds())} seconds'"
    )
    with engine.begin() as connection:
        for statement in filter(str.strip, statements.split(";")):
            connection.execute(
                sa.text(statement),
                {
                    "model": model,
                    "requests": requests,
                    "start": start,
                    "step": SPAN.total_seconds() / requests,
                },
            )


def measured(read: Callable[[], object]) -> tuple[float, float]:
    """Seconds and peak Python memory (MB, tracemalloc) of one call."""
    tracemalloc.start()
    started = time.perf_counter()
    read()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return seconds, peak


def steps(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    third = (end - start) / 3
    return [(start + i * third, start + (i + 1) * third) for i in range(3)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    name = f"rollout_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(args.url).set(database=name).render_as_string(hide_password=False)
    engine, tables = create_engine(url), log_tables()
    try:
        ensure_tables(engine, tables)
        start = datetime.now(UTC) - SPAN
        end = start + SPAN + timedelta(seconds=1)
        began = time.perf_counter()
        generate(engine, "small", SMALL, start)
        generate(engine, "big", BIG, start)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
        print(f"generated {BIG + SMALL:,} rows in {time.perf_counter() - began:.0f} s")
        windows = steps(start, end)
        last_hour = [(end - timedelta(hours=1), end)]

        def old(model: str) -> Callable[[], object]:
            return lambda: [
                arm_windows(engine, tables, model, since=a, until=b) for a, b in windows
            ]

        def new(model: str, span: list) -> Callable[[], object]:
            # What a canary check reads: both arms and the canary's pairs, per step.
            return lambda: window_totals(
                engine, tables, model, span, pairs=[("canary", CHAMPION_PAIRED)]
            )

        old_small = measured(old("small"))
        new_small = measured(new("small", windows))
        new_big = measured(new("big", windows))
        new_hour = measured(new("big", last_hour))
        scale = BIG / SMALL
        old_big = (old_small[0] * scale, old_small[1] * scale)
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    print()
    print(f"load average while measured: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'reader':52} {'rows':>12} {'seconds':>9} {'peak MB':>9}")
    table = [
        ("arm_windows (rows into Python), 3 steps", SMALL, old_small),
        ("window_totals (SQL aggregates), 3 steps", SMALL, new_small),
        ("arm_windows, extrapolated ×100", BIG, old_big),
        ("window_totals, 3 steps over all rows", BIG, new_big),
        ("window_totals, the last hour of the 10M-row log", BIG // 24, new_hour),
    ]
    for label, rows, (seconds, peak) in table:
        print(f"{label:52} {rows:>12,} {seconds:>9.2f} {peak:>9.2f}")
    print()
    print(
        f"at 100k rows: window_totals is {old_small[0] / new_small[0]:.1f}× faster and uses "
        f"{old_small[1] / new_small[1]:.0f}× less memory than arm_windows"
    )
    print(
        f"at 10M rows: {old_big[0] / new_big[0]:.1f}× faster than arm_windows extrapolated; "
        f"peak memory {new_big[1]:.2f} MB vs {new_small[1]:.2f} MB at 100k rows"
    )
    result = {
        "check_seconds_10m": round(new_big[0], 3),
        "peak_mb_10m": round(new_big[1], 3),
        "check_seconds_last_hour_of_10m": round(new_hour[0], 3),
        "baseline_seconds_10m_extrapolated": round(old_big[0], 2),
        "baseline_peak_mb_10m_extrapolated": round(old_big[1], 1),
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
