"""`python -m approval`: serve the approval endpoint under uvicorn, configured from the environment."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

import uvicorn
from fastapi import FastAPI

from approval.airflow_api import AirflowHITLClient
from approval.app import AliasReader, create_app
from approval.records import CurrentAliases
from approval.settings import Settings, SettingsError
from approval.slack import SlackApprovalHook
from approval.store import DecisionStore


def registry_alias_reader() -> AliasReader:
    """Read `champion` and `challenger` from the MLflow registry (MLFLOW_TRACKING_URI)."""
    from promotion.records import CHALLENGER, CHAMPION
    from registry import get_alias_version

    def read(model: str) -> CurrentAliases:
        return CurrentAliases(
            champion=get_alias_version(model, CHAMPION),
            challenger=get_alias_version(model, CHALLENGER),
        )

    return read


def build_app(settings: Settings) -> FastAPI:
    """The endpoint wired to the real store, Slack, Airflow and (when configured) MLflow."""
    store = DecisionStore.from_url(settings.db_url, schema=settings.db_schema)
    store.create_tables()
    return create_app(
        signing_secret=settings.signing_secret,
        store=store,
        slack=SlackApprovalHook(token=settings.bot_token, base_url=settings.slack_api_url),
        airflow=AirflowHITLClient(
            base_url=settings.airflow_api_url,
            username=settings.airflow_username,
            password=settings.airflow_password,
            token=settings.airflow_token,
        ),
        alias_reader=registry_alias_reader() if settings.mlflow_tracking_uri else None,
    )


def store_problem(settings: Settings, env: Mapping[str, str]) -> str | None:
    """One line naming the setting when the decision store cannot be opened or MLFLOW_TRACKING_URI
    names no store (MLflow would create an empty one); None when both are usable."""
    from registry.stores import database_problem, missing_store

    problem = database_problem(settings.db_url, lambda url: DecisionStore.from_url(url).engine)
    if problem is not None:
        setting = "APPROVAL_DB_URL" if env.get("APPROVAL_DB_URL") else "APPROVAL_DB_URL (default)"
        return f"{setting}: {problem}"
    if settings.mlflow_tracking_uri:
        problem = missing_store(settings.mlflow_tracking_uri)
        if problem is not None:
            return f"MLFLOW_TRACKING_URI: {problem}"
    return None


def main() -> int:
    """Read the environment and serve until interrupted."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    problem = store_problem(settings, os.environ)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    uvicorn.run(build_app(settings), host=settings.host, port=settings.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
