"""One monitor check on a real (SQLite) MLflow store and source: what it records when a signal
cannot be computed, and that such a check never fires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import registry
from demo.source_data import write_source
from policies.loader import load_policy
from registry.monitor_checks import read_checks
from registry.moves import current_ledger
from tests.support import write_policy
from workflow import monitor
from workflow.runs import RunContext

MODEL = "churn"
RUN = RunContext(dag_id="monitor_churn", run_id="scheduled__1")
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


@pytest.fixture
def source(tmp_path: Path) -> str:
    """A source whose rows all come after the champion's training window."""
    url = f"sqlite:///{tmp_path / 'source.db'}"
    rng = np.random.default_rng(0)
    rows = 400
    write_source(
        url,
        pd.DataFrame(
            {
                "created_at": pd.date_range(NOW - timedelta(days=5), periods=rows, freq="10min"),
                "sessions_7d": rng.gamma(2.0, 3.0, rows),
                "days_since_signup": rng.integers(1, 1000, rows).astype(float),
                "avg_order_value": rng.lognormal(3, 0.5, rows),
                "support_tickets": rng.poisson(1.0, rows).astype(float),
                "plan": rng.choice(["free", "basic", "pro"], rows),
                "region": rng.choice(["eu", "us"], rows),
                "target": rng.integers(0, 2, rows),
            }
        ),
    )
    return url


def policy_with(tmp_path: Path, source: str, triggers: dict):
    path = write_policy(
        tmp_path, MODEL, source__conn_id=None, source__url=source, triggers=triggers
    )
    return load_policy(path)


def champion(mlflow_store: str, tags: dict[str, str], tmp_path: Path) -> int:
    registry.ensure_registered_model(MODEL)
    version = registry.register_version(
        MODEL, (tmp_path / "model").as_uri(), run_id=None, tags=tags, description=""
    ).version
    registry.move_alias(MODEL, "champion", version, kind="promote", actor="test", reason="")
    return version


def test_without_a_champion_the_check_is_not_made(mlflow_store: str, tmp_path: Path, source: str):
    policy = policy_with(tmp_path, source, {"data_volume": {"min_new_rows": 10}})
    result = monitor.check(policy, RUN, monitor.MonitorSettings(), [], NOW)
    assert result == {
        "outcome": "not_checked",
        "reason": "churn has no champion to monitor",
        "fired": [],
    }
    [check] = read_checks(current_ledger().url, MODEL)
    assert (check.champion_version, check.run_id) == (None, "scheduled__1")


def test_no_profile_and_no_training_rows_left_ends_drift_with_the_reason(
    mlflow_store: str, tmp_path: Path, source: str
) -> None:
    window = {
        "lineage.window_start": (NOW - timedelta(days=90)).replace(tzinfo=None).isoformat(),
        "lineage.window_end": (NOW - timedelta(days=60)).replace(tzinfo=None).isoformat(),
    }
    version = champion(mlflow_store, window, tmp_path)
    policy = policy_with(tmp_path, source, {"drift": {"source": "source", "min_rows": 50}})
    result = monitor.check(policy, RUN, monitor.MonitorSettings(), [], NOW)
    assert (result["outcome"], result["fired"]) == ("not_checked", [])
    [check] = read_checks(current_ledger().url, MODEL)
    assert check.champion_version == version
    assert check.signals["drift"]["reason"] == (
        f"v{version} has no reference profile and its training window has no rows left"
    )


def test_a_held_signal_does_not_fire_while_a_training_runs(
    mlflow_store: str, tmp_path: Path, source: str
) -> None:
    holdout_end = (NOW - timedelta(days=10)).replace(tzinfo=None).isoformat()
    champion(mlflow_store, {"lineage.holdout_end": holdout_end}, tmp_path)
    policy = policy_with(tmp_path, source, {"data_volume": {"min_new_rows": 100}})
    result = monitor.check(policy, RUN, monitor.MonitorSettings(), ["train_churn"], NOW)
    assert (result["outcome"], result["fired"]) == ("quiet", [])
    assert "train_churn running" in result["reason"]
    fired = monitor.check(policy, RUN, monitor.MonitorSettings(), [], NOW)
    assert fired["fired"] == ["data_volume"]
    assert fired["extra"]["signals"]["data_volume"]["new_rows"] == 400


def test_a_missing_lineage_tag_ends_the_data_volume_check(
    mlflow_store: str, tmp_path: Path, source: str
) -> None:
    version = champion(mlflow_store, {}, tmp_path)
    policy = policy_with(tmp_path, source, {"data_volume": {"min_new_rows": 100}})
    result = monitor.check(policy, RUN, monitor.MonitorSettings(), [], NOW)
    assert result["outcome"] == "not_checked"
    assert f"v{version} has no lineage.holdout_end tag" in result["reason"]
