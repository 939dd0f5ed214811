"""Every call to the MLflow Model Registry goes through here.

The rest of the project gets small typed records back, never MLflow objects, and moves an alias
only through `move_alias`, which records each move on the registered model so the MLflow UI shows
the alias history that the registry itself does not keep.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
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

from promotion.records import AliasMove, MoveKind
from registry.retry import retry_transient

HISTORY_TAG_PREFIX = "alias_move."


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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
def alias_history(model_name: str, alias: str | None = None) -> list[AliasMove]:
    """Recorded alias moves of a model, oldest first; only those of `alias` when given."""
    try:
        tags = client().get_registered_model(model_name).tags
    except MlflowException as error:
        if _is(error, RESOURCE_DOES_NOT_EXIST):
            return []
        raise
    moves = [
        AliasMove.from_json_dict(json.loads(value))
        for key, value in tags.items()
        if key.startswith(HISTORY_TAG_PREFIX)
    ]
    moves.sort(key=lambda move: move.sequence)
    return [move for move in moves if alias is None or move.alias == alias]


def move_alias(
    model_name: str,
    alias: str,
    to_version: int | None,
    *,
    kind: MoveKind,
    actor: str,
    reason: str,
    evidence: dict[str, float | int | str | None] | None = None,
) -> AliasMove | None:
    """Point `alias` at `to_version` (None removes it) and record the move; the one way aliases move.

    Safe to rerun: when the alias already points at the target and the record says so, nothing
    happens; when the record was lost (a crash between setting the alias and writing the record),
    the record is written then. Returns the recorded move, or None when there was nothing to do.
    """
    current = get_alias_version(model_name, alias)
    history = alias_history(model_name)
    last = next((move for move in reversed(history) if move.alias == alias), None)
    recorded_target = None if last is None else last.to_version
    if current == to_version and recorded_target == to_version:
        return None
    if to_version is not None:
        get_version(model_name, to_version)  # refuses a version that does not exist
    move = AliasMove(
        sequence=(history[-1].sequence + 1) if history else 1,
        alias=alias,
        from_version=current if current != to_version else recorded_target,
        to_version=to_version,
        kind=kind,
        at=_now(),
        actor=actor,
        reason=reason,
        evidence=dict(evidence or {}),
    )
    if current != to_version:
        _point_alias(model_name, alias, to_version)
    _record_move(model_name, move)
    return move


@retry_transient()
def _point_alias(model_name: str, alias: str, version: int | None) -> None:
    if version is None:
        client().delete_registered_model_alias(model_name, alias)
    else:
        client().set_registered_model_alias(model_name, alias, str(version))


@retry_transient()
def _record_move(model_name: str, move: AliasMove) -> None:
    client().set_registered_model_tag(
        model_name, f"{HISTORY_TAG_PREFIX}{move.sequence:06d}", json.dumps(move.to_json_dict())
    )
    if move.to_version is not None:
        prefix = f"alias.{move.alias}"
        set_version_tags(
            model_name,
            move.to_version,
            {
                f"{prefix}.since": move.at,
                f"{prefix}.by": move.actor,
                f"{prefix}.reason": move.reason,
            },
        )


def model_uri(model_name: str, version: int) -> str:
    """The registry URI of one version, for loading it."""
    return f"models:/{model_name}/{version}"


@retry_transient()
def load_model(model_name: str, version: int) -> Any:
    """Load a registered version as the scikit-learn pipeline it was logged as."""
    import mlflow.sklearn

    return mlflow.sklearn.load_model(model_uri(model_name, version))
