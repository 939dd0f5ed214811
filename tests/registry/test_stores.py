"""A tracking URI must name a store that exists before a service opens it (MLflow would create an
empty one); servers and databases are left to the registry's own errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.stores import missing_store


def test_existing_local_stores_pass(tmp_path: Path) -> None:
    (tmp_path / "mlflow.db").touch()
    for uri in (str(tmp_path), tmp_path.as_uri(), f"sqlite:///{tmp_path / 'mlflow.db'}"):
        assert missing_store(uri) is None, uri


@pytest.mark.parametrize("uri", ["http://mlflow:5000", "postgresql://u:pw@db/mlflow", "databricks"])
def test_servers_and_databases_are_not_probed(uri: str) -> None:
    assert missing_store(uri) is None


def test_a_misspelt_sqlite_store_is_named(tmp_path: Path) -> None:
    problem = missing_store(f"sqlite:///{tmp_path / 'mlfow.db'}")
    assert (
        problem
        == f"sqlite:///{tmp_path / 'mlfow.db'} names no existing SQLite file: {tmp_path / 'mlfow.db'}"
    )


def test_a_local_path_without_a_store_is_named(tmp_path: Path) -> None:
    assert missing_store(str(tmp_path / "mlrunz")) == (
        f"{tmp_path / 'mlrunz'} is a local path, and no MLflow store exists at {tmp_path / 'mlrunz'}"
    )
