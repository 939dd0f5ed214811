"""What the gateway's worker processes tell each other, through the one thing they share: the
prediction log's database.

An MLflow webhook or an admin refresh reaches one worker. That worker refreshes at once and raises
the model's counter in `gateway_refresh_requests`; every worker reads the counters every
`poll_interval_s` and refreshes the models whose counter moved. A rollback so reaches every worker
within a fraction of a second instead of at their next alias poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import sqlalchemy as sa

from gateway.predlog import LogTables

logger = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.25


def announce_refresh(
    engine: sa.Engine, tables: LogTables, model_names: Iterable[str]
) -> dict[str, int]:
    """Raise each model's refresh counter, so every worker refreshes it; the counters as raised."""
    table = tables.refresh_requests
    now = datetime.now(UTC)
    raised_to: dict[str, int] = {}
    for name in dict.fromkeys(model_names):
        for _ in range(3):  # a sibling may insert the first row between our update and insert
            try:
                with engine.begin() as connection:
                    raised = connection.execute(
                        table.update()
                        .where(table.c.model_name == name)
                        .values(generation=table.c.generation + 1, requested_at=now)
                    )
                    if raised.rowcount == 0:
                        connection.execute(
                            table.insert().values(model_name=name, generation=1, requested_at=now)
                        )
                    raised_to[name] = connection.execute(
                        sa.select(table.c.generation).where(table.c.model_name == name)
                    ).scalar_one()
                break
            except sa.exc.IntegrityError:
                continue
    return raised_to


def refresh_generations(engine: sa.Engine, tables: LogTables) -> dict[str, int]:
    """Every model's refresh counter."""
    table = tables.refresh_requests
    with engine.connect() as connection:
        rows = connection.execute(sa.select(table.c.model_name, table.c.generation))
        return {row.model_name: row.generation for row in rows}


def moved(
    seen: dict[str, int],
    now: dict[str, int],
    served: Iterable[str],
    announced: dict[str, int] | None = None,
) -> list[str]:
    """The served models whose counter differs from the one last seen, but for those whose
    counter is still the one this worker raised itself (`announced`: it refreshed them then)."""
    announced = announced or {}
    return [
        name
        for name in served
        if name in now and now[name] != seen.get(name) and now[name] != announced.get(name)
    ]


class SiblingRefreshes:
    """Polls the refresh counters and asks this worker's follower to refresh what moved."""

    def __init__(
        self,
        engine: sa.Engine,
        tables: LogTables,
        served: list[str],
        request_refresh: Callable[[str], None],
        *,
        poll_interval_s: float = POLL_INTERVAL_S,
    ) -> None:
        self._engine = engine
        self._tables = tables
        self._served = served
        self._request_refresh = request_refresh
        self._poll_interval_s = poll_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[str, int] = {}
        self._announced: dict[str, int] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        """Read the counters as they are now (nothing to refresh for them), then poll."""
        self._seen = self._read() or {}
        self._thread = threading.Thread(target=self._run, name="sibling-refreshes", daemon=True)
        self._thread.start()

    def announce(self, model_names: Iterable[str]) -> None:
        """Ask the other workers to refresh models this worker has just refreshed itself; its
        own poller does not refresh them again for that. Raises SQLAlchemyError when the
        database is unreachable (the other workers then follow at their alias poll)."""
        with self._lock:  # so a poll reads the counters before the raise or after it is noted
            self._announced.update(announce_refresh(self._engine, self._tables, model_names))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _read(self) -> dict[str, int] | None:
        try:
            return refresh_generations(self._engine, self._tables)
        except sa.exc.SQLAlchemyError as error:  # the alias poll still covers a refresh
            logger.warning("could not read the workers' refresh requests: %s", error)
            return None

    def _run(self) -> None:
        while not self._stop.wait(self._poll_interval_s):
            with self._lock:
                now = self._read()
                if now is None:
                    continue
                due = moved(self._seen, now, self._served, self._announced)
                self._seen = now
            for name in due:
                self._request_refresh(name)
