"""Which request ids this gateway has answered lately, and with how many rows.

Kept in memory from the moment a request is accepted, so a reused `X-Request-Id` is refused and a
label can be checked against its request before the log writer has written the row. Older ids
fall out (the oldest first) and are looked up in the prediction log instead.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

RESERVED = -1
FAILED = 0


class AnsweredRequests:
    """Recent request ids per model: reserved (being scored), answered with n rows, or failed."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self._rows: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._lock = threading.Lock()

    def reserve(self, model_name: str, request_id: str) -> bool:
        """Claim a request id; False when this gateway has seen it lately (a reuse)."""
        key = (model_name, request_id)
        with self._lock:
            if key in self._rows:
                return False
            self._rows[key] = RESERVED
            while len(self._rows) > self._capacity:
                self._rows.popitem(last=False)
        return True

    def settle(self, model_name: str, request_id: str, rows: int) -> None:
        """The request was answered with `rows` rows (0: it failed on its arm, logged as an error)."""
        with self._lock:
            self._rows[(model_name, request_id)] = rows

    def release(self, model_name: str, request_id: str) -> None:
        """Forget a reserved id whose request was refused before anything was logged."""
        with self._lock:
            if self._rows.get((model_name, request_id)) == RESERVED:
                del self._rows[(model_name, request_id)]

    def rows(self, model_name: str, request_id: str) -> int | None:
        """Rows answered (0 failed, RESERVED still scoring), or None when not known here."""
        with self._lock:
            return self._rows.get((model_name, request_id))
