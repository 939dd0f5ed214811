"""The view's settings: every store from the environment, each bad setting named."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitoring.settings import MonitoringConfigError, MonitoringSettings


def test_without_a_tracking_uri_the_view_says_which_variable_to_set() -> None:
    with pytest.raises(MonitoringConfigError, match="MLFLOW_TRACKING_URI is not set"):
        MonitoringSettings.from_environment({})


def test_a_tracking_server_needs_the_ledger_url() -> None:
    with pytest.raises(MonitoringConfigError, match="PROMOTION_LEDGER_URL is not set"):
        MonitoringSettings.from_environment({"MLFLOW_TRACKING_URI": "http://mlflow:5000"})


def test_an_airflow_user_without_a_password_is_refused() -> None:
    with pytest.raises(MonitoringConfigError, match="AIRFLOW_API_USERNAME is set without"):
        MonitoringSettings.from_environment(
            {"MLFLOW_TRACKING_URI": "sqlite:///m.db", "AIRFLOW_API_USERNAME": "viewer"}
        )


def test_a_missing_policies_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(MonitoringConfigError, match="PROMOTION_POLICIES_DIR=.*nowhere"):
        MonitoringSettings.from_environment(
            {"MLFLOW_TRACKING_URI": "sqlite:///m.db", "PROMOTION_POLICIES_DIR": str(missing)}
        )


def test_the_ledger_sits_beside_a_database_registry_and_links_default_to_local_uis() -> None:
    settings = MonitoringSettings.from_environment(
        {
            "MLFLOW_TRACKING_URI": "sqlite:///m.db",
            "AIRFLOW_API_USERNAME": "viewer",
            "AIRFLOW_API_PASSWORD": "secret",
        }
    )
    assert settings.ledger_url == "sqlite:///m.db"
    assert (settings.mlflow_ui_url, settings.airflow_ui_url) == (
        "http://localhost:5000",
        "http://localhost:8080",
    )
    assert settings.airflow.api_url == "http://localhost:8080"
    assert settings.log_url is None and settings.approval_db_url is None
