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
from gateway.batching import LogEntry
from gateway.predlog import Label, PredictionLogWriter, create_engine, log_tables, record_labels
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
    assert result == monitor.CheckResult("not_checked", "churn has no champion to monitor")
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
    assert (result.outcome, result.fired) == ("not_checked", ())
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
    assert (result.outcome, result.fired) == ("quiet", ())
    assert "train_churn running" in result.reason
    fired = monitor.check(policy, RUN, monitor.MonitorSettings(), [], NOW)
    assert fired.fired == ("data_volume",)
    assert fired.extra["signals"]["data_volume"]["new_rows"] == 400


def test_a_missing_lineage_tag_ends_the_data_volume_check(
    mlflow_store: str, tmp_path: Path, source: str
) -> None:
    version = champion(mlflow_store, {}, tmp_path)
    policy = policy_with(tmp_path, source, {"data_volume": {"min_new_rows": 100}})
    result = monitor.check(policy, RUN, monitor.MonitorSettings(), [], NOW)
    assert result.outcome == "not_checked"
    assert f"v{version} has no lineage.holdout_end tag" in result.reason


def _logged_champion(
    url: str, version: int, answers: list[dict], labels: list[float | str]
) -> datetime:
    """Rows the gateway answered with the champion (one per answer), labeled in order.

    The rows are logged an hour after the champion alias moved (at the real time of the
    test), so they count as its own; returns the time to check at, an hour after them.
    """
    check_at = datetime.now(UTC) + timedelta(hours=2)
    engine, tables = create_engine(url), log_tables()
    writer = PredictionLogWriter(
        engine, tables, batch_size=1000, flush_interval_s=60.0, max_pending_rows=10_000
    )
    writer.start()
    for i, answer in enumerate(answers):
        writer.submit(
            LogEntry(
                request_id=f"r{i}",
                model_name=MODEL,
                version=version,
                role="champion",
                routing_key=None,
                features={"x": [1.0]},
                latency_ms=1.0,
                at=check_at - timedelta(hours=1),
                **answer,
            )
        )
    writer.close()
    record_labels(engine, tables, MODEL, [Label(f"r{i}", v) for i, v in enumerate(labels)])
    engine.dispose()
    return check_at


def _per_task_policy(tmp_path: Path, source: str, task: str, metric: str, **bounds):
    triggers = {"performance": {"min_labeled": 100, **bounds}}
    path = write_policy(
        tmp_path,
        MODEL,
        source__conn_id=None,
        source__url=source,
        triggers=triggers,
        model__task=task,
        model__flavor="lightgbm_regressor" if task == "regression" else "lightgbm_classifier",
        promotion__metric=metric,
        promotion__calibration=None,
    )
    return load_policy(path)


def test_a_regression_champion_whose_errors_grew_fires_on_the_logged_values(
    mlflow_store: str, tmp_path: Path, source: str
) -> None:
    tags = {"eval.metric": "rmse", "eval.challenger_score": "1.0", "lineage.task": "regression"}
    version = champion(mlflow_store, tags, tmp_path)
    rng = np.random.default_rng(1)
    truth = rng.normal(10, 3, 400)
    values = truth + rng.normal(0, 3, 400)
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    check_at = _logged_champion(log_url, version, [{"scores": [v]} for v in values], truth.tolist())
    policy = _per_task_policy(tmp_path, source, "regression", "rmse", max_drop=0.5)
    result = monitor.check(policy, RUN, monitor.MonitorSettings(log_url), [], check_at)
    assert result.fired == ("performance",)
    performance = result.extra["signals"]["performance"]
    assert performance["metric"] == "rmse" and performance["lower"] > 1.5


def test_a_multiclass_champion_is_measured_on_its_logged_classes_and_probabilities(
    mlflow_store: str, tmp_path: Path, source: str
) -> None:
    version = champion(mlflow_store, {"lineage.task": "multiclass"}, tmp_path)
    rng = np.random.default_rng(2)
    names = ["cat", "dog", "cow"]
    truth = rng.choice(names, 400).tolist()
    answers = []
    for label in truth:
        predicted = label if rng.random() < 0.5 else "cat"
        probabilities = {name: 0.2 for name in names} | {predicted: 0.6}
        answers.append({"scores": [0.6], "classes": [predicted], "probabilities": [probabilities]})
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    check_at = _logged_champion(log_url, version, answers, truth)
    policy = _per_task_policy(tmp_path, source, "multiclass", "accuracy", floor=0.8)
    result = monitor.check(policy, RUN, monitor.MonitorSettings(log_url), [], check_at)
    assert result.fired == ("performance",)
    performance = result.extra["signals"]["performance"]
    assert performance["labeled"] == 400 and performance["upper"] < 0.8


def test_multiclass_log_loss_is_not_checked_on_rows_logged_without_probabilities(
    mlflow_store: str, tmp_path: Path, source: str
) -> None:
    version = champion(mlflow_store, {"lineage.task": "multiclass"}, tmp_path)
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    answers = [{"scores": [0.6], "classes": ["cat"]} for _ in range(150)]
    check_at = _logged_champion(log_url, version, answers, ["cat"] * 150)
    policy = _per_task_policy(tmp_path, source, "multiclass", "log_loss", floor=0.5)
    result = monitor.check(policy, RUN, monitor.MonitorSettings(log_url), [], check_at)
    assert result.outcome == "not_checked"
    assert "log_loss needs the class probabilities, which 150 labeled rows" in result.reason


def test_drift_reads_each_answered_request_once_not_its_copies(tmp_path: Path) -> None:
    """A canary's request is also scored by the champion (champion_paired) and maybe a shadow:
    drift must see its input once, from the answered row."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine, tables = create_engine(url), log_tables()
    writer = PredictionLogWriter(
        engine, tables, batch_size=100, flush_interval_s=60.0, max_pending_rows=1000
    )
    writer.start()
    at = NOW - timedelta(minutes=5)
    for role, features in (
        ("canary", {"x": [2.0]}),
        ("champion_paired", None),
        ("shadow", None),
    ):
        writer.submit(LogEntry("r1", MODEL, 1, role, None, features, [0.5], latency_ms=1.0, at=at))
    writer.close()
    engine.dispose()
    inputs = monitor.recent_inputs(
        monitor.MonitorSettings(url), MODEL, NOW - timedelta(hours=1), NOW
    )
    assert inputs.to_dict("records") == [{"x": 2.0}]
