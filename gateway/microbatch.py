"""Micro-batching: concurrent small requests to the same version scored in one call.

A one-row request spends most of its scoring time building its input frame and calling the model,
costs that barely grow with the rows: one call on 16 rows costs about as much as two on one. So the
event loop collects the requests that reach scoring together and scores each version's share in
one call, then hands every request its own rows' answers.

A batch is scored at the next turn of the event loop after its first request, or, while other
requests are still on their way through the handler (reading their body, checking their id), after
at most `max_wait_s` for them: a lone request never waits. Everything runs on the event loop, as a
single small request is scored without batching; a batch is bounded by `max_rows`.

Scoring is `score(version, columns) -> result`, the gateway's per-request scoring: a batch whose
joint call fails (one request's columns do not fit, say) is scored again request by request, so
each request gets its own answer or its own error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.payload import Columns

_POLL_S = 0.0002

ScoreFn = Callable[[Any, Columns], tuple[Any, Any, float]]
SplitFn = Callable[[tuple[Any, Any, float], int, int], tuple[Any, Any, float]]


@dataclass
class _Job:
    version: Any
    columns: Columns
    future: asyncio.Future


def merged(columns: list[Columns]) -> Columns:
    """One payload of the requests' rows, in order (they have the same columns)."""
    first = columns[0]
    return Columns(
        values={name: [v for c in columns for v in c.values[name]] for name in first.values},
        n_rows=sum(c.n_rows for c in columns),
        textual=first.textual,
    )


def group_key(job: _Job) -> tuple:
    """Requests scored together: same version object, same column names, same value kind."""
    return (id(job.version), tuple(job.columns.values), job.columns.textual)


class MicroBatcher:
    """Collects small requests on the event loop and scores them per version in one call."""

    def __init__(self, score: ScoreFn, split: SplitFn, *, max_rows: int, max_wait_s: float) -> None:
        self._score = score
        self._split = split
        self._max_rows = max_rows
        self._max_wait_s = max_wait_s
        self._pending: list[_Job] = []
        self._rows = 0
        self._first_at = 0.0
        self._scheduled = False
        self.in_flight = 0

    def entered(self) -> None:
        """A scoring request entered the handler (it may reach `score` soon)."""
        self.in_flight += 1

    def left(self) -> None:
        """A scoring request left the handler, answered or refused."""
        self.in_flight -= 1

    async def score(self, version: Any, columns: Columns) -> tuple[Any, Any, float]:
        """This request's result, scored with whatever else is scored at the same time."""
        loop = asyncio.get_running_loop()
        job = _Job(version, columns, loop.create_future())
        if not self._pending:
            self._first_at = time.monotonic()
        self._pending.append(job)
        self._rows += columns.n_rows
        if self._rows >= self._max_rows:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._due, loop)
        return await job.future

    def _due(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        if not self._pending:
            return
        others_coming = self.in_flight > len(self._pending)
        waited = time.monotonic() - self._first_at
        if others_coming and waited < self._max_wait_s:
            self._scheduled = True
            loop.call_later(min(_POLL_S, self._max_wait_s - waited), self._due, loop)
            return
        self._flush()

    def _flush(self) -> None:
        jobs, self._pending, self._rows = self._pending, [], 0
        groups: dict[tuple, list[_Job]] = {}
        for job in jobs:
            groups.setdefault(group_key(job), []).append(job)
        for group in groups.values():
            self._score_group(group)

    def _score_group(self, group: list[_Job]) -> None:
        if len(group) > 1:
            try:
                result = self._score(group[0].version, merged([job.columns for job in group]))
            except Exception:
                pass  # scored one by one below, each request with its own error
            else:
                start = 0
                for job in group:
                    end = start + job.columns.n_rows
                    _resolve(job.future, self._split(result, start, end))
                    start = end
                return
        for job in group:
            try:
                _resolve(job.future, self._score(job.version, job.columns))
            except Exception as error:
                if not job.future.done():
                    job.future.set_exception(error)


def _resolve(future: asyncio.Future, result: object) -> None:
    if not future.done():  # a caller that went away cancelled its wait
        future.set_result(result)
