"""Shared fixtures: a temporary MLflow store and, when configured, a private PostgreSQL database."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hostile import pytest_terminal_summary  # noqa: F401 (prints the hostile-request tally)
from tests.support import postgres_base_url, temporary_postgres_database

# Airflow reads its home when first imported: keep tests away from the user's ~/airflow.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="airflow-home-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite MLflow tracking + registry store, made current for the test."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database of the test's own, dropped afterwards (needs PROMOTION_TEST_POSTGRES_URL)."""
    with temporary_postgres_database(postgres_base_url()) as url:
        yield url
