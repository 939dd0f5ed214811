"""Simulated live traffic: requests to a model at the gateway, and their labels through its
feedback endpoint, the way users and a labeling job would send them."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import deque
from typing import Literal

import httpx
import numpy as np
import pandas as pd


class Traffic:
    """Requests to one model at the gateway, `rows` rows of `frame` each (cycling through it),
    and their labels from `truth` with the gateway's `api_token`: at once (`labels="now"`), after
    `label_delay_s`, only once `release` is set (`"held"`), or never. Setting `drift` inverts
    the labels from then on (the world changed). Runs in a background thread between `with` and
    the block's end; a call that fails is counted (`failed` requests, `refused` labels, with
    `last_error`) and the traffic goes on, labels the gateway could not take now sent again.
    A backlog (held labels, or ones sent again) goes about `labels_per_call` labels a call, one
    call per request, well under the gateway's per-call limit, as a labeling job would send it.
    """

    def __init__(
        self,
        url: str,
        model: str,
        frame: pd.DataFrame,
        truth: np.ndarray,
        *,
        api_token: str,
        labels: Literal["now", "held", "never"] = "now",
        label_delay_s: float = 0.0,
        rows: int = 10,
        pause_s: float = 0.03,
        labels_per_call: int = 2_000,
    ) -> None:
        self.url, self.model, self.labels = url, model, labels
        self.auth = {"Authorization": f"Bearer {api_token}"}
        self.label_delay_s, self.rows, self.pause_s = label_delay_s, rows, pause_s
        self.labels_per_call = labels_per_call
        self.records = frame.astype(object).where(frame.notna(), None).to_dict("records")
        self.truth = np.asarray(truth)
        self.release, self.drift = threading.Event(), threading.Event()
        self.sent = self.labeled = self.failed = self.refused = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._pending: deque[tuple[float, list[dict]]] = deque()
        # The gateway refuses a request id it answered before: ids are unique to this run.
        self._ids = f"{model}-{uuid.uuid4().hex[:8]}"
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        records = self.records
        with httpx.Client(base_url=self.url, timeout=30) as client:
            for i in itertools.count():
                if self._stop.is_set():
                    return
                start = (i * self.rows) % (len(records) - self.rows)
                request_id = f"{self._ids}-{i}"
                try:
                    answer = client.post(
                        f"/models/{self.model}/invocations",
                        json={"dataframe_records": records[start : start + self.rows]},
                        headers={"X-Request-Id": request_id},
                    )
                except httpx.TransportError as error:  # a timeout under load: go on
                    self.failed += 1
                    self.last_error = f"request {request_id}: {error!r}"
                    continue
                if answer.status_code != 200:
                    self.failed += 1
                    self.last_error = f"request {request_id}: {answer.status_code} {answer.text}"
                    continue
                self.sent += 1
                if self.labels != "never":
                    truth = self.truth[start : start + self.rows]
                    if self.drift.is_set():
                        truth = 1 - truth
                    labels = [
                        {"request_id": request_id, "row_index": j, "label": int(y)}
                        for j, y in enumerate(truth)
                    ]
                    self._pending.append((time.monotonic(), labels))
                self._send_due_labels(client)
                time.sleep(self.pause_s)

    def _send_due_labels(self, client: httpx.Client) -> None:
        if self.labels == "held" and not self.release.is_set():
            return
        due: list[tuple[float, list[dict]]] = []
        count = 0
        while (
            self._pending
            and count < self.labels_per_call
            and time.monotonic() - self._pending[0][0] >= self.label_delay_s
        ):
            due.append(self._pending.popleft())
            count += len(due[-1][1])
        if not due:
            return
        labels = [label for _, batch in due for label in batch]
        try:
            answer = client.post(
                f"/models/{self.model}/feedback", json={"labels": labels}, headers=self.auth
            )
        except httpx.TransportError as error:
            answer, self.last_error = None, f"feedback: {error!r}"
        if answer is not None and answer.status_code == 200:
            self.labeled += len(labels)
            return
        if answer is not None:
            self.last_error = f"feedback: {answer.status_code} {answer.text}"
        if answer is None or answer.status_code == 429 or answer.status_code >= 500:
            self._pending.extendleft(reversed(due))  # sent again with the next ones
        else:
            self.refused += len(labels)  # the gateway said no to these: not sent again
