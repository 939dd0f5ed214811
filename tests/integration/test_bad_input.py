"""Bad input through Airflow: a deterministic error fails its task in one attempt with a message
naming the input, and leaves nothing behind; a transient one is retried by the task's retries.

On PostgreSQL (the source of every model here), as a dropped connection needs a server to drop it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

import mlflow
import pytest
import sqlalchemy as sa

import registry
from demo.lifecycle import DagRunFailed, Lifecycle, Workspace
from demo.source_data import generate_user_features, write_source
from tests.support import postgres_base_url, temporary_postgres_database, write_policy

pytestmark = pytest.mark.integration

AS_OF = {"as_of": "2026-03-15"}
# Kills its own connection on the first five reads, as a restarting database would: more than
# one task attempt's own retries absorb, so only the task's retry (the sixth read) gets the rows.
FLAKY_QUERY = (
    "WITH gate AS MATERIALIZED (SELECT CASE WHEN nextval('flaky_reads') <= 5 "
    "THEN pg_terminate_backend(pg_backend_pid()) ELSE true END AS open) "
    "SELECT u.* FROM user_features u, gate WHERE gate.open"
)


@dataclass(frozen=True)
class Runs:
    lifecycle: Lifecycle
    failures: dict[str, str]

    def tries(self, dag_id: str, task_id: str) -> tuple[str, int]:
        database = self.lifecycle.workspace.airflow_home / "airflow.db"
        with sqlite3.connect(database) as db:
            return db.execute(
                "SELECT state, try_number FROM task_instance WHERE dag_id = ? AND task_id = ?",
                (dag_id, task_id),
            ).fetchone()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """Three models on one PostgreSQL source: one whose source database does not exist, one whose
    source drops its connection, and the demo model; each DAG run once through Airflow."""
    root = tmp_path_factory.mktemp("bad-input")
    with temporary_postgres_database(postgres_base_url()) as source:
        write_source(source, generate_user_features(days=90, rows_per_day=60))
        engine = sa.create_engine(source)
        with engine.begin() as connection:
            connection.execute(sa.text("CREATE SEQUENCE flaky_reads"))
        engine.dispose()
        missing = sa.make_url(source).set(database="no_such_features")
        policies = root / "policies"
        policies.mkdir()
        write_policy(policies, "user_churn")
        write_policy(
            policies, "missing_churn", source__conn_id=None, source__url=missing.render_as_string()
        )
        write_policy(
            policies,
            "flaky_churn",
            source__conn_id=None,
            source__url=source,
            source__table=None,
            source__query=FLAKY_QUERY,
        )
        workspace = Workspace(root / "ws", source_url=source)
        lifecycle = Lifecycle(workspace, policies)
        lifecycle.reset()
        lifecycle.prepare_airflow()
        failures = {}
        for dag_id, conf in (
            ("train_missing_churn", AS_OF),
            ("train_user_churn", {"as_of": "15/03/2026"}),
            ("promote_user_churn", {"version": 99}),
        ):
            with pytest.raises(DagRunFailed) as failed:
                lifecycle.run_dag(dag_id, conf)
            failures[dag_id] = str(failed.value)
        lifecycle.run_dag("train_flaky_churn", AS_OF)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", workspace.tracking_uri)
            mlflow.set_tracking_uri(workspace.tracking_uri)
            yield Runs(lifecycle, failures)
            mlflow.set_tracking_uri(None)


def test_a_source_database_that_does_not_exist_fails_in_one_attempt_leaving_nothing(
    runs: Runs,
) -> None:
    assert runs.tries("train_missing_churn", "extract_window") == ("failed", 1)
    message = runs.failures["train_missing_churn"]
    assert "source.url (postgresql://" in message
    assert 'database "no_such_features" does not exist' in message
    assert registry.find_version("missing_churn", 1) is None
    assert not list(runs.lifecycle.workspace.root.rglob("*.parquet"))


def test_an_as_of_that_is_no_date_fails_in_one_attempt(runs: Runs) -> None:
    assert runs.tries("train_user_churn", "extract_window") == ("failed", 1)
    assert "DAG param as_of: '15/03/2026' is not an ISO date" in runs.failures["train_user_churn"]
    assert registry.find_version("user_churn", 1) is None


def test_a_version_param_naming_no_version_fails_in_one_attempt(runs: Runs) -> None:
    assert runs.tries("promote_user_churn", "find_candidates") == ("failed", 1)
    assert "DAG param version: user_churn has no version 99" in runs.failures["promote_user_churn"]


def test_a_connection_dropped_mid_read_is_retried_by_the_task(runs: Runs) -> None:
    assert runs.tries("train_flaky_churn", "extract_window") == ("success", 2)
    assert registry.get_alias_version("flaky_churn", "challenger") == 1
