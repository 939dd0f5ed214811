"""The rollback preflight through Airflow (`airflow dags test`) after a real promotion history.

v1 is trained before the demo source's drift and v2 after it, each promoted in turn; on the
source's newest window v1 scores far below v2, so rolling back to it would make things worse.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import registry
from demo.lifecycle import DagRunFailed, Lifecycle, Workspace
from demo.source_data import as_of_for_window
from tests.integration.test_lifecycle import MODEL, aliases, start

pytestmark = pytest.mark.integration
ROLLBACK = f"rollback_{MODEL}"
# The demo source ends on 2026-06-30: the newest window holds the last 14 days, unseen by both.
RECENT = {"as_of": "2026-06-30"}


def last_log(lifecycle: Lifecycle) -> str:
    return sorted(lifecycle.workspace.logs.glob(f"*-{ROLLBACK}.log"))[-1].read_text()


def champion_moves() -> list[tuple[int | None, int | None, str]]:
    return [
        (m.from_version, m.to_version, m.kind) for m in registry.alias_history(MODEL, "champion")
    ]


def test_the_rollback_preflight_shows_its_plan_and_cannot_make_things_worse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lifecycle = start(Workspace(tmp_path / "ws"), monkeypatch)
    for window in (1, 2):
        lifecycle.run_dag(f"train_{MODEL}", {"as_of": as_of_for_window(window)})
        lifecycle.run_dag(f"promote_{MODEL}")
    assert aliases() == (2, None)
    history = champion_moves()

    with pytest.raises(DagRunFailed):
        lifecycle.run_dag(ROLLBACK, {"versoin": 1})
    assert "unknown key(s) versoin; accepted: as_of, force, reason, version" in last_log(lifecycle)
    assert champion_moves() == history

    with pytest.raises(DagRunFailed):
        lifecycle.run_dag(ROLLBACK, RECENT)
    refused = last_log(lifecycle)
    assert "Rollback plan for user_churn (nothing has moved yet):" in refused
    assert "current champion: v2" in refused
    assert "target: v1 (most recent former champion not rolled back from" in refused
    assert "source window [2026-06-16T00:00:00, 2026-06-30T00:00:00)" in refused
    assert "refused: the target scores worse than the champion on recent data" in refused
    assert "Set force=true to roll back anyway" in refused
    assert champion_moves() == history

    lifecycle.run_dag(ROLLBACK, {**RECENT, "force": True, "reason": "on-call: forced"})
    assert aliases() == (1, None)
    assert "forced although the target is worse" in last_log(lifecycle)
    forced = registry.alias_history(MODEL, "champion")[-1]
    assert (forced.from_version, forced.to_version, forced.kind) == (2, 1, "rollback")
    assert forced.evidence["target_score"] < forced.evidence["champion_score"]

    with pytest.raises(DagRunFailed):
        lifecycle.run_dag(ROLLBACK, RECENT)
    assert "every former champion (v2) was rolled back from" in last_log(lifecycle)
    assert aliases() == (1, None)
