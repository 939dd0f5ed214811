"""The only package that talks to the MLflow Model Registry."""

from registry.client import (
    VersionInfo,
    alias_history,
    ensure_registered_model,
    find_version_by_tag,
    get_alias_version,
    get_version,
    load_model,
    model_uri,
    move_alias,
    register_version,
    set_version_tags,
)

__all__ = [
    "VersionInfo",
    "alias_history",
    "ensure_registered_model",
    "find_version_by_tag",
    "get_alias_version",
    "get_version",
    "load_model",
    "model_uri",
    "move_alias",
    "register_version",
    "set_version_tags",
]
