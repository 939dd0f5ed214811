"""What the view shows of a champion's live quality: accuracy for a classifier, its error for a
regressor, read from a real (SQLite) prediction log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitoring import view
from monitoring.settings import MonitoringSettings
from policies.loader import load_policy
from tests.monitoring.support import log_answers
from tests.support import write_policy

NOW = datetime(2026, 6, 10, 12, tzinfo=UTC)


def _sources(tmp_path: Path, log_url: str) -> view.Sources:
    settings = MonitoringSettings(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        log_url=log_url,
        log_schema=None,
        approval_db_url=None,
        policies_dir=tmp_path,
        mlflow_ui_url="http://mlflow",
        airflow_ui_url="http://airflow",
        airflow=None,
    )
    return view.Sources(settings, None)


def _regression_policy(tmp_path: Path, metric: str):
    path = write_policy(
        tmp_path,
        "spend",
        model__task="regression",
        model__flavor="lightgbm_regressor",
        promotion__metric=metric,
        promotion__calibration=None,
    )
    return load_policy(path)


@pytest.mark.parametrize(
    ("metric", "shown", "expected"),
    [("rmse", "rmse", 17**0.5), ("mae", "mae", 4.0), ("r2", "rmse", 17**0.5)],
)
def test_a_regressors_live_metric_is_its_error_not_an_accuracy(
    tmp_path: Path, metric: str, shown: str, expected: float
) -> None:
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    at = NOW - timedelta(hours=2)
    answers = [(10.0, 7.0), (20.0, 25.0)]  # errors 3 and -5: RMSE sqrt(17), MAE 4
    log_answers(log_url, [("spend", "champion", at, p, y, None) for p, y in answers])
    policy = _regression_policy(tmp_path, metric)
    name = view._live_metric_name(policy)
    points, note = view._champion_metric(
        _sources(tmp_path, log_url), "spend", name, NOW - timedelta(days=1), NOW, 0.95
    )
    assert name == shown and note == ""
    assert [(p.metric, p.labeled) for p in points] == [(shown, 2)]
    assert points[0].value == pytest.approx(expected)
