"""Reads and plain writes of the MLflow Model Registry.

The rest of the project gets small typed records back, never MLflow objects. Aliases move only
through `registry.moves.move_alias`, which guards and records each move.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)
from mlflow.tracking import MlflowClient

from registry.retry import retry_transient


@dataclass(frozen=True)
class VersionInfo:
    """What the workflow needs to know about one registered model version."""

    model_name: str
    version: int
    run_id: str | None
    source: str
    status: str
    tags: dict[str, str]

    @property
    def uri(self) -> str:
        return f"models:/{self.model_name}/{self.version}"


@cache
def _client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def client() -> MlflowClient:
    """The MLflow client of the current tracking URI (MLFLOW_TRACKING_URI), built once per URI."""
    return _client(mlflow.get_tracking_uri())


def _is(error: MlflowException, code: int) -> bool:
    return error.error_code == ErrorCode.Name(code)


@retry_transient()
def ensure_registered_model(model_name: str, description: str = "") -> None:
    """Create the registered model if it does not exist yet."""
    try:
        client().create_registered_model(model_name, description=description or None)
    except MlflowException as error:
        if not _is(error, RESOURCE_ALREADY_EXISTS):
            raise


@retry_transient()
def register_version(
    model_name: str, model_uri: str, *, run_id: str | None, tags: dict[str, str], description: str
) -> VersionInfo:
    """Register a logged model as a new version carrying its lineage tags."""
    version = client().create_model_version(
        model_name,
        source=model_uri,
        run_id=run_id,
        tags=tags,
        description=description,
        model_id=model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None,
    )
    return get_version(model_name, int(version.version))


@retry_transient()
def get_version(model_name: str, version: int) -> VersionInfo:
    """Read one version; raises MlflowException when it does not exist."""
    found = client().get_model_version(model_name, str(version))
    return VersionInfo(
        model_name=model_name,
        version=int(found.version),
        run_id=found.run_id,
        source=found.source,
        status=found.status,
        tags=dict(found.tags),
    )


def find_version(model_name: str, version: int) -> VersionInfo | None:
    """Read one version, or None when the model or that version does not exist."""
    try:
        return get_version(model_name, version)
    except MlflowException as error:
        if _is(error, RESOURCE_DOES_NOT_EXIST):
            return None
        raise


@retry_transient()
def find_version_by_tag(model_name: str, key: str, value: str) -> VersionInfo | None:
    """The newest version carrying tag `key` = `value`, or None; lets a retried task find its work."""
    found = client().search_model_versions(
        f"name = '{model_name}' and tags.`{key}` = '{value}'", order_by=["version_number DESC"]
    )
    return get_version(model_name, int(found[0].version)) if found else None


@retry_transient()
def get_alias_version(model_name: str, alias: str) -> int | None:
    """The version an alias points at, or None when the alias (or the model) does not exist."""
    try:
        return int(client().get_model_version_by_alias(model_name, alias).version)
    except MlflowException as error:
        # The SQL store reports an unset alias as INVALID_PARAMETER_VALUE, a missing model as
        # RESOURCE_DOES_NOT_EXIST; both mean "no version holds this alias".
        unset_alias = _is(error, INVALID_PARAMETER_VALUE) and "not found" in error.message
        if _is(error, RESOURCE_DOES_NOT_EXIST) or unset_alias:
            return None
        raise


@retry_transient()
def set_version_tags(model_name: str, version: int, tags: dict[str, Any]) -> None:
    """Write tags on a version (values are stored as strings)."""
    for key, value in tags.items():
        client().set_model_version_tag(
            model_name, str(version), key, "" if value is None else str(value)
        )


@retry_transient()
def delete_version_tags(model_name: str, version: int, keys: list[str]) -> None:
    """Remove tags from a version; a key it does not carry is skipped."""
    for key in keys:
        try:
            client().delete_model_version_tag(model_name, str(version), key)
        except MlflowException as error:
            if not _is(error, RESOURCE_DOES_NOT_EXIST):
                raise


def model_uri(model_name: str, version: int) -> str:
    """The registry URI of one version, for loading it."""
    return f"models:/{model_name}/{version}"


@retry_transient()
def load_model(model_name: str, version: int) -> Any:
    """Load a registered version: as its scikit-learn model when it has that flavor (so class
    probabilities come from `predict_proba`), else as the MLflow pyfunc model it was logged as,
    which is how a model registered from outside the workflow is scored."""
    import mlflow.models
    import mlflow.pyfunc
    import mlflow.sklearn

    uri = model_uri(model_name, version)
    if "sklearn" in mlflow.models.get_model_info(uri).flavors:
        return mlflow.sklearn.load_model(uri)
    return mlflow.pyfunc.load_model(uri)
