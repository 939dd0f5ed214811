"""The monitoring tests copy a migrated MLflow store rather than migrate one each time."""

from __future__ import annotations

from tests.registry.conftest import migrated_store

__all__ = ["migrated_store"]
