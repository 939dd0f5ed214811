"""The rollback preflight through Airflow (`airflow dags test`) after a real promotion history.

v1 is trained before the demo source's drift and v2 after it, each promoted in turn. The gateway's
prediction log holds the source's newest 14 days as requests v2 answered, all labeled: on them v1
scores far below v2, so rolling back to it would make things worse.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

import registry
from demo.lifecycle import DagRunFailed, Lifecycle, Workspace
from demo.source_data import as_of_for_window
from gateway.batching import LogEntry, log_rows
from gateway.predlog import Label, create_engine, ensure_tables, log_tables, record_labels
from policies.loader import load_policy, policy_path
from tests.integration.test_lifecycle import MODEL, aliases, start
from workflow.champion_summary import read_summary
from workflow.sources import Window, read_window

pytestmark = pytest.mark.integration
ROLLBACK = f"rollback_{MODEL}"
# The demo source ends on 2026-06-30: the newest window holds the last 14 days, unseen by both.
RECENT = {"as_of": "2026-06-30"}


def last_log(lifecycle: Lifecycle) -> str:
    return sorted(lifecycle.workspace.logs.glob(f"*-{ROLLBACK}.log"))[-1].read_text()


def write_prediction_log(workspace: Workspace, url: str, rows_per_request: int = 100) -> int:
    """The gateway's log of the source's newest 14 days as requests v2 answered, every row
    labeled through the log's own writer and label store; how many rows."""
    source = load_policy(policy_path(MODEL)).source
    frame = read_window(
        workspace.source, source, Window(datetime(2026, 6, 16), datetime(2026, 6, 30))
    )
    engine, tables = create_engine(url), log_tables()
    ensure_tables(engine, tables)
    rows, labels = [], []
    for start_row in range(0, len(frame), rows_per_request):
        part = frame.iloc[start_row : start_row + rows_per_request].reset_index(drop=True)
        request = f"request-{start_row}"
        entry = LogEntry(
            request_id=request,
            model_name=MODEL,
            version=2,
            role="champion",
            routing_key=None,
            features={name: part[name].tolist() for name in source.features.all},
            scores=[0.5] * len(part),
            latency_ms=1.0,
            at=part[source.time_column].max().to_pydatetime(),
        )
        rows += log_rows(entry)
        labels += [
            Label(request, float(label), row_index=index)
            for index, label in enumerate(part[source.target])
        ]
    with engine.begin() as connection:
        connection.execute(tables.predictions.insert(), rows)
    record_labels(engine, tables, MODEL, labels)
    engine.dispose()
    return len(frame)


def champion_moves() -> list[tuple[int | None, int | None, str]]:
    return [
        (m.from_version, m.to_version, m.kind) for m in registry.alias_history(MODEL, "champion")
    ]


def test_the_rollback_preflight_shows_its_plan_and_cannot_make_things_worse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lifecycle = start(Workspace(tmp_path / "ws"), monkeypatch)
    champions = tmp_path / "champions"
    lifecycle.env["PROMOTION_CHAMPIONS_DIR"] = str(champions)
    for window in (1, 2):
        lifecycle.run_dag(f"train_{MODEL}", {"as_of": as_of_for_window(window)})
        lifecycle.run_dag(f"promote_{MODEL}")
    assert aliases() == (2, None)
    assert (read_summary(champions, MODEL).champion, read_summary(champions, MODEL).target) == (
        2,
        1,
    )
    history = champion_moves()
    log_url = f"sqlite:///{tmp_path / 'predictions.db'}"
    logged = write_prediction_log(lifecycle.workspace, log_url)
    lifecycle.env["GATEWAY_LOG_URL"] = log_url

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
    assert f"recent data: prediction log, {logged} labeled rows logged [2026-06-16T" in refused
    assert "refused: the target scores worse than the champion on recent data" in refused
    assert "Set force=true to roll back anyway" in refused
    assert champion_moves() == history

    lifecycle.run_dag(ROLLBACK, {**RECENT, "force": True, "reason": "on-call: forced"})
    assert aliases() == (1, None)
    assert "forced although the target is worse" in last_log(lifecycle)
    forced = registry.alias_history(MODEL, "champion")[-1]
    assert (forced.from_version, forced.to_version, forced.kind) == (2, 1, "rollback")
    assert forced.evidence["target_score"] < forced.evidence["champion_score"]
    assert (forced.evidence["preflight_data"], forced.evidence["preflight_rows"]) == (
        "prediction log",
        logged,
    )
    summary = read_summary(champions, MODEL)
    assert (summary.champion, summary.target) == (1, None)

    with pytest.raises(DagRunFailed):
        lifecycle.run_dag(ROLLBACK, RECENT)
    assert "every former champion (v2) was rolled back from" in last_log(lifecycle)
    assert aliases() == (1, None)
