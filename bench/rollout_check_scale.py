"""One rollout check's reads over a prediction log of 10,000,000 rows in PostgreSQL.

The check reads each step's totals with `gateway.predlog.window_totals`: whole minutes from the
per-minute totals, which it first brings up to date for the minutes whose rows or labels changed
since the last check (database triggers mark them), the seconds at the steps' edges from the
rows. Measured in this run, on a temporary database that is dropped:

- the first check after the 10M rows are loaded, which adds up every minute (what every check
  cost before the per-minute totals: one pass over all rows of the windows);
- the steady check (the headline): what a sensor poke finds after one more minute of traffic
  and the labels of one minute of requests of an hour ago arrived since the previous poke;
- a check after labels arrived for requests spread over the whole day (every minute changed);
- the baseline `arm_windows`, the reader the rollout used before `window_totals`, which pulls
  every row of the window into Python: measured at 100,000 rows and extrapolated ×100.

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


ARRIVALS = """
INSERT INTO prediction_log (request_id, row_index, model_name, version, role, features,
                            prediction, latency_ms, created_at)
SELECT 'late' || :tag || '-' || i, 0, :model, 1 + (i % {every} = 0)::int,
       CASE WHEN i % {every} = 0 THEN 'canary' ELSE 'champion' END,
       '{{}}'::json, random(), 1 + 20 * random(), :since + (i * :step) * interval '1 second'
FROM generate_series(1, :requests) AS i;
INSERT INTO prediction_log (request_id, row_index, model_name, version, role, features,
                            prediction, latency_ms, created_at)
SELECT 'late' || :tag || '-' || i, 0, :model, 1, 'champion_paired', '{{}}'::json, random(),
       1 + 20 * random(), :since + (i * :step) * interval '1 second'
FROM generate_series({every}, :requests, {every}) AS i;
"""

LABELS = """
INSERT INTO prediction_labels (model_name, request_id, row_index, label, labeled_at)
SELECT model_name, request_id, 0, (random() < 0.5)::int, now() FROM prediction_log
WHERE model_name = :model AND role IN ('champion', 'canary') AND created_at >= :since AND created_at < :until
  AND {spread}
ON CONFLICT DO NOTHING
"""


def one_more_minute(engine: sa.Engine, model: str, rows: int, since: datetime, tag: str) -> None:
    """A minute of traffic at the rate of the log (in the database), from `since`."""
    requests = rows * CANARY_EVERY // (CANARY_EVERY + 1) // int(SPAN.total_seconds() / 60)
    with engine.begin() as connection:
        for statement in filter(str.strip, ARRIVALS.format(every=CANARY_EVERY).split(";")):
            connection.execute(
                sa.text(statement),
                {
                    "model": model,
                    "tag": tag,
                    "requests": requests,
                    "since": since,
                    "step": 60 / requests,
                },
            )


def labels_arrive(
    engine: sa.Engine, model: str, since: datetime, until: datetime, spread: str = "true"
) -> int:
    """Labels for the answered (champion and canary) requests in [since, until) that match
    `spread` and have none yet; the number stored."""
    with engine.begin() as connection:
        return connection.execute(
            sa.text(LABELS.format(spread=spread)), {"model": model, "since": since, "until": until}
        ).rowcount


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
    parser.add_argument(
        "--rows", type=int, default=BIG, help="rows of the big log (a trial run: fewer)"
    )
    args = parser.parse_args()
    big = args.rows
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
        generate(engine, "big", big, start)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
        print(f"generated {big + SMALL:,} rows in {time.perf_counter() - began:.0f} s")
        windows = steps(start, end)
        last_hour = [(end - timedelta(hours=1), end)]

        def old(model: str) -> Callable[[], object]:
            return lambda: [
                arm_windows(engine, tables, model, since=a, until=b) for a, b in windows
            ]

        def check(model: str, span: list) -> Callable[[], object]:
            # What a canary check reads: both arms and the canary's pairs, per step.
            return lambda: window_totals(
                engine, tables, model, span, pairs=[("canary", CHAMPION_PAIRED)]
            )

        old_small = measured(old("small"))
        first_small = measured(check("small", windows))
        first_big = measured(check("big", windows))
        # One sensor poke later: a minute of traffic, and the labels of a minute an hour ago.
        one_more_minute(engine, "big", big, end - timedelta(minutes=1), "a")
        hour_ago = end - timedelta(minutes=61)
        labeled = labels_arrive(engine, "big", hour_ago, hour_ago + timedelta(minutes=1))
        steady_big = measured(check("big", windows))
        steady_hour = measured(check("big", last_hour))
        # Labels for 1 request in 1,000 of the day: every minute changed.
        scattered = labels_arrive(
            engine,
            "big",
            start,
            end,
            "CASE WHEN request_id LIKE 'r%' THEN substr(request_id, 2)::bigint % 1000 = 7 END",
        )
        scattered_big = measured(check("big", windows))
        scale = big / SMALL
        old_big = (old_small[0] * scale, old_small[1] * scale)
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    print()
    print(f"load average while measured: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'reader (3 steps unless said)':60} {'rows':>12} {'seconds':>9} {'peak MB':>9}")
    table = [
        ("arm_windows (rows into Python)", SMALL, old_small),
        (f"arm_windows, extrapolated ×{big // SMALL} (baseline)", big, old_big),
        ("window_totals, first check: adds up every minute", SMALL, first_small),
        ("window_totals, first check: adds up every minute", big, first_big),
        (f"window_totals, next poke: +1 minute, +{labeled:,} labels", big, steady_big),
        ("window_totals, next poke, the last hour only", big, steady_hour),
        (f"window_totals, {scattered:,} labels over the whole day", big, scattered_big),
    ]
    for label, rows, (seconds, peak) in table:
        print(f"{label:60} {rows:>12,} {seconds:>9.3f} {peak:>9.2f}")
    print()
    print(
        f"at 10M rows the steady check is {first_big[0] / steady_big[0]:.0f}× faster than the "
        f"first (a pass over every row) and {old_big[0] / steady_big[0]:.0f}× faster than "
        f"arm_windows extrapolated; peak memory {steady_big[1]:.2f} MB at 10M rows against "
        f"{first_small[1]:.2f} MB at 100k"
    )
    result = {
        "check_seconds_10m": round(steady_big[0], 3),
        "peak_mb_10m": round(steady_big[1], 3),
        "check_seconds_last_hour_of_10m": round(steady_hour[0], 3),
        "first_check_seconds_10m": round(first_big[0], 2),
        "labels_over_the_day_check_seconds_10m": round(scattered_big[0], 2),
        "baseline_seconds_10m_extrapolated": round(old_big[0], 2),
        "baseline_peak_mb_10m_extrapolated": round(old_big[1], 1),
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
