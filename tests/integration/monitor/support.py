"""Helpers of the monitor's integration tests: the scenarios' triggers, the source rows, the
champion's lineage, the traffic driver, and reads of what a monitor run recorded."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from demo.lifecycle import Lifecycle
from demo.source_data import write_source
from demo.traffic import Traffic
from policies.schema import FeatureColumns
from registry.monitor_checks import MonitorCheck, read_checks
from registry.settings import ledger_url
from tests.integration.gateway.support import training_frame

API_TOKEN = "monitor-tests-label-token"
FEATURES = FeatureColumns(numeric=["sessions_7d", "days_since_signup"], categorical=["plan"])
# Whatever the model scores on fresh rows, its recorded level is this: a drop of 0.05 below it is
# far above what a model answering the traffic's true labels shows, and far below inverted ones.
PROMOTED_AUC = 0.78
PERFORMANCE = {"max_drop": 0.05, "min_labeled": 200, "lookback_hours": 1}
GATE = {"cooldown_hours": 6, "max_per_day": 2}


@dataclass(frozen=True)
class Scenario:
    """One model of the suite: its triggers, and whether its champion has a stored profile."""

    triggers: dict
    profile: bool = True
    source_url: str | None = None
    features: FeatureColumns = FEATURES


SCENARIOS = {
    "perf_watch": Scenario({**GATE, "performance": PERFORMANCE}),
    "drift_watch": Scenario(
        {**GATE, "performance": PERFORMANCE, "drift": {"min_rows": 300, "window_hours": 1}}
    ),
    "volume_watch": Scenario(
        {
            **GATE,
            "data_volume": {"min_new_rows": 300},
            "drift": {"source": "source", "min_rows": 300, "window_hours": 60 * 24},
        },
        profile=False,
    ),
    "source_down": Scenario(
        {
            **GATE,
            "performance": PERFORMANCE,
            "data_volume": {"min_new_rows": 300},
            "drift": {"source": "source"},
        },
        source_url="sqlite:////nonexistent/monitor-tests/source.db",
    ),
}


def source_rows(start: datetime, end: datetime, rows: int, seed: int = 3) -> pd.DataFrame:
    """Labeled rows like the served traffic's, spread evenly over [start, end)."""
    frame, labels = training_frame(rows, seed=seed)
    frame["created_at"] = pd.to_datetime(
        np.linspace(start.timestamp(), end.timestamp(), rows, endpoint=False), unit="s"
    )
    frame["target"] = labels
    return frame


def write_rows(url: str, frame: pd.DataFrame) -> None:
    """Replace the source table with `frame`."""
    write_source(url, frame)


def champion_tags(now: datetime) -> dict[str, str]:
    """The lineage and evaluation tags of a champion trained on the source's first rows."""
    return {
        "lineage.window_start": (now - timedelta(days=40)).isoformat(),
        "lineage.window_end": (now - timedelta(days=24)).isoformat(),
        "lineage.holdout_start": (now - timedelta(days=24)).isoformat(),
        "lineage.holdout_end": (now - timedelta(days=10)).isoformat(),
        "eval.metric": "roc_auc",
        "eval.challenger_score": str(PROMOTED_AUC),
    }


@dataclass
class Rig:
    """Everything a scenario needs, shared by the module's tests (each uses its own model)."""

    lifecycle: Lifecycle
    gateway_url: str
    source_url: str
    started: datetime
    traffic_seeds: list[int] = field(default_factory=lambda: [11])

    def monitor(self, model: str) -> MonitorCheck:
        """Run monitor_<model> through `airflow dags test`; the check it recorded."""
        self.lifecycle.run_dag(f"monitor_{model}")
        return read_checks(ledger_url(self.lifecycle.workspace.tracking_uri), model, limit=1)[0]

    def send(
        self, model: str, rows: int, *, invert_labels: bool = False, shift: float = 0.0
    ) -> None:
        """Send at least `rows` scored rows to the model, with their labels, and wait until they
        are in the prediction log."""
        frame, truth = training_frame(5000, seed=self.traffic_seeds[-1])
        self.traffic_seeds.append(self.traffic_seeds[-1] + 1)
        frame["sessions_7d"] = frame["sessions_7d"] + shift
        traffic = Traffic(
            self.gateway_url,
            model,
            frame,
            1 - truth if invert_labels else truth,
            api_token=API_TOKEN,
        )
        deadline = time.monotonic() + 120
        with traffic:
            while traffic.labeled < rows:
                assert time.monotonic() < deadline, f"only {traffic.labeled} labels sent to {model}"
                time.sleep(0.2)
        time.sleep(1.5)  # the gateway writes its log every half second

    def asset_events(self, model: str) -> list[dict]:
        """The extras of the retrain Asset's events, oldest first."""
        with sqlite3.connect(self.lifecycle.workspace.airflow_home / "airflow.db") as db:
            rows = db.execute(
                "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                "WHERE a.uri = ? ORDER BY e.id",
                (f"model-registry://{model}/retrain",),
            )
            return [json.loads(extra) for (extra,) in rows]

    def queued_runs(self) -> list[str]:
        """DAGs the scheduler would start from Asset events."""
        with sqlite3.connect(self.lifecycle.workspace.airflow_home / "airflow.db") as db:
            return sorted(
                row[0] for row in db.execute("SELECT target_dag_id FROM asset_dag_run_queue")
            )
