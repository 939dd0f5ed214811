"""Promotions and rollbacks racing on one model from parallel processes, against an MLflow
tracking server backed by PostgreSQL, with the ledger (and its lock) in PostgreSQL too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import registry
from promotion.lifecycle import State, plan_move
from registry import moves
from registry.client import client

pytestmark = pytest.mark.integration

MODEL = "raced"
RACERS, ATTEMPTS = 5, 6
REPO_ROOT = Path(__file__).resolve().parents[3]
REFUSALS = (
    "moved since the decision",
    "rejected → champion",
    "retired → champion by promote",
    "rolled_back → champion by promote",
    "it was never champion",
    "no previous champion",
    "no version holds the 'champion' alias",
)


def set_up_model() -> dict[int, State]:
    """v1 champion; v2, v3, v4 and v6 evaluated; v5 rejected. Returns the states."""
    registry.ensure_registered_model(MODEL)
    for i in range(1, 7):
        registry.register_version(
            MODEL, f"s3://models/{MODEL}/{i}", run_id=None, tags={}, description=""
        )
    registry.move_alias(MODEL, "champion", 1, kind="promote", actor="setup", reason="first")
    for version in (2, 3, 4, 6):
        registry.record_transition(MODEL, version, "evaluated", actor="setup", reason="passed")
    registry.record_transition(MODEL, 5, "rejected", actor="setup", reason="lost")
    return {version: registry.version_state(MODEL, version) for version in range(1, 7)}


def race(tmp_path: Path) -> list[dict]:
    go = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.registry.racer",
                MODEL,
                str(i),
                str(ATTEMPTS),
                str(go),
            ],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            stdout=subprocess.PIPE,
            stderr=(tmp_path / f"racer-{i}.log").open("w"),
            text=True,
        )
        for i in range(RACERS)
    ]
    deadline = time.monotonic() + 180
    while len(list(tmp_path.glob("ready-*"))) < RACERS:
        assert time.monotonic() < deadline, "racers did not start"
        assert all(r.poll() is None for r in racers), "a racer died before the start"
        time.sleep(0.1)
    go.touch()
    outcomes = []
    for i, racer in enumerate(racers):
        out, _ = racer.communicate(timeout=300)
        assert racer.returncode == 0, (tmp_path / f"racer-{i}.log").read_text()[-3000:]
        outcomes += [json.loads(line) for line in out.splitlines()]
    (tmp_path / "outcomes.json").write_text(json.dumps(outcomes, indent=1))
    return outcomes


def test_racing_moves_equal_a_serial_order_of_the_accepted_ones_and_refusals_say_why(
    postgres_mlflow_server, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMOTION_LEDGER_URL", postgres_url)
    states = set_up_model()
    outcomes = race(tmp_path)
    assert len(outcomes) == RACERS * ATTEMPTS
    accepted = {o["actor"]: o for o in outcomes if o["result"] == "moved"}
    refused = [o for o in outcomes if o["result"] == "refused"]
    raced = [m for m in registry.alias_history(MODEL, "champion") if m.actor != "setup"]

    # Each accepted attempt is recorded once, and nothing else is.
    assert sorted(m.actor for m in raced) == sorted(accepted)
    # The ledger's order is a serial order: each move starts where the one before ended, which is
    # where its own decision saw the champion.
    champion = 1
    for move in raced:
        decided = accepted[move.actor]
        assert move.from_version == champion == decided["expected_from"]
        assert move.to_version == decided["target"]
        champion = move.to_version
    assert registry.get_alias_version(MODEL, "champion") == champion
    # Replayed one by one in that order, the lifecycle accepts every move and ends where the
    # ledger says each version is.
    aliases = {"champion": 1}
    for move in raced:
        for transition in plan_move(
            alias="champion",
            from_version=move.from_version,
            to_version=move.to_version,
            kind=move.kind,
            states=states,
            aliases=aliases,
        ):
            states[transition.version] = transition.to_state
        aliases["champion"] = move.to_version
    assert states == {version: registry.version_state(MODEL, version) for version in states}
    # Every refusal says why; the race did produce compare-and-set refusals.
    assert refused
    for outcome in refused:
        assert any(reason in outcome["reason"] for reason in REFUSALS), outcome
    assert any("moved since the decision" in o["reason"] for o in refused)
    # The MLflow UI shows the same history, and no write is left in flight.
    tags = client().get_registered_model(MODEL).tags
    mirrored = [json.loads(v) for k, v in sorted(tags.items()) if k.startswith("alias_move.")]
    every_move = registry.alias_history(MODEL)
    assert [(m["sequence"], m["actor"], m["to_version"]) for m in mirrored] == [
        (m.sequence, m.actor, m.to_version) for m in every_move
    ]
    assert moves.current_ledger().pending(MODEL) is None
