"""Helpers for tests that need registered versions MLflow can actually load."""

from __future__ import annotations

from pathlib import Path


def save_loadable_model(path: Path) -> Path:
    """Save a tiny scikit-learn model at `path` (an MLflow model directory) and return it."""
    import mlflow.sklearn
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    fitted = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    mlflow.sklearn.save_model(fitted, path, serialization_format="skops", skops_trusted_types=[])
    return path
