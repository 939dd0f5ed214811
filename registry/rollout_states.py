"""Rollout states: one row per (model, version) in the ledger database, the truth of a rollout.

Each save is a compare-and-set on the record's revision, so two writers (a watch and a rerun of
it, say) cannot silently overwrite each other: the second is refused and reads again. After each
save the record is mirrored onto the version as the tag `rollout.state`, with the canary's share
as `rollout.canary_share` (the gateway's routing read). A version whose rollout was started by the
release that kept loose `rollout.*` tags is read from them once, on its first read here.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import mlflow
import sqlalchemy as sa

from promotion.rollout_state import (
    SHARE_TAG,
    STATE_TAG,
    RolloutState,
    from_legacy_tags,
    legacy_tag_keys,
    to_tag,
)
from registry.client import delete_version_tags, get_version, set_version_tags
from registry.ledger import engine_with_tables
from registry.settings import ledger_url

log = logging.getLogger(__name__)

metadata = sa.MetaData()

rollout_states = sa.Table(
    "promotion_rollout_states",
    metadata,
    sa.Column("model_name", sa.String(256), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
)


class RolloutStateConflict(RuntimeError):
    """Another writer saved the rollout state since it was read; nothing was written. Read the
    state again and redo the change (a retry of the task does)."""


def read_state(url: str, model_name: str, version: int) -> RolloutState | None:
    """The stored state of one version's rollout in the ledger database at `url`, or None."""
    query = sa.select(rollout_states.c.revision, rollout_states.c.state).where(
        rollout_states.c.model_name == model_name, rollout_states.c.version == version
    )
    with engine_with_tables(url, metadata).connect() as connection:
        row = connection.execute(query).one_or_none()
    if row is None:
        return None
    state = RolloutState.from_json(row.state, f"{model_name} v{version}: ledger")
    if (state.model, state.version) != (model_name, version):
        raise ValueError(
            f"{model_name} v{version}: ledger holds the rollout state of "
            f"{state.model} v{state.version} under its key; repair the row"
        )
    return replace(state, revision=row.revision)


def write_state(url: str, state: RolloutState) -> RolloutState:
    """Save `state` if the stored revision is still the one it was read at (0: none stored yet);
    returns it at its new revision. Raises RolloutStateConflict when another save came between."""
    saved = replace(state, revision=state.revision + 1)
    key = (rollout_states.c.model_name == state.model, rollout_states.c.version == state.version)
    with engine_with_tables(url, metadata).begin() as connection:
        if state.revision == 0:
            try:
                with connection.begin_nested():
                    connection.execute(
                        rollout_states.insert().values(
                            model_name=state.model,
                            version=state.version,
                            revision=saved.revision,
                            state=saved.to_json(),
                        )
                    )
                return saved
            except sa.exc.IntegrityError:
                pass
        else:
            updated = connection.execute(
                rollout_states.update()
                .where(*key, rollout_states.c.revision == state.revision)
                .values(revision=saved.revision, state=saved.to_json())
            )
            if updated.rowcount == 1:
                return saved
        stored = connection.execute(sa.select(rollout_states.c.revision).where(*key)).scalar()
    raise RolloutStateConflict(
        f"{state.model} v{state.version}: the rollout state was read at revision "
        f"{state.revision} but the ledger holds revision {stored}: another writer saved it in "
        "between; nothing was written. Read it again and retry."
    )


def rollout_state(model_name: str, version: int) -> RolloutState | None:
    """The state of one version's rollout (None when it never had one), from the ledger of the
    current MLflow tracking URI; a rollout recorded in the earlier release's loose tags is moved
    into the ledger here, once."""
    url = ledger_url(mlflow.get_tracking_uri())
    stored = read_state(url, model_name, version)
    if stored is not None:
        return stored
    tags = get_version(model_name, version).tags
    legacy = from_legacy_tags(model_name, version, tags)
    if legacy is None:
        return None
    try:
        upgraded = write_state(url, legacy)
    except RolloutStateConflict:
        return read_state(url, model_name, version)  # another reader moved it first
    log.info("%s v%s: rollout state read from the loose rollout.* tags", model_name, version)
    _mirror(upgraded)
    delete_version_tags(model_name, version, legacy_tag_keys(tags))
    return upgraded


def save_rollout_state(state: RolloutState) -> RolloutState:
    """Save a rollout's state (compare-and-set on its revision) and mirror it onto the version;
    returns the state at its new revision."""
    saved = write_state(ledger_url(mlflow.get_tracking_uri()), state)
    _mirror(saved)
    return saved


def _mirror(state: RolloutState) -> None:
    tags = {STATE_TAG: to_tag(state)}
    if state.share is not None:
        tags[SHARE_TAG] = str(state.share)
    set_version_tags(state.model, state.version, tags)
