"""The only package that talks to the MLflow Model Registry."""

from registry.client import (
    VersionInfo,
    ensure_registered_model,
    find_version,
    find_version_by_tag,
    get_alias_version,
    get_version,
    load_model,
    model_uri,
    register_version,
    set_version_tags,
)
from registry.ledger import LockTimeout
from registry.moves import (
    ANY,
    AliasMovedOutsideWorkflow,
    AliasMovedSinceDecision,
    MoveRefused,
    RegistryUnavailable,
    alias_history,
    move_alias,
    record_transition,
    state_history,
    version_state,
)
from registry.rollout_states import RolloutStateConflict, rollout_state, save_rollout_state
from registry.settings import LEDGER_URL_ENV, LedgerConfigError

__all__ = [
    "ANY",
    "LEDGER_URL_ENV",
    "AliasMovedOutsideWorkflow",
    "AliasMovedSinceDecision",
    "LedgerConfigError",
    "LockTimeout",
    "MoveRefused",
    "RegistryUnavailable",
    "RolloutStateConflict",
    "VersionInfo",
    "alias_history",
    "ensure_registered_model",
    "find_version",
    "find_version_by_tag",
    "get_alias_version",
    "get_version",
    "load_model",
    "model_uri",
    "move_alias",
    "record_transition",
    "register_version",
    "rollout_state",
    "save_rollout_state",
    "set_version_tags",
    "state_history",
    "version_state",
]
