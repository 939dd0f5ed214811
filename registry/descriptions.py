"""Keeps the MLflow pages truthful after each recorded write: a version's description opens with its
current state, and the registered model's description ends with the alias history as a table.

Called by the guarded move path once the ledger holds the write, so the pages follow the ledger;
a failed write here is retried with the rest of the write's mirror.
"""

from __future__ import annotations

from collections.abc import Mapping

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

from promotion.descriptions import model_description, state_line, version_description
from promotion.records import AliasMove
from registry.client import client
from registry.ledger import LockedLedger, Recorded
from registry.retry import retry_transient
from registry.serving import get_model_aliases

ALIAS_TAG_PREFIX = "alias."


def refresh(book: LockedLedger, done: Recorded) -> None:
    """Rewrite the state line of every version `done` touched and, after a move, the history."""
    versions = {change.version for change in done.changes}
    if done.move is not None:
        versions |= {v for v in (done.move.from_version, done.move.to_version) if v is not None}
    if not versions and done.move is None:
        return
    last_change = {change.version: change for change in book.changes()}
    moves = book.moves()
    by_sequence = {move.sequence: move for move in moves}
    aliases = get_model_aliases(book.model_name)
    for version in sorted(versions):
        change = last_change.get(version)
        move = by_sequence.get(change.alias_move) if change and change.alias_move else None
        line = state_line(change, version, aliases, move)
        _describe_version(book.model_name, version, line, aliases)
    if done.move is not None:
        _describe_model(book.model_name, moves)


@retry_transient()
def _describe_version(
    model_name: str, version: int, state: str, aliases: Mapping[str, int]
) -> None:
    try:
        found = client().get_model_version(model_name, str(version))
    except MlflowException as error:
        if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return  # a deleted version has no page to correct
        raise
    described = version_description(found.description or "", state=state)
    if described != (found.description or ""):
        client().update_model_version(model_name, str(version), described)
    held = {alias for alias, at in aliases.items() if at == version}
    for key in found.tags:
        # alias.<name>.since/by/reason describe an alias the version held; gone with the alias.
        if key.startswith(ALIAS_TAG_PREFIX) and key.split(".")[1] not in held:
            client().delete_model_version_tag(model_name, str(version), key)


@retry_transient()
def _describe_model(model_name: str, moves: list[AliasMove]) -> None:
    current = client().get_registered_model(model_name).description or ""
    described = model_description(current, moves)
    if described != current:
        client().update_registered_model(model_name, described)
