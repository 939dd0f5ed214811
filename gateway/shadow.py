"""Score a copy of a request off the request path: with the shadow version (role `shadow`), or,
while a canary answers, the canary's requests with the champion (role `champion_paired`, the
canary's paired evidence). Neither is ever returned.

The request thread only puts a job on a bounded queue (dropping it, counted per role, when the
queue is full), so the copy can neither slow nor fail an answer. One worker thread collects the
jobs that arrive within `max_wait_s` of the first and scores them in calls of up to `batch_rows`
rows per version and role: batching keeps the copies' CPU cost, and so their pull on the
answers' latency, small.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from gateway.batching import Copies
from gateway.compiled import ModelInput
from gateway.holder import LoadedVersion
from gateway.microbatch import merged
from gateway.payload import Columns

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShadowJob:
    """One answered request to be scored again, off the request path, by a version it had when
    it arrived (`shadow`: the shadow, or for `role` champion_paired the champion)."""

    request_id: str
    routing_key: str | None
    columns: Columns
    shadow: LoadedVersion
    at: datetime
    role: str = "shadow"


def batches(jobs: list[ShadowJob], max_rows: int) -> list[list[ShadowJob]]:
    """The jobs in order, cut into batches of at most `max_rows` rows (a job larger than that is a
    batch of its own)."""
    cut: list[list[ShadowJob]] = []
    rows = 0
    for job in jobs:
        if not cut or rows + job.columns.n_rows > max_rows:
            cut.append([])
            rows = 0
        cut[-1].append(job)
        rows += job.columns.n_rows
    return cut


@dataclass
class ShadowStats:
    """Counts per model and role, shown on the status endpoint."""

    scored: int = 0
    failed: int = 0
    dropped: int = 0
    last_error: str | None = None


class ShadowRunner:
    """The queue and the worker that scores copies (shadow and champion_paired) and hands them
    to the log."""

    def __init__(
        self,
        log: Callable[[Copies], None],
        *,
        queue_size: int,
        batch_rows: int,
        max_wait_s: float,
    ) -> None:
        self._log = log
        # The C queue: a put costs the request path a fraction of `queue.Queue`'s.
        self._queue: queue.SimpleQueue[ShadowJob | None] = queue.SimpleQueue()
        self._queue_size = queue_size
        self._batch_rows = batch_rows
        self._max_wait_s = max_wait_s
        self._stats: dict[tuple[str, str], ShadowStats] = {}
        self._thread: threading.Thread | None = None

    def stats(self, model_name: str, role: str = "shadow") -> ShadowStats:
        """The counts of one model's copies of a role (zeros before its first job)."""
        return self._stats.setdefault((model_name, role), ShadowStats())

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
        self._thread.start()

    def submit(self, job: ShadowJob) -> None:
        """Queue a job without waiting; a full queue drops it (counted) instead of blocking."""
        if self._queue.qsize() >= self._queue_size:
            self.stats(job.shadow.model_name, job.role).dropped += 1
            return
        self._queue.put(job)

    def close(self, timeout_s: float) -> None:
        """Score what is queued (for at most `timeout_s`) and stop the worker."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout_s)
        if self._thread.is_alive() or not self._queue.empty():
            logger.error("shadow: %d jobs not scored at shutdown", self._queue.qsize())

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            # Let the copies gather by sleeping, not by waiting on the queue: a wait wakes this
            # thread at every job, and each wake-up takes the interpreter lock from the answers.
            time.sleep(self._max_wait_s)
            jobs, stop = [first], False
            while True:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
            for batch in batches(jobs, self._batch_rows):
                self._score(batch)
            if stop:
                return

    def _score(self, jobs: list[ShadowJob]) -> None:
        groups: dict[tuple, list[ShadowJob]] = {}
        for job in jobs:
            columns = job.columns
            key = (job.shadow.model_name, job.shadow.version, job.role, tuple(columns.values))
            groups.setdefault((*key, columns.textual), []).append(job)
        for group in groups.values():
            self._score_group(group)

    def _score_group(self, group: list[ShadowJob]) -> None:
        """Score jobs of one version and role whose payloads have the same columns; each job that
        cannot be scored is counted failed once (a shadow failure is logged, never raised)."""
        shadow = group[0].shadow
        try:
            model_input: ModelInput | None = shadow.inputs(merged([j.columns for j in group]))[1]
        except ValueError:
            # One job's values do not fit the version: fail that one alone, score the rest.
            fitting = []
            for job in group:
                try:
                    shadow.checked_values(job.columns)
                    fitting.append(job)
                except ValueError as error:
                    self._failed([job], error)
            group, model_input = fitting, None
        if not group:
            return
        try:
            if model_input is None:
                _, model_input = shadow.inputs(merged([job.columns for job in group]))
            self._answer(group, model_input)
        except Exception as error:
            self._failed(group, error)

    def _answer(self, jobs: list[ShadowJob], model_input: ModelInput) -> None:
        shadow = jobs[0].shadow
        started = time.perf_counter()
        answers = shadow.answer(model_input)
        latency_ms = (time.perf_counter() - started) * 1000
        self._log(
            self._copies(jobs, latency_ms)(
                scores=answers.scores,
                classes=answers.classes,
                probabilities=answers.probabilities,
            )
        )
        self.stats(shadow.model_name, jobs[0].role).scored += len(jobs)

    @staticmethod
    def _copies(jobs: list[ShadowJob], latency_ms: float) -> Callable[..., Copies]:
        """The log record of the jobs (of one version and role), given their outcome."""
        return partial(
            Copies,
            model_name=jobs[0].shadow.model_name,
            version=jobs[0].shadow.version,
            role=jobs[0].role,
            request_ids=[job.request_id for job in jobs],
            routing_keys=[job.routing_key for job in jobs],
            ats=[job.at for job in jobs],
            row_counts=[job.columns.n_rows for job in jobs],
            latency_ms=latency_ms,
        )

    def _failed(self, jobs: list[ShadowJob], error: Exception) -> None:
        model_name, role, count = jobs[0].shadow.model_name, jobs[0].role, len(jobs)
        self._log(self._copies(jobs, 0.0)(scores=None, error=f"{type(error).__name__}: {error}"))
        stats = self.stats(model_name, role)
        stats.failed += count
        stats.last_error = f"{type(error).__name__}: {error}"
        # Log the first failure and then every hundredth, so a broken shadow cannot flood the log.
        if stats.failed - count < 1 or stats.failed // 100 != (stats.failed - count) // 100:
            logger.warning(
                "%s %s: %d failed so far; last: %s",
                model_name,
                role,
                stats.failed,
                stats.last_error,
            )
