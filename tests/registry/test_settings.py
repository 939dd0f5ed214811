"""Where the ledger lives: PROMOTION_LEDGER_URL, else the MLflow tracking database."""

from __future__ import annotations

import pytest

from registry.ledger import Ledger
from registry.settings import LedgerConfigError, ledger_url


def test_the_ledger_defaults_to_the_tracking_database() -> None:
    assert ledger_url("sqlite:///var/mlflow.db", {}) == "sqlite:///var/mlflow.db"
    assert ledger_url("postgresql://mlflow@db/mlflow", {}) == "postgresql://mlflow@db/mlflow"


def test_a_configured_ledger_url_wins_over_the_tracking_database() -> None:
    environ = {"PROMOTION_LEDGER_URL": "postgresql://ledger@db/promotion"}
    assert ledger_url("sqlite:///var/mlflow.db", environ) == "postgresql://ledger@db/promotion"


def test_a_tracking_server_without_a_ledger_url_is_a_clear_error() -> None:
    with pytest.raises(LedgerConfigError, match="PROMOTION_LEDGER_URL is not set") as raised:
        ledger_url("http://admin:s3cret@mlflow:5000", {})
    assert "s3cret" not in str(raised.value)
    assert "http://admin:***@mlflow:5000" in str(raised.value)


def test_a_ledger_url_that_is_not_a_database_is_refused() -> None:
    with pytest.raises(LedgerConfigError, match="must be a sqlite:/// or postgresql:// URL"):
        ledger_url("sqlite:///var/mlflow.db", {"PROMOTION_LEDGER_URL": "http://mlflow:5000"})


def test_an_in_memory_ledger_is_refused_since_processes_could_not_share_it() -> None:
    with pytest.raises(LedgerConfigError, match="in-memory SQLite database cannot be shared"):
        Ledger("sqlite://")
