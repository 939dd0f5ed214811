"""One racing process of the concurrency test: promotions and rollbacks decided and made at once.

Run as `python -m tests.integration.registry.racer MODEL INDEX ATTEMPTS GO_FILE`. Each attempt reads
the champion (the decision's basis), takes a moment to decide, then moves `champion` by
compare-and-set against what it read, exactly as promote_<model> and rollback_<model> do. Prints
one JSON line per attempt: what was tried and whether it moved, did nothing, or was refused (why).
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import registry
from promotion.decisions import NothingToRollBack, rollback_target

VERSIONS = range(2, 7)


def attempt(model: str, actor: str, rng: random.Random) -> dict:
    kind = rng.choice(["promote", "promote", "rollback"])
    seen = registry.get_alias_version(model, "champion")
    target = rng.choice(VERSIONS) if kind == "promote" else None
    outcome = {"actor": actor, "kind": kind, "expected_from": seen}
    try:
        if kind == "rollback":
            target = rollback_target(
                registry.alias_history(model, "champion"), current_champion=seen
            ).to_version
        time.sleep(rng.uniform(0.02, 0.15))  # deciding takes a while; others move meanwhile
        moved = registry.move_alias(
            model,
            "champion",
            target,
            kind=kind,  # type: ignore[arg-type]
            actor=actor,
            reason=f"race: {kind} to v{target}",
            expected_from=seen,
        )
        return {**outcome, "target": target, "result": "moved" if moved else "nothing to do"}
    except (registry.MoveRefused, NothingToRollBack) as refusal:
        return {**outcome, "target": target, "result": "refused", "reason": str(refusal)}


def main(model: str, index: int, attempts: int, go: Path) -> None:
    rng = random.Random(index)
    go.with_name(f"ready-{index}").touch()
    while not go.exists():  # start together, once every racer has imported MLflow
        time.sleep(0.02)
    for number in range(attempts):
        print(json.dumps(attempt(model, f"racer-{index}/attempt-{number}", rng)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
