"""Registry reads and writes the serving gateway needs beyond `registry.client`."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

from registry.client import client, model_uri
from registry.retry import retry_transient

ALIAS_WEBHOOK_EVENTS = (
    "model_version_alias.created",
    "model_version_alias.deleted",
    "model_version_tag.set",
    "model_version_tag.deleted",
)


@dataclass(frozen=True)
class InputColumn:
    """One column of a version's logged input signature."""

    name: str
    type: str
    required: bool


@dataclass(frozen=True)
class ServingMetadata:
    """What a server needs besides the model: its input columns and an example to warm it with."""

    columns: tuple[InputColumn, ...] | None
    input_example: pd.DataFrame | None


class ModelNotRegistered(LookupError):
    """The registry has never heard of the model (a misspelt name, or one not trained yet)."""


@retry_transient()
def get_model_aliases(model_name: str, *, require_registered: bool = False) -> dict[str, int]:
    """Every alias of a model and its version, read in one call ({} when the model is missing,
    or ModelNotRegistered when `require_registered`).

    One read gives the gateway a consistent view of champion, canary and shadow together, where
    three `get_alias_version` calls could straddle a move. These come from the registered model's
    own alias table, not from `search_model_versions` results (whose `aliases` can be empty).
    """
    try:
        found = client().get_registered_model(model_name)
    except MlflowException as error:
        if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            if require_registered:
                raise ModelNotRegistered(
                    f"{model_name} is not registered in the MLflow registry"
                ) from None
            return {}
        raise
    return {alias: int(version) for alias, version in found.aliases.items()}


@retry_transient()
def unregistered_models(model_names: list[str]) -> dict[str, list[str]]:
    """Of `model_names`, those not registered at all, each with every registered model's name
    (so a caller can point out a misspelling); models that exist are left out."""
    missing = []
    for name in model_names:
        try:
            client().get_registered_model(name)
        except MlflowException as error:
            if error.error_code != ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
                raise
            missing.append(name)
    if not missing:
        return {}
    registered = sorted(model.name for model in client().search_registered_models())
    return {name: registered for name in missing}


@retry_transient()
def get_serving_metadata(model_name: str, version: int) -> ServingMetadata:
    """The logged signature's input columns and the input example of a version (None if absent)."""
    uri = model_uri(model_name, version)
    logged = Model.load(uri)
    schema = logged.get_input_schema()
    columns = None
    if schema is not None and schema.has_input_names():
        columns = tuple(
            InputColumn(name=spec.name, type=_type_name(spec.type), required=spec.required)
            for spec in schema.inputs
        )
    example = logged.load_input_example(uri) if logged.saved_input_example_info else None
    if example is not None and not isinstance(example, pd.DataFrame):
        example = pd.DataFrame(example)
    return ServingMetadata(columns=columns, input_example=example)


def _type_name(kind: object) -> str:
    name = getattr(kind, "name", None)
    return str(name) if name is not None else str(kind)


@retry_transient()
def ensure_alias_webhook(name: str, url: str, secret: str) -> str:
    """Create or update the webhook that tells a gateway at `url` about alias and tag changes.

    Idempotent by name, so every gateway start can call it. Returns the webhook id.
    """
    mlflow_client = client()
    existing = next(
        (hook for hook in mlflow_client.list_webhooks() if hook.name == name),
        None,
    )
    if existing is None:
        created = mlflow_client.create_webhook(
            name=name, url=url, events=list(ALIAS_WEBHOOK_EVENTS), secret=secret
        )
        return created.webhook_id
    mlflow_client.update_webhook(
        existing.webhook_id, url=url, events=list(ALIAS_WEBHOOK_EVENTS), secret=secret
    )
    return existing.webhook_id
