"""One rollout check over a SQLite prediction log (the default a new user gets), against the query
plan SQLite chose before the change.

The check (`gateway.predlog.window_totals`, as `workflow.rollout.check` calls it) first adds up the
minutes whose rows changed since the last check, pairing each canary row with the champion's copy
of the same request (`champion_paired`). Two setups, each on its own copy of the same log, in
alternating rounds:

- the check now: each copy is looked up by its request's key;
- the baseline, the plan SQLite chose before: the copies found by the time index as well, so every
  copy of the minutes being added up is read again for each answered row. The benchmark rebuilds
  it by leaving out the one term that keeps SQLite off that index.

Traffic: `--requests-per-minute` requests over `--minutes` minutes, half answered by the canary
and scored again by the champion, every row labeled; the first check after the traffic (every
minute changed) is timed, the way a rollout's first poke of a step finds it.

Run: .venv/bin/python bench/rollout_check_sqlite.py [--minutes 5] [--requests-per-minute 600]

The last line is `RESULT {json}`: `check_seconds` (now), `check_seconds_baseline`, `speedup`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway import predlog  # noqa: E402  (the project, from the checkout above)
from gateway.predlog import (  # noqa: E402
    CHAMPION_PAIRED,
    Label,
    create_engine,
    ensure_tables,
    log_tables,
    record_labels,
    window_totals,
)

BASELINE = "the plan before (copies by time)"
HEADLINE = "the check now (copies by key)"
START = datetime(2026, 6, 1, 12, tzinfo=UTC)


def fill(url: str, minutes: int, per_minute: int) -> None:
    """The log's rows: per request an answered row (champion or canary) and, for the canary's,
    the champion's copy; every request labeled."""
    engine, tables = create_engine(url), log_tables()
    ensure_tables(engine, tables)
    rows, labels = [], []
    step = timedelta(minutes=1) / per_minute
    for i in range(minutes * per_minute):
        at = START + i * step
        request = f"r{i:08d}"
        role, version = ("canary", 2) if i % 2 else ("champion", 1)
        common = {"request_id": request, "row_index": 0, "model_name": "churn", "features": {}}
        rows.append(
            {
                **common,
                "version": version,
                "role": role,
                "prediction": (i % 7) / 7,
                "latency_ms": 2.0,
                "created_at": at,
            }
        )
        if role == "canary":
            rows.append(
                {
                    **common,
                    "version": 1,
                    "role": CHAMPION_PAIRED,
                    "prediction": (i % 5) / 5,
                    "latency_ms": 0.0,
                    "created_at": at,
                }
            )
        labels.append(Label(request, float(i % 3 == 0)))
    with engine.begin() as connection:
        connection.execute(tables.predictions.insert(), rows)
    record_labels(engine, tables, "churn", labels)
    engine.dispose()


@contextmanager
def plan_before():
    """The check as it was: the copies' time terms left open to SQLite's index choice."""
    kept = predlog.UnaryExpression
    predlog.UnaryExpression = lambda column, **_: column
    try:
        yield
    finally:
        predlog.UnaryExpression = kept


def one_check(url: str, minutes: int) -> tuple[float, int]:
    """Seconds of the first check after the traffic, and the pairs it compared."""
    engine = create_engine(url)
    window = (START, START + timedelta(minutes=minutes))
    started = time.perf_counter()
    (totals,) = window_totals(
        engine, log_tables(), "churn", [window], pairs=[("canary", CHAMPION_PAIRED)]
    )
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed, sum(pair.compared for pair in totals.pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=5)
    parser.add_argument("--requests-per-minute", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="rollout-check-sqlite-"))
    try:
        filled = workdir / "filled.db"
        fill(f"sqlite:///{filled}", args.minutes, args.requests_per_minute)
        seconds: dict[str, list[float]] = {BASELINE: [], HEADLINE: []}
        compared: dict[str, set[int]] = {BASELINE: set(), HEADLINE: set()}
        for round_ in range(args.rounds):
            for name in (BASELINE, HEADLINE):
                copy = workdir / f"check-{round_}-{len(seconds[name])}-{name[:3]}.db"
                shutil.copy(filled, copy)
                url = f"sqlite:///{copy}"
                if name == BASELINE:
                    with plan_before():
                        elapsed, pairs = one_check(url, args.minutes)
                else:
                    elapsed, pairs = one_check(url, args.minutes)
                seconds[name].append(elapsed)
                compared[name].add(pairs)
                copy.unlink()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if compared[BASELINE] != compared[HEADLINE] or len(compared[HEADLINE]) != 1:
        raise SystemExit(f"the setups counted different pairs: {compared}")

    rows = args.minutes * args.requests_per_minute * 3 // 2
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print(
        f"first rollout check over a SQLite log of {rows:,} rows ({args.minutes} minutes, "
        f"{args.requests_per_minute} requests a minute, half of them canary with the champion's "
        f"copy), {compared[HEADLINE].pop():,} pairs compared, median of {args.rounds} rounds\n"
    )
    print(f"{'setup':36} {'seconds':>9} {'vs baseline':>12}")
    for name in (BASELINE, HEADLINE):
        value = medians[name]
        print(f"{name:36} {value:9.3f} {medians[BASELINE] / value:11.1f}x")
    print(
        "RESULT "
        + json.dumps(
            {
                "check_seconds": round(medians[HEADLINE], 3),
                "check_seconds_baseline": round(medians[BASELINE], 3),
                "speedup": round(medians[BASELINE] / medians[HEADLINE], 1),
            }
        )
    )


if __name__ == "__main__":
    main()
