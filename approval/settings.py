"""The endpoint's settings, read from the environment once, at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from approval.slack import DEFAULT_BASE_URL
from approval.store import DEFAULT_URL


class SettingsError(ValueError):
    """The environment lacks or garbles a setting; the message lists every problem."""


@dataclass(frozen=True)
class Settings:
    """Everything `python -m approval` needs; see approval/README.md for each variable."""

    signing_secret: str
    bot_token: str
    slack_api_url: str = DEFAULT_BASE_URL
    db_url: str = DEFAULT_URL
    db_schema: str | None = None
    airflow_api_url: str = "http://localhost:8080"
    airflow_username: str | None = None
    airflow_password: str | None = None
    airflow_token: str | None = None
    mlflow_tracking_uri: str | None = None
    host: str = "127.0.0.1"
    port: int = 8095

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read the settings; raises SettingsError naming every missing or bad variable."""
        problems = [
            f"{name} is not set"
            for name in ("SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN")
            if not env.get(name, "").strip()
        ]
        has_login = bool(env.get("AIRFLOW_API_USERNAME")) and bool(env.get("AIRFLOW_API_PASSWORD"))
        if not has_login and not env.get("AIRFLOW_API_TOKEN"):
            problems.append(
                "set AIRFLOW_API_USERNAME and AIRFLOW_API_PASSWORD (or AIRFLOW_API_TOKEN) so the "
                "endpoint can answer the waiting Airflow task"
            )
        port = env.get("APPROVAL_PORT", "8095")
        if not port.isdigit() or not 0 < int(port) < 65536:
            problems.append(f"APPROVAL_PORT must be a TCP port number, got {port!r}")
        if problems:
            raise SettingsError("approval endpoint: " + "; ".join(problems))
        return cls(
            signing_secret=env["SLACK_SIGNING_SECRET"],
            bot_token=env["SLACK_BOT_TOKEN"],
            slack_api_url=env.get("SLACK_API_URL") or DEFAULT_BASE_URL,
            db_url=env.get("APPROVAL_DB_URL") or DEFAULT_URL,
            db_schema=env.get("APPROVAL_DB_SCHEMA") or None,
            airflow_api_url=env.get("AIRFLOW_API_URL") or "http://localhost:8080",
            airflow_username=env.get("AIRFLOW_API_USERNAME") or None,
            airflow_password=env.get("AIRFLOW_API_PASSWORD") or None,
            airflow_token=env.get("AIRFLOW_API_TOKEN") or None,
            mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI") or None,
            host=env.get("APPROVAL_HOST") or "127.0.0.1",
            port=int(port),
        )
