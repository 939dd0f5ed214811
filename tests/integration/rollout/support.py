"""Helpers of the rollout's integration tests: the scenarios' policies, tiny models, the rig that
runs rollout_<model> in the background, and a driver that sends requests and labels to the gateway
the way users and a labeling job would."""

from __future__ import annotations

import itertools
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
import pytest

from approval.testing.slack_fake import FakeSlack
from demo.lifecycle import PROJECT_ROOT, Lifecycle, task_errors
from policies import Policy
from promotion.evaluation import EvaluationResult
from tests.integration.gateway.support import _pipeline, training_frame

CHANNEL = "#ml-rollouts"
# Small enough that a scenario takes seconds: few steps, 200 labels per arm and step, a check a
# second. A strict alpha keeps a good challenger (as good as the champion) from a false revert.
BASE_ROLLOUT = {
    "alpha": 0.01,
    "min_labeled_per_step": 200,
    "check_interval_seconds": 1,
    "max_step_minutes": 1,
}


@dataclass(frozen=True)
class Scenario:
    """One model of the suite: which challenger it rolls out, under which rollout policy."""

    challenger: Literal["good", "flipped"]
    rollout: dict = field(default_factory=dict)


SCENARIOS = {
    "canary_flipped": Scenario("flipped", {"mode": "canary", "traffic_steps": [0.2, 0.5]}),
    "canary_good": Scenario(
        "good", {"mode": "canary", "traffic_steps": [0.2, 0.5], "guard_window_minutes": 0.1}
    ),
    "shadow_good": Scenario("good", {"mode": "shadow"}),
    "shadow_flipped": Scenario("flipped", {"mode": "shadow"}),
    "guard_drift": Scenario(
        "good", {"mode": "canary", "traffic_steps": [0.5], "guard_window_minutes": 1}
    ),
    "late_labels": Scenario("good", {"mode": "canary", "traffic_steps": [0.2, 0.5]}),
    "no_labels": Scenario(
        "good", {"mode": "canary", "traffic_steps": [0.2, 0.5], "max_step_minutes": 0.2}
    ),
}


def log_model(experiment_id: str, *, flip_labels: bool, strength: float) -> tuple[str, str]:
    """Train a logistic pipeline on the gateway tests' synthetic rows and log it as the workflow
    does; `flip_labels` trains it on inverted labels (a broken model), `strength` is its C."""
    import mlflow
    import skops.io
    from mlflow.models import infer_signature

    frame, labels = training_frame(600, seed=7)
    kind = "logistic" if strength >= 1 else "logistic_strong_penalty"
    pipeline = _pipeline(kind, list(frame.columns)).fit(
        frame, 1 - labels if flip_labels else labels
    )
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(frame, pipeline.predict_proba(frame)[:, 1]),
            input_example=frame.head(3),
            serialization_format="skops",
            skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)),
        )
    return info.model_uri, run.info.run_id


def evaluation(model: str, challenger: int, champion: int) -> dict:
    """What promote_<model>'s evaluation hands to the rollout for an approved winner."""
    result = EvaluationResult(
        "promote",
        ("roc_auc improvement above the bound",),
        "roc_auc",
        "superiority",
        0.0,
        0.95,
        1000,
        champion_score=0.74,
        challenger_score=0.75,
        improvement=0.01,
    )
    return {
        "model": model,
        "challenger": challenger,
        "champion": champion,
        "eval_run_id": "",
        "experiment_id": "0",
        "holdout": "",
        "result": result.to_json_dict(),
    }


@dataclass
class Rig:
    """Everything a scenario needs, shared by the module's tests (each uses its own model)."""

    lifecycle: Lifecycle
    gateway_url: str
    log_url: str
    slack: FakeSlack
    policies: dict[str, Policy]
    versions: dict[str, tuple[int, int]]  # model -> (champion, challenger)
    runs: list[subprocess.Popen] = field(default_factory=list)

    def hand_off(self, model: str) -> None:
        """What promote_<model> does for an approved winner: start its rollout."""
        from workflow import rollout
        from workflow.runs import RunContext

        champion, challenger = self.versions[model]
        rollout.start(
            self.policies[model],
            evaluation(model, challenger, champion),
            RunContext(f"promote_{model}", "test"),
        )

    def run_rollout(self, model: str) -> DagRun:
        """Start rollout_<model> through `airflow dags test` in the background."""
        log = self.lifecycle.workspace.logs / f"rollout_{model}.log"
        process = subprocess.Popen(
            [self.lifecycle.airflow, "dags", "test", f"rollout_{model}"],
            env=self.lifecycle.env,
            cwd=PROJECT_ROOT,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.runs.append(process)
        return DagRun(process, log)


@dataclass
class DagRun:
    """One `airflow dags test` in the background."""

    process: subprocess.Popen
    log: Path

    def done(self) -> bool:
        return self.process.poll() is not None

    def wait(self, timeout_s: float) -> None:
        """Wait for the run to end; fail the test, with the task errors, unless it succeeded."""
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"{self.log.stem}: not done within {timeout_s} s (log: {self.log})")
        if code != 0:
            pytest.fail(f"{self.log.stem} failed (log: {self.log}):\n{task_errors(self.log)}")


class Traffic:
    """Requests to one model at the gateway, `rows` rows each, and their labels by the feedback
    endpoint: at once (`labels="now"`), after `label_delay_s`, only once `release` is set
    (`"held"`), or never. Setting `drift` inverts the labels from then on (the world changed).
    """

    def __init__(
        self,
        url: str,
        model: str,
        *,
        labels: Literal["now", "held", "never"] = "now",
        label_delay_s: float = 0.0,
        rows: int = 10,
        pause_s: float = 0.03,
        seed: int = 11,
    ) -> None:
        self.url, self.model, self.labels = url, model, labels
        self.label_delay_s, self.rows, self.pause_s = label_delay_s, rows, pause_s
        self.frame, self.truth = training_frame(5000, seed)
        self.release, self.drift = threading.Event(), threading.Event()
        self.sent = self.labeled = self.failed = 0
        self._stop = threading.Event()
        self._pending: deque[tuple[float, list[dict]]] = deque()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        records = self.frame.to_dict("records")
        with httpx.Client(base_url=self.url, timeout=30) as client:
            for i in itertools.count():
                if self._stop.is_set():
                    return
                start = (i * self.rows) % (len(records) - self.rows)
                request_id = f"{self.model}-{i}"
                answer = client.post(
                    f"/models/{self.model}/invocations",
                    json={"dataframe_records": records[start : start + self.rows]},
                    headers={"X-Request-Id": request_id},
                )
                if answer.status_code != 200:
                    self.failed += 1
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
        due: list[dict] = []
        while self._pending and time.monotonic() - self._pending[0][0] >= self.label_delay_s:
            due.extend(self._pending.popleft()[1])
        if due:
            client.post(f"/models/{self.model}/feedback", json={"labels": due}).raise_for_status()
            self.labeled += len(due)
