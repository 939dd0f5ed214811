"""The monitoring tests read a known state on a fresh MLflow store copied from a migrated one."""

from __future__ import annotations

from tests.registry.conftest import migrated_store, mlflow_store

__all__ = ["migrated_store", "mlflow_store"]
