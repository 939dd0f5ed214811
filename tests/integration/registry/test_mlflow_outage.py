"""A real MLflow tracking server stopped in the middle of an alias move, then restarted."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import tenacity

import registry
from promotion.records import AliasMove
from registry import moves

pytestmark = pytest.mark.integration


@pytest.fixture
def model(sqlite_mlflow_server, request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A model of the test's own with v1 champion and v2 evaluated; the ledger in its own file."""
    name = request.node.name.removeprefix("test_")[:60]
    monkeypatch.setenv("PROMOTION_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    registry.ensure_registered_model(name)
    for i in (1, 2):
        registry.register_version(
            name, f"s3://models/{name}/{i}", run_id=None, tags={}, description=""
        )
    registry.move_alias(name, "champion", 1, kind="promote", actor="promote/1", reason="first")
    registry.record_transition(name, 2, "evaluated", actor="promote/2", reason="wins")
    return name


def stop_server_when_the_alias_is_set(monkeypatch, server, then=None) -> None:
    """Stop the server after every read of the move, just before it sets the alias."""
    point_alias = moves._point_alias

    def stop_then_set(*args) -> None:
        server.stop()
        if then is not None:
            then()
        point_alias(*args)

    monkeypatch.setattr(moves, "_point_alias", stop_then_set)


def promote(model: str) -> AliasMove | None:
    return registry.move_alias(
        model, "champion", 2, kind="promote", actor="promote/2", reason="wins", expected_from=1
    )


def test_a_move_during_a_server_restart_retries_and_completes_once(
    model: str, sqlite_mlflow_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = sqlite_mlflow_server
    restart = threading.Thread(target=server.start)
    stop_server_when_the_alias_is_set(monkeypatch, server, then=restart.start)
    moved = promote(model)
    restart.join()
    assert (moved.from_version, moved.to_version) == (1, 2)
    assert registry.get_alias_version(model, "champion") == 2
    assert [(m.from_version, m.to_version) for m in registry.alias_history(model)] == [
        (None, 1),
        (1, 2),
    ]


def test_a_server_that_stays_down_fails_the_move_clearly_and_moves_nothing(
    model: str, sqlite_mlflow_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = sqlite_mlflow_server
    # Shorter waits than production's: what is checked is the outcome, not the backoff.
    point_alias = moves._point_alias
    monkeypatch.setattr(point_alias.retry, "wait", tenacity.wait_fixed(0.2))
    stop_server_when_the_alias_is_set(monkeypatch, server)
    with pytest.raises(registry.RegistryUnavailable, match="did not answer while moving") as failed:
        promote(model)
    assert "The alias was not moved" in str(failed.value)
    server.start()
    assert registry.get_alias_version(model, "champion") == 1
    assert [(m.from_version, m.to_version) for m in registry.alias_history(model)] == [(None, 1)]
    assert moves.current_ledger().pending(model) is None
    monkeypatch.setattr(moves, "_point_alias", point_alias)
    assert promote(model).to_version == 2  # the task's retry, once MLflow is back
    assert len(registry.alias_history(model)) == 2
