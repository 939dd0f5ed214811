"""When the prediction log writes, and what one log entry becomes: pure, so it is tested alone."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

ERROR_LENGTH = 500


@dataclass(frozen=True)
class LogEntry:
    """One scored (or failed) request as the log receives it; expanded into rows off the request
    path. A failed one has `error` and neither features nor scores. `features` are the request's
    input values per column, plain values as the version read them (`conform_values`); without
    them its rows store none. Copies scored off the request path come as `Copies`.

    `scores` fill the log's `prediction` column: the positive-class probability (binary), the
    predicted value (regression), or the probability of the predicted class (multiclass, whose
    rows also carry the predicted class in `classes` and every class's probability).
    """

    request_id: str
    model_name: str
    version: int
    role: str
    routing_key: str | None
    features: Mapping[str, Sequence] | None
    scores: Sequence[float] | None
    latency_ms: float
    at: datetime
    error: str | None = None
    classes: Sequence[str] | None = None
    probabilities: Sequence[dict[str, float]] | None = None

    @property
    def n_rows(self) -> int:
        return 1 if self.scores is None else len(self.scores)


@dataclass(frozen=True)
class Copies:
    """Copies of answered requests scored together off the request path by one version in one
    role (`shadow`, or `champion_paired` during a canary), as the log receives them: one record
    per call, not per request, as the copies come in batches and the log writes one row for
    each of them beside every answer (building, passing and reading a record per copy cost
    more than its row's insert). Their answered rows hold the features.

    `row_counts` are each request's rows; `scores` (and for multiclass `classes` and
    `probabilities`) every row's in request order. A call that failed has `error` and no
    scores: one row per request with the error, as a failed `LogEntry`.
    """

    model_name: str
    version: int
    role: str
    request_ids: Sequence[str]
    routing_keys: Sequence[str | None]
    ats: Sequence[datetime]
    row_counts: Sequence[int]
    scores: Sequence[float] | None
    latency_ms: float
    error: str | None = None
    classes: Sequence[str] | None = None
    probabilities: Sequence[dict[str, float]] | None = None

    def __post_init__(self) -> None:
        requests = len(self.request_ids)
        if not len(self.routing_keys) == len(self.ats) == len(self.row_counts) == requests:
            raise ValueError("copies: one routing key, time and row count per request")
        if self.scores is not None and len(self.scores) != sum(self.row_counts):
            raise ValueError(f"copies: {len(self.scores)} scores for {sum(self.row_counts)} rows")

    @property
    def n_rows(self) -> int:
        return len(self.request_ids) if self.scores is None else len(self.scores)


@dataclass(frozen=True)
class FeatureMask:
    """What the log keeps of a model's features: `hashed` ones as a keyed SHA-256 (equal values
    stay equal, so they can still be grouped and joined, but the value is not kept and, keyed,
    cannot be guessed by hashing candidates), `unlogged` ones not at all."""

    hashed: frozenset[str]
    unlogged: frozenset[str]
    key: bytes = b""

    @classmethod
    def of(cls, hashed: Collection[str], unlogged: Collection[str], key: str) -> FeatureMask:
        return cls(frozenset(hashed), frozenset(unlogged), key.encode())

    def apply(self, features: dict) -> dict:
        """The features as the log stores them."""
        return {
            name: self._hash(value) if name in self.hashed else value
            for name, value in features.items()
            if name not in self.unlogged
        }

    def _hash(self, value: object) -> str | None:
        if value is None:
            return None
        digest = hmac.new(self.key, json.dumps(value).encode(), hashlib.sha256).hexdigest()
        return f"hmac-sha256:{digest}"


def flush_due(
    pending_rows: int,
    oldest_age_s: float | None,
    *,
    batch_size: int,
    flush_interval_s: float,
    closing: bool,
) -> bool:
    """Write now when a batch is full, the oldest row has waited long enough, or we are closing."""
    if pending_rows == 0:
        return False
    if closing or pending_rows >= batch_size:
        return True
    return oldest_age_s is not None and oldest_age_s >= flush_interval_s


def retry_delay(failures: int, flush_interval_s: float, cap_s: float = 30.0) -> float:
    """Seconds to wait before writing again after `failures` failed writes in a row."""
    return min(cap_s, flush_interval_s * 2 ** max(0, failures - 1))


def take_batch(entries: Sequence[LogEntry], batch_size: int) -> int:
    """How many leading entries make the next batch: whole entries, at least one, about
    `batch_size` rows (a request's rows are never split across batches)."""
    rows = 0
    for count, entry in enumerate(entries, start=1):
        rows += entry.n_rows
        if rows >= batch_size:
            return count
    return len(entries)


def overflow(entry_rows: Sequence[int], max_pending_rows: int) -> int:
    """How many oldest entries to drop so the rows kept fit in `max_pending_rows`."""
    total = sum(entry_rows)
    dropped = 0
    while total > max_pending_rows and dropped < len(entry_rows):
        total -= entry_rows[dropped]
        dropped += 1
    return dropped


# The columns of a log row, in the order `log_values` gives them.
LOG_COLUMNS = (
    "request_id",
    "row_index",
    "model_name",
    "version",
    "role",
    "routing_key",
    "features",
    "prediction",
    "predicted_class",
    "probabilities",
    "error",
    "latency_ms",
    "created_at",
)


def log_rows(entry: LogEntry | Copies, mask: FeatureMask | None = None) -> list[dict]:
    """The prediction-log rows of one entry: one per scored row, features as JSON-safe values
    (masked by `mask`; none for copies, whose answered rows hold them); a request that failed on
    its arm (or a copy that failed) is one row with the error and no prediction."""
    return [row_dict(values) for values in log_values(entry, mask)]


def row_dict(values: tuple) -> dict:
    """One of `log_values`' tuples as a dict of column name to value."""
    return dict(zip(LOG_COLUMNS, values, strict=True))


def log_values(entry: LogEntry | Copies, mask: FeatureMask | None = None) -> list[tuple]:
    """`log_rows` as tuples of the values in `LOG_COLUMNS` order: what an insert binds, built
    without a dict per row (the log's writer builds a row for every request)."""
    if type(entry) is Copies:
        return _copy_values(entry)
    if entry.scores is None:
        error = (entry.error or "unknown error")[:ERROR_LENGTH]
        # request_id, row_index, model_name, version, role, routing_key, features, prediction,
        # predicted_class, probabilities, error, latency_ms, created_at
        return [
            (entry.request_id, 0, entry.model_name, entry.version, entry.role, entry.routing_key)
            + ({}, None, None, None, error, entry.latency_ms, entry.at)
        ]
    features = entry.features or {}
    names = list(features)
    rows = zip(*features.values(), strict=True) if names else [()] * len(entry.scores)
    classes, probabilities = entry.classes, entry.probabilities
    return [
        (
            entry.request_id,
            index,
            entry.model_name,
            entry.version,
            entry.role,
            entry.routing_key,
            _stored(
                {name: _json_safe(value) for name, value in zip(names, row, strict=True)}, mask
            ),
            float(score),
            None if classes is None else classes[index],
            None if probabilities is None else probabilities[index],
            None,
            entry.latency_ms,
            entry.at,
        )
        for index, (row, score) in enumerate(zip(rows, entry.scores, strict=True))
    ]


def _copy_values(copies: Copies) -> list[tuple]:
    name, version, role, latency_ms = (
        copies.model_name,
        copies.version,
        copies.role,
        copies.latency_ms,
    )
    requests = zip(
        copies.request_ids, copies.routing_keys, copies.ats, copies.row_counts, strict=True
    )
    if copies.scores is None:
        error = (copies.error or "unknown error")[:ERROR_LENGTH]
        return [
            (request_id, 0, name, version, role, key, {}, None, None, None, error, latency_ms, at)
            for request_id, key, at, _ in requests
        ]
    scores, classes, probabilities = copies.scores, copies.classes, copies.probabilities
    values, position = [], 0
    for request_id, key, at, count in requests:
        for index in range(count):
            values.append(
                (
                    request_id,
                    index,
                    name,
                    version,
                    role,
                    key,
                    {},
                    float(scores[position]),
                    None if classes is None else classes[position],
                    None if probabilities is None else probabilities[position],
                    None,
                    latency_ms,
                    at,
                )
            )
            position += 1
    return values


def _stored(features: dict, mask: FeatureMask | None) -> dict:
    return features if mask is None else mask.apply(features)


def _json_safe(value: object) -> object:
    # NaN is how pandas spells a missing number, and strict JSON (PostgreSQL's) has neither NaN
    # nor infinities: one such value would make the database refuse the whole batch.
    kind = type(value)
    if kind is str or kind is int or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):
        return _json_safe(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
