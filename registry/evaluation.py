"""Registry reads and writes of the champion–challenger evaluation."""

from __future__ import annotations

import tempfile
from pathlib import Path

from promotion.descriptions import version_description
from registry.client import client, set_version_tags
from registry.retry import retry_transient


@retry_transient()
def input_schema(model_name: str, version: int) -> tuple[tuple[str, str], ...] | None:
    """The (column, MLflow type) pairs of a version's input signature; None without a signature."""
    import mlflow.models

    info = mlflow.models.get_model_info(f"models:/{model_name}/{version}")
    if info.signature is None or info.signature.inputs is None:
        return None
    return tuple((spec.name, spec.type.name) for spec in info.signature.inputs.inputs)


@retry_transient()
def artifact_size_bytes(model_name: str, version: int) -> int:
    """Bytes of a version's model artifacts (what a server downloads to serve it)."""
    import mlflow.artifacts

    with tempfile.TemporaryDirectory() as scratch:
        local = mlflow.artifacts.download_artifacts(
            f"models:/{model_name}/{version}", dst_path=scratch
        )
        return sum(path.stat().st_size for path in Path(local).rglob("*") if path.is_file())


@retry_transient()
def record_evaluation(model_name: str, version: int, tags: dict[str, str], summary: str) -> None:
    """Write the evaluation's tags on the version and its summary in the description, below the
    state line, so the version page answers "why was this (not) promoted" without opening Airflow."""
    set_version_tags(model_name, version, tags)
    current = client().get_model_version(model_name, str(version)).description or ""
    client().update_model_version(
        model_name, str(version), version_description(current, evaluation=summary)
    )
