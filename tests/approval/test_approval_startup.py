"""`python -m approval` refuses to start, in one line naming the setting, when its decision store
cannot be opened or its MLflow tracking URI names no store; it creates neither."""

from __future__ import annotations

from pathlib import Path

from approval.__main__ import store_problem
from approval.settings import Settings

ENV = {"SLACK_SIGNING_SECRET": "s", "SLACK_BOT_TOKEN": "t", "AIRFLOW_API_TOKEN": "x"}


def problem(env: dict[str, str]) -> str | None:
    env = {**ENV, **env}
    return store_problem(Settings.from_env(env), env)


def test_a_decision_store_that_cannot_be_opened_names_the_variable(tmp_path: Path) -> None:
    assert problem({"APPROVAL_DB_URL": f"sqlite:///{tmp_path}/no_dir/a.db"}) == (
        f"APPROVAL_DB_URL: sqlite:///{tmp_path}/no_dir/a.db: cannot create the file: "
        f"directory {tmp_path}/no_dir does not exist"
    )
    assert problem({"APPROVAL_DB_URL": "approvals.db"}).startswith(
        "APPROVAL_DB_URL: approvals.db: not a database URL"
    )


def test_a_tracking_uri_naming_no_store_names_the_variable_and_creates_none(tmp_path: Path) -> None:
    misspelt = tmp_path / "mlfow.db"
    found = problem(
        {
            "APPROVAL_DB_URL": f"sqlite:///{tmp_path}/a.db",
            "MLFLOW_TRACKING_URI": f"sqlite:///{misspelt}",
        }
    )
    assert (
        found
        == f"MLFLOW_TRACKING_URI: sqlite:///{misspelt} names no existing SQLite file: {misspelt}"
    )
    assert not misspelt.exists()


def test_usable_stores_pass(tmp_path: Path) -> None:
    (tmp_path / "mlflow.db").touch()
    env = {
        "APPROVAL_DB_URL": f"sqlite:///{tmp_path}/a.db",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
    }
    assert problem(env) is None
