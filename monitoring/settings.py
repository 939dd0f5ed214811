"""Where the monitoring view finds what it reads: parsed once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from policies.loader import POLICIES_DIR


class MonitoringConfigError(ValueError):
    """A setting of the monitoring view is missing or malformed; the message names it."""


@dataclass(frozen=True)
class AirflowAccess:
    """How the status command reaches Airflow's REST API (the plugin uses the caller's own token)."""

    api_url: str
    username: str | None = None
    password: str | None = None
    token: str | None = None


@dataclass(frozen=True)
class MonitoringSettings:
    """Every store the view reads, and the base URLs its links point at."""

    tracking_uri: str
    ledger_url: str
    log_url: str | None
    log_schema: str | None
    approval_db_url: str | None
    policies_dir: Path
    mlflow_ui_url: str
    airflow_ui_url: str
    airflow: AirflowAccess | None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> MonitoringSettings:
        """Read the settings the workers use (MLFLOW_TRACKING_URI, PROMOTION_LEDGER_URL,
        GATEWAY_LOG_URL, APPROVAL_DB_URL, PROMOTION_POLICIES_DIR, MLFLOW_UI_URL, AIRFLOW_UI_URL)
        and, for the status command, AIRFLOW_API_URL with a user or a token."""
        from registry.settings import LedgerConfigError, ledger_url

        env = dict(os.environ if environ is None else environ)
        tracking_uri = env.get("MLFLOW_TRACKING_URI", "").strip()
        if not tracking_uri:
            raise MonitoringConfigError(
                "MLFLOW_TRACKING_URI is not set: the monitoring view reads the model registry; set "
                "it to the tracking URI the workers use, e.g. sqlite:///mlflow.db"
            )
        try:
            ledger = ledger_url(tracking_uri, env)
        except LedgerConfigError as error:
            raise MonitoringConfigError(str(error)) from error
        policies_dir = Path(env.get("PROMOTION_POLICIES_DIR") or POLICIES_DIR)
        if not policies_dir.is_dir():
            raise MonitoringConfigError(
                f"PROMOTION_POLICIES_DIR={str(policies_dir)!r}: not a directory of policy files"
            )
        airflow_ui = env.get("AIRFLOW_UI_URL", "http://localhost:8080").rstrip("/")
        return cls(
            tracking_uri=tracking_uri,
            ledger_url=ledger,
            log_url=env.get("GATEWAY_LOG_URL") or None,
            log_schema=env.get("GATEWAY_LOG_SCHEMA") or None,
            approval_db_url=env.get("APPROVAL_DB_URL") or None,
            policies_dir=policies_dir,
            mlflow_ui_url=env.get("MLFLOW_UI_URL", "http://localhost:5000").rstrip("/"),
            airflow_ui_url=airflow_ui,
            airflow=_airflow_access(env, airflow_ui),
        )


def _airflow_access(env: Mapping[str, str], airflow_ui: str) -> AirflowAccess | None:
    token = env.get("AIRFLOW_API_TOKEN") or None
    username = env.get("AIRFLOW_API_USERNAME") or None
    password = env.get("AIRFLOW_API_PASSWORD") or None
    if token is None and username is None:
        return None
    if token is None and password is None:
        raise MonitoringConfigError(
            "AIRFLOW_API_USERNAME is set without AIRFLOW_API_PASSWORD: give both, or AIRFLOW_API_TOKEN"
        )
    api_url = (env.get("AIRFLOW_API_URL") or airflow_ui).rstrip("/")
    return AirflowAccess(api_url=api_url, username=username, password=password, token=token)
