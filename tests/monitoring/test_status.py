"""`python -m monitoring status` on a known state written through the project's own writers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitoring.__main__ import main
from monitoring.readings import wilson_interval
from tests.monitoring.support import MODEL, KnownState, build_known_state


@pytest.fixture(scope="module")
def state(migrated_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnownState]:
    """The known state, written once for the module on a copy of the migrated MLflow store."""
    import mlflow

    root = tmp_path_factory.mktemp("status")
    shutil.copyfile(migrated_store, root / "mlflow.db")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        known = build_known_state(root, uri, datetime.now(UTC))
        for key, value in known.env.items():
            patch.setenv(key, value)
        patch.setenv("AIRFLOW_UI_URL", "http://airflow.test")
        for key in ("AIRFLOW_API_TOKEN", "AIRFLOW_API_USERNAME", "PROMOTION_LEDGER_URL"):
            patch.delenv(key, raising=False)
        yield known
    mlflow.set_tracking_uri(None)


def status(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["status", *args]) == 0
    return capsys.readouterr().out


def test_the_model_status_shows_aliases_pending_approval_and_the_live_metric(state, capsys) -> None:
    out = status(capsys, "--model", MODEL)
    low, high = wilson_interval(state.day_correct, state.day_labeled, 0.95)
    assert "champion v1" in out
    assert "challenger" not in out.split("pending")[0]
    assert "approval: v3 waits for 1 of UALICE001, UBOB00002 in #model-approvals" in out
    assert (
        f"{state.day_correct / state.day_labeled:.3f} [{low:.3f}, {high:.3f}] on 200 labels since"
        in out
    )
    assert f"performance floor  │ {state.floor:.4g} (roc_auc)" in out


def test_the_model_status_counts_validated_windows_and_shows_the_newest_drift(
    state, capsys
) -> None:
    out = status(capsys, "--model", MODEL)
    assert "2/3 windows passed" in out
    assert "fired: plan drifted (PSI 0.31 ≥ 0.2)" in out
    plan = next(line for line in out.splitlines() if line.startswith("│ plan "))
    assert plan.split("│")[2:5] == [" 0.31 ", " 0.001   ", " yes     "]


def test_the_alias_timeline_reads_newest_first_with_who_why_and_numbers(state, capsys) -> None:
    out = status(capsys, "--model", MODEL)
    timeline = out[out.index("Alias timeline") : out.index("Aliases moved outside the workflow")]
    rows = [
        line for line in timeline.splitlines() if "│ champion" in line or "│ challenger" in line
    ]
    assert "v2 → v1" in rows[0] and "rollback" in rows[0] and "bad feedback from sales" in rows[0]
    promoted = next(row for row in rows if "v1 → v2" in row)
    assert "delta=0.01235" in promoted and "ci_low=0.004" in promoted
    assert "rollback_churn_watch/run-1" in rows[0]
    assert rows[-1].count("none → v1") == 1 and "candidate" in rows[-1]


def test_an_alias_moved_outside_the_workflow_is_listed_with_the_move_it_met(state, capsys) -> None:
    out = status(capsys, "--model", MODEL)
    drifts = out[out.index("Aliases moved outside the workflow") :]
    row = next(line for line in drifts.splitlines() if "│ champion" in line)
    assert [cell.strip() for cell in row.split("│")[2:5]] == ["champion", "v1", "v3"]
    assert "refused" in drifts


def test_without_airflow_settings_the_runs_section_says_how_to_enable_it(state, capsys) -> None:
    out = status(capsys, "--model", MODEL)
    assert "Last runs: Airflow's REST API is not configured: set AIRFLOW_API_URL" in out


def test_the_overview_has_one_line_per_model_with_its_live_accuracy(state, capsys) -> None:
    out = status(capsys)
    line = next(line for line in out.splitlines() if MODEL in line)
    assert "champion v1" in line
    assert f"{state.day_correct / state.day_labeled:.3f}" in out
    assert "2/3 passed" in out


def test_an_unknown_model_is_refused_naming_the_known_ones(state, capsys) -> None:
    assert main(["status", "--model", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--model nope: no policy file names this model" in err
    assert f"(known: {MODEL})" in err


class RecordedAirflow:
    """What Airflow's REST API answers about two runs, in AirflowRunsClient's shapes."""

    runs = {
        "promote_churn_watch": [
            {
                "dag_id": "promote_churn_watch",
                "dag_run_id": "run-2",
                "state": "success",
                "start_date": "2026-03-02T10:00:00Z",
                "note": None,
            },
        ],
        "train_churn_watch": [
            {
                "dag_id": "train_churn_watch",
                "dag_run_id": "run-3",
                "state": "failed",
                "start_date": "2026-03-03T10:00:00Z",
                "note": None,
            },
        ],
    }

    def last_runs(self, dag_id: str, limit: int) -> list[dict]:
        return self.runs.get(dag_id, [])[:limit]

    def failed_tasks(self, dag_id: str, run_id: str) -> list[str]:
        return ["validate_window"] if run_id == "run-3" else []

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str) -> object | None:
        assert (task_id, key) == ("choose_outcome", "outcome")
        return "promoted (decided by promote_challenger)"


def test_runs_read_their_outcome_from_the_run_and_the_ledger_and_name_failed_tasks(state) -> None:
    from monitoring.settings import MonitoringSettings
    from monitoring.text import model_text
    from monitoring.view import Sources, model_view

    sources = Sources(MonitoringSettings.from_environment(), RecordedAirflow())
    view = model_view(sources, sources.policy(MODEL), now=datetime.now(UTC))
    runs = {run.dag_id: run for run in view.runs}
    assert runs["promote_churn_watch"].outcome.startswith(
        "promoted (decided by promote_challenger); v1 retired; v2 evaluated; v2 champion; "
        "why: better than v1"
    )
    assert runs["promote_churn_watch"].versions == (1, 2)
    assert runs["train_churn_watch"].outcome == "failed in validate_window"
    assert runs["train_churn_watch"].airflow_url == (
        "http://airflow.test/dags/train_churn_watch/runs/run-3"
    )
    assert "failed in validate_window" in model_text(view)


def test_without_a_floor_in_the_policy_the_newest_check_gives_it(tmp_path: Path) -> None:
    from monitoring.view import trigger_floor
    from policies.loader import load_policy
    from registry.monitor_checks import MonitorCheck
    from tests.support import write_policy

    policy = load_policy(write_policy(tmp_path, "plain"))
    assert trigger_floor(policy, []) == (None, None)
    check = MonitorCheck(
        model_name="plain",
        checked_at="2026-03-01T00:00:00+00:00",
        champion_version=1,
        outcome="quiet",
        fired=(),
        reason="",
        signals={"performance": {"metric": "roc_auc", "floor": 0.61}},
    )
    assert trigger_floor(policy, [check]) == ("roc_auc", 0.61)


def canaried_policy(tmp_path: Path):
    from policies.loader import load_policy
    from tests.support import write_policy

    return load_policy(
        write_policy(
            tmp_path, "canaried", rollout={"mode": "canary", "traffic_steps": [0.05, 0.25, 0.5]}
        )
    )


CANARIED = (
    ("champion", 2, None),
    ("canary", 3, None, "answers 25% of traffic"),
)
WAITING = (
    "canary v3: step 2 of 3, 25% of traffic; last check: waiting for labels: 180 of 500 "
    "at 2026-03-01T10:00:00+00:00"
)


def test_a_canary_under_way_shows_its_step_share_and_last_check(tmp_path: Path) -> None:
    from monitoring.view import AliasState, rollout_progress
    from promotion import rollout_state as rs

    started = rs.start(
        "canaried",
        3,
        mode="canary",
        champion=2,
        started_by="promote_canaried",
        traffic_steps=(0.05, 0.25, 0.5),
        now=datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
    )
    stepped = rs.step_up(
        started, (0.05, 0.25, 0.5), ["step 1 passed"], {}, datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    )
    waiting = rs.record_wait(
        stepped, ["waiting for labels: 180 of 500"], {}, datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    )
    tags = {3: {rs.STATE_TAG: rs.to_tag(waiting), rs.SHARE_TAG: "0.25"}}
    aliases = tuple(AliasState(*alias) for alias in CANARIED)
    assert rollout_progress(canaried_policy(tmp_path), aliases, tags).text == WAITING
    assert rollout_progress(canaried_policy(tmp_path), aliases[:1], tags) is None


def test_a_canary_started_by_the_previous_release_shows_from_its_loose_tags(
    tmp_path: Path,
) -> None:
    from monitoring.view import AliasState, rollout_progress

    tags = {
        3: {
            "rollout.champion_version": "2",
            "rollout.step": "2",
            "rollout.step_starts": '["2026-03-01T09:00:00+00:00", "2026-03-01T09:30:00+00:00"]',
            "rollout.canary_share": "0.25",
            "rollout.status": "waiting for labels: 180 of 500",
            "rollout.checked_at": "2026-03-01T10:00:00+00:00",
        }
    }
    aliases = tuple(AliasState(*alias) for alias in CANARIED)
    assert rollout_progress(canaried_policy(tmp_path), aliases, tags).text == WAITING


def test_an_unreadable_rollout_state_is_shown_with_what_is_wrong(tmp_path: Path) -> None:
    from monitoring.view import AliasState, rollout_progress

    tags = {3: {"rollout.state": '{"schema": 9}'}}
    aliases = tuple(AliasState(*alias) for alias in CANARIED)
    shown = rollout_progress(canaried_policy(tmp_path), aliases, tags).text
    assert "canaried v3: tag rollout.state: rollout state has schema 9" in shown
