"""What the prediction log's writer spends per row on a SQLite log that already holds rows.

The writer (`gateway.predlog.write_entries`) inserts batches of 500 rows: each request's answered
row with its features and its shadow copy's row, as the gateway logs a request with a shadow. Three
setups, measured in alternating rounds in this run, each on its own log first filled with
`--rows` rows of the same kind:

- the baseline, as the log was written before: random request ids (UUIDv4, what the gateway gave)
  and SQLite's default rollback journal;
- random ids, the log in write-ahead mode;
- the gateway's ids now (UUIDv7, ordered by time), write-ahead mode (the headline).

The figure is the writer's CPU time per row (Python and SQLite's own work together), the median of
the rounds.

Run: .venv/bin/python bench/log_write.py [--rows 200000] [--rounds 5]

The last line is `RESULT {json}`: `us_per_row` (the headline setup), `us_per_row_baseline`, and
`speedup_vs_baseline`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.app import new_request_id  # noqa: E402
from gateway.batching import LogEntry  # noqa: E402
from gateway.predlog import create_engine, ensure_tables, log_tables, write_entries  # noqa: E402

BATCH_ROWS = 500
FEATURES = {
    "sessions_7d": [3.0],
    "days_since_signup": [400.0],
    "avg_order_value": [35.2],
    "support_tickets": [0.0],
    "plan": ["pro"],
    "region": ["eu"],
}
BASELINE = "random ids, rollback journal (before)"
HEADLINE = "ordered ids, write-ahead (now)"


class Traffic:
    """Batches of answered rows and their shadow rows, a request every 200 µs of log time."""

    def __init__(self, new_id: Callable[[], str]) -> None:
        self._new_id = new_id
        self._start = datetime.now(UTC)
        self._requests = 0

    def batch(self) -> list[LogEntry]:
        entries = []
        for _ in range(BATCH_ROWS // 2):
            self._requests += 1
            request_id = self._new_id()
            at = self._start + timedelta(microseconds=200 * self._requests)
            entries.append(
                LogEntry(request_id, "churn", 1, "champion", None, FEATURES, [0.5], 1.2, at)
            )
            entries.append(LogEntry(request_id, "churn", 2, "shadow", None, None, [0.4], 0.3, at))
        return entries


def open_log(path: Path, journal: str) -> sa.Engine:
    """A log at `path` in the given journal mode (`create_engine` asks for write-ahead at each
    connection; the baseline's engine turns it back to the rollback journal)."""
    engine = create_engine(f"sqlite:///{path}")
    if journal != "wal":

        @sa.event.listens_for(engine, "connect")
        def _rollback_journal(dbapi_connection, _record) -> None:
            dbapi_connection.execute(f"PRAGMA journal_mode={journal}").fetchall()

    ensure_tables(engine, log_tables())
    with engine.connect() as connection:
        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar_one()
    if mode != journal:
        raise RuntimeError(f"{path}: journal mode {mode}, not {journal}")
    return engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows in each log before")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per setup")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="log-write-bench-"))
    table = log_tables().predictions
    setups = {
        BASELINE: (lambda: uuid.uuid4().hex, "delete"),
        "random ids, write-ahead": (lambda: uuid.uuid4().hex, "wal"),
        HEADLINE: (new_request_id, "wal"),
    }
    logs = {}
    try:
        for index, (name, (new_id, journal)) in enumerate(setups.items()):
            engine = open_log(workdir / f"log-{index}.db", journal)
            traffic = Traffic(new_id)
            for _ in range(args.rows // BATCH_ROWS):
                write_entries(engine, table, traffic.batch(), {})
            logs[name] = (engine, traffic)
        per_row: dict[str, list[float]] = {name: [] for name in setups}
        for _ in range(args.rounds):
            for name, (engine, traffic) in logs.items():
                batches = [traffic.batch() for _ in range(10)]
                started = time.process_time()
                for batch in batches:
                    write_entries(engine, table, batch, {})
                elapsed = time.process_time() - started
                per_row[name].append(elapsed / (len(batches) * BATCH_ROWS) * 1e6)
        for engine, _ in logs.values():
            engine.dispose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    medians = {name: statistics.median(values) for name, values in per_row.items()}
    print(
        f"prediction log writer on SQLite, batches of {BATCH_ROWS} rows (answered + shadow), "
        f"{args.rows:,} rows in each log first, {args.rounds} alternating rounds\n"
    )
    print(f"{'setup':40} {'CPU us/row':>11} {'vs baseline':>12}")
    for name, value in medians.items():
        print(f"{name:40} {value:11.1f} {medians[BASELINE] / value:11.2f}x")
    headline = {
        "us_per_row": round(medians[HEADLINE], 2),
        "us_per_row_baseline": round(medians[BASELINE], 2),
        "speedup_vs_baseline": round(medians[BASELINE] / medians[HEADLINE], 2),
    }
    print("RESULT " + json.dumps(headline))


if __name__ == "__main__":
    main()
