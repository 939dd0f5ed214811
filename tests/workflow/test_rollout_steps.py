"""The rollout's task bodies on a real (SQLite) MLflow store and prediction log, without Airflow."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

import registry
from approval.testing.slack_fake import FakeSlack
from gateway.predlog import CHAMPION_PAIRED, ArmTotals, PairTotals, WindowTotals, log_tables
from policies import PolicyError
from policies.schema import Policy
from promotion.evaluation import EvaluationResult
from promotion.lifecycle import State
from promotion.rollout_state import STATE_TAG, RolloutState
from tests.support import write_policy
from workflow import rollout
from workflow.promote import NotPromoted
from workflow.runs import RunContext

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
PROMOTE_RUN = RunContext("promote_m", "run-1")
ROLLOUT_RUN = RunContext("rollout_m", "run-1")


def policy(tmp_path: Path, name: str, **rollout_fields: object) -> Policy:
    from policies import load_policy

    fields = {"mode": "canary", "traffic_steps": [0.2, 0.5], "min_labeled_per_step": 100}
    return load_policy(write_policy(tmp_path, name, rollout={**fields, **rollout_fields}))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One SQLite MLflow store for the module (each test uses a model of its own)."""
    import os

    import mlflow

    root = tmp_path_factory.mktemp("rollout-store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    yield root
    mlflow.set_tracking_uri(None)
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous


def register(tmp_path: Path, *, champion: bool = True) -> str:
    """A registered model with three versions: v1 champion (when asked) and v2 challenger."""
    name = f"m_{uuid.uuid4().hex[:8]}"
    registry.ensure_registered_model(name)
    for i in (1, 2, 3):
        registry.register_version(
            name, (tmp_path / f"model{i}").as_uri(), run_id=None, tags={}, description=""
        )
    if champion:
        registry.move_alias(name, "champion", 1, kind="promote", actor="setup", reason="setup")
    registry.move_alias(name, "challenger", 2, kind="candidate", actor="setup", reason="setup")
    return name


@pytest.fixture
def model(store: Path, tmp_path: Path) -> str:
    return register(tmp_path)


@pytest.fixture
def log_db(tmp_path: Path) -> tuple[str, sa.Engine]:
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    engine = sa.create_engine(url)
    log_tables().metadata.create_all(engine)
    return url, engine


def settings(url: str, **env: str) -> rollout.RolloutSettings:
    return rollout.RolloutSettings.from_environment({"GATEWAY_LOG_URL": url, **env})


def evaluation(name: str, challenger: int = 2, champion: int | None = 1) -> dict:
    result = EvaluationResult(
        "promote", ("better on the holdout",), "roc_auc", "superiority", 0.0, 0.95, 1000
    )
    return {
        "model": name,
        "challenger": challenger,
        "champion": champion,
        "eval_run_id": "r1",
        "experiment_id": "0",
        "holdout": "2026-04-01 … 2026-04-15",
        "result": result.to_json_dict(),
    }


def log_outcomes(
    engine: sa.Engine,
    name: str,
    role: str,
    version: int,
    *,
    labeled: int,
    correct: int,
    at: datetime,
    unlabeled: int = 0,
) -> None:
    """Write answered rows (one per request) and labels: `correct` of `labeled` right."""
    tables = log_tables()
    rows, labels = [], []
    for i in range(labeled + unlabeled):
        request_id = f"{role}-{version}-{uuid.uuid4().hex}"
        rows.append(
            {
                "request_id": request_id,
                "row_index": 0,
                "model_name": name,
                "version": version,
                "role": role,
                "features": {},
                "prediction": 0.9,
                "latency_ms": 5.0,
                "created_at": at,
            }
        )
        if i < labeled:
            labels.append(
                {
                    "model_name": name,
                    "request_id": request_id,
                    "row_index": 0,
                    "label": 1.0 if i < correct else 0.0,
                    "labeled_at": at,
                }
            )
    with engine.begin() as connection:
        connection.execute(tables.predictions.insert(), rows)
        if labels:
            connection.execute(tables.labels.insert(), labels)


def started(tmp_path: Path, name: str, **rollout_fields: object) -> tuple[Policy, dict]:
    rules = policy(tmp_path, name, **rollout_fields)
    rollout.start(rules, evaluation(name), PROMOTE_RUN)
    return rules, rollout.begin(rules, ROLLOUT_RUN)


def state(name: str, version: int = 2) -> RolloutState:
    """The version's rollout state as the ledger holds it."""
    found = registry.rollout_state(name, version)
    assert found is not None
    return found


def mirrored(name: str, version: int = 2) -> RolloutState:
    """The version's rollout state as its `rollout.state` tag shows it."""
    tag = registry.get_version(name, version).tags[STATE_TAG]
    return RolloutState.from_json(tag, f"{name} v{version}")


def set_step_starts(name: str, *starts: datetime, version: int = 2) -> None:
    """Pretend the steps started at `starts`, so tests control the clock."""
    current = state(name, version)
    share = current.share if len(starts) == current.step else 0.5
    registry.save_rollout_state(
        dataclasses.replace(
            current,
            step=len(starts),
            share=share if current.mode == "canary" else None,
            step_starts=tuple(at.isoformat() for at in starts),
        )
    )


def restart_clock(name: str, version: int = 2, at: datetime = T0) -> None:
    """Pretend the current step started at `at`, so tests control the clock."""
    set_step_starts(name, at, version=version)


# Configuration and settings


def test_policy_values_the_analysis_refuses_are_refused_with_the_policy(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"m\.yaml: rollout\.min_agreement"):
        policy(tmp_path, "m", mode="shadow", min_agreement=1.0)


def test_step_duration_is_taken_in_minutes_from_the_policy(tmp_path: Path) -> None:
    config = rollout.rollout_config(policy(tmp_path, "m", max_step_minutes=2.5))
    assert config.max_step_seconds == 150
    assert config.traffic_steps == (0.2, 0.5)


def test_missing_prediction_log_setting_names_the_gateway_variable() -> None:
    with pytest.raises(rollout.RolloutError, match="GATEWAY_LOG_URL is not set"):
        rollout.RolloutSettings.from_environment({})


def test_slack_is_optional_and_read_from_the_approval_settings() -> None:
    assert settings("sqlite://").slack is None
    configured = settings("sqlite://", SLACK_BOT_TOKEN="xoxb-1", SLACK_API_URL="http://slack/api/")
    assert configured.slack is not None
    assert configured.slack.slack().base_url == "http://slack/api/"


# Reading the prediction log


def arm(role: str, version: int, labeled: int, correct: int) -> ArmTotals:
    return ArmTotals(role, version, labeled, 0, labeled, correct, float(correct), 0.0, 12.0)


def totals(*arms: ArmTotals, pairs: tuple[PairTotals, ...] = ()) -> WindowTotals:
    return WindowTotals(T0, T0 + timedelta(minutes=5), arms, pairs)


def test_step_windows_follow_each_other_and_the_last_ends_now() -> None:
    starts = [T0, T0 + timedelta(minutes=5)]
    assert rollout.step_windows(starts, T0 + timedelta(minutes=7)) == [
        (T0, T0 + timedelta(minutes=5)),
        (T0 + timedelta(minutes=5), T0 + timedelta(minutes=7)),
    ]


def test_step_stats_take_the_champion_and_canary_of_the_rollout_only() -> None:
    window = totals(
        arm("champion", 1, 300, 270),
        arm("canary", 2, 60, 50),
        arm("canary", 9, 40, 10),  # an earlier canary's leftovers
    )
    stats = rollout.step_stats(window, champion=1, canary=2)
    assert (stats.champion.labeled, stats.champion.correct) == (300, 270)
    assert (stats.challenger.labeled, stats.challenger.correct) == (60, 50)
    assert stats.paired is None


def test_step_stats_pair_the_canary_with_the_champions_scores_of_its_requests() -> None:
    pair = PairTotals("canary", 2, CHAMPION_PAIRED, 1, 60, 55, 50, 45, 40, 38, 45.0, 40.0, 5.0, 9.0)
    other = PairTotals("canary", 2, CHAMPION_PAIRED, 7, 60, 0, 50, 0, 0, 0, 0.0, 0.0, 0.0, 0.0)
    window = totals(arm("champion", 1, 300, 270), arm("canary", 2, 60, 50), pairs=(other, pair))
    paired = rollout.step_stats(window, champion=1, canary=2).paired
    assert (paired.labeled, paired.challenger_correct, paired.champion_correct) == (50, 45, 40)
    assert paired.both_correct == 38
    assert (paired.challenger_outcome_sum, paired.champion_outcome_sum) == (45.0, 40.0)
    # Champion minus canary: the pairs' canary-minus-champion sum, turned around.
    assert (paired.error_difference_sum, paired.error_difference_sq_sum) == (-5.0, 9.0)


def test_shadow_stats_judge_both_arms_on_the_same_labeled_requests() -> None:
    pair = PairTotals("champion", 1, "shadow", 2, 480, 470, 400, 360, 350, 340, 360, 350, 10, 30)
    window = totals(arm("champion", 1, 500, 450), arm("shadow", 2, 480, 400), pairs=(pair,))
    stats = rollout.shadow_stats(window, champion=1, shadow=2)
    assert stats.champion.labeled == stats.challenger.labeled == 400
    assert (stats.champion.correct, stats.challenger.correct) == (360, 350)
    assert (stats.compared, stats.agreed, stats.both_correct) == (480, 470, 340)


# start: the hand-off from promote_<model>


def test_start_aliases_the_canary_at_the_first_step_and_clears_the_challenger(
    tmp_path: Path, model: str
) -> None:
    started = rollout.start(policy(tmp_path, model), evaluation(model), PROMOTE_RUN)
    assert started["alias"] == "canary" and started["canary_share"] == 0.2
    assert registry.get_alias_version(model, "canary") == 2
    assert registry.get_alias_version(model, "challenger") is None
    assert registry.get_alias_version(model, "champion") == 1
    assert registry.get_version(model, 2).tags["rollout.canary_share"] == "0.2"
    recorded = state(model)
    assert (recorded.champion, recorded.step, recorded.share) == (1, 1, 0.2)
    assert recorded.started_by == PROMOTE_RUN.actor and recorded.running
    assert mirrored(model) == recorded


def test_start_in_shadow_mode_aliases_the_shadow_without_a_share(
    tmp_path: Path, model: str
) -> None:
    rollout.start(policy(tmp_path, model, mode="shadow"), evaluation(model), PROMOTE_RUN)
    assert registry.get_alias_version(model, "shadow") == 2
    assert registry.get_alias_version(model, "canary") is None
    assert "rollout.canary_share" not in registry.get_version(model, 2).tags
    assert (state(model).mode, state(model).share) == ("shadow", None)


def test_start_refuses_when_the_champion_moved_since_the_evaluation(
    tmp_path: Path, model: str
) -> None:
    registry.move_alias(model, "champion", 3, kind="promote", actor="other", reason="manual")
    with pytest.raises(NotPromoted, match="champion moved from v1 to v3"):
        rollout.start(policy(tmp_path, model), evaluation(model), PROMOTE_RUN)
    assert registry.get_alias_version(model, "canary") is None


def test_start_without_a_champion_promotes_at_once(tmp_path: Path, store: Path) -> None:
    model = register(tmp_path, champion=False)
    rollout.start(policy(tmp_path, model), evaluation(model, champion=None), PROMOTE_RUN)
    assert registry.get_alias_version(model, "champion") == 2
    assert registry.get_alias_version(model, "canary") is None


def test_rerunning_start_keeps_the_rollout_clock(tmp_path: Path, model: str) -> None:
    rules = policy(tmp_path, model)
    rollout.start(rules, evaluation(model), PROMOTE_RUN)
    restart_clock(model)
    rollout.start(rules, evaluation(model), PROMOTE_RUN)
    assert state(model).step_starts == (T0.isoformat(),)


# check: one look at a running canary or shadow


def test_canary_without_enough_labels_waits_and_says_so(
    tmp_path: Path, model: str, log_db: tuple[str, sa.Engine]
) -> None:
    rules, begun = started(tmp_path, model)
    restart_clock(model)
    log_outcomes(log_db[1], model, "champion", 1, labeled=400, correct=360, at=T0)
    log_outcomes(log_db[1], model, "canary", 2, labeled=40, correct=36, at=T0)
    now = T0 + timedelta(minutes=1)
    assert rollout.check(rules, begun, ROLLOUT_RUN, settings(log_db[0]), now) is None
    waiting = state(model)
    assert "waiting for labels" in waiting.status and "need 100" in waiting.status
    assert waiting.checked_at == now.isoformat() and waiting.verdict.action == "wait"
    assert waiting.verdict.evidence["challenger_labeled"] == 40
    assert mirrored(model).status == waiting.status


def test_canary_with_enough_labels_steps_up_and_records_the_step(
    tmp_path: Path, model: str, log_db: tuple[str, sa.Engine]
) -> None:
    rules, begun = started(tmp_path, model)
    restart_clock(model)
    log_outcomes(log_db[1], model, "champion", 1, labeled=400, correct=360, at=T0)
    log_outcomes(log_db[1], model, "canary", 2, labeled=120, correct=108, at=T0)
    now = T0 + timedelta(minutes=1)
    assert rollout.check(rules, begun, ROLLOUT_RUN, settings(log_db[0]), now) is None
    stepped = state(model)
    assert (stepped.share, stepped.step) == (0.5, 2)
    assert stepped.step_starts == (T0.isoformat(), now.isoformat())
    assert registry.get_version(model, 2).tags["rollout.canary_share"] == "0.5"
    [step] = [c for c in registry.state_history(model, 2) if c.actor == ROLLOUT_RUN.actor]
    assert step.to_state == State.CANARY and step.evidence == {"step": 2, "canary_share": 0.5}


def test_a_canary_check_reads_the_champions_scores_of_the_canarys_requests_as_pairs(
    tmp_path: Path, model: str, log_db: tuple[str, sa.Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    rules, begun = started(tmp_path, model)
    restart_clock(model)
    log_outcomes(log_db[1], model, "canary", 2, labeled=10, correct=10, at=T0)
    with log_db[1].begin() as connection:
        canary = connection.execute(
            sa.text("SELECT request_id FROM prediction_log WHERE role = 'canary'")
        ).scalars()
        # The champion scored the same requests with 0.2: wrong where the label is 1.
        connection.execute(
            log_tables().predictions.insert(),
            [
                {
                    "request_id": request_id,
                    "row_index": 0,
                    "model_name": model,
                    "version": 1,
                    "role": CHAMPION_PAIRED,
                    "features": {},
                    "prediction": 0.2,
                    "latency_ms": 5.0,
                    "created_at": T0,
                }
                for request_id in canary.all()
            ],
        )
    analyzed, analyze = [], rollout.analyze_step

    def recording(config, step, stats, *args, **kwargs):
        analyzed.append(stats)
        return analyze(config, step, stats, *args, **kwargs)

    monkeypatch.setattr(rollout, "analyze_step", recording)
    rollout.check(rules, begun, ROLLOUT_RUN, settings(log_db[0]), T0 + timedelta(minutes=1))
    (stats,) = analyzed
    assert stats.paired is not None
    assert (stats.paired.labeled, stats.paired.challenger_correct) == (10, 10)
    assert (stats.paired.champion_correct, stats.paired.both_correct) == (0, 0)


def test_labels_of_an_earlier_step_still_count_for_that_step(
    tmp_path: Path, model: str, log_db: tuple[str, sa.Engine]
) -> None:
    rules, begun = started(tmp_path, model)
    second = T0 + timedelta(minutes=10)
    set_step_starts(model, T0, second)
    # Step 1's requests are in the earlier window; the current step has enough of its own.
    log_outcomes(log_db[1], model, "champion", 1, labeled=400, correct=360, at=T0)
    log_outcomes(log_db[1], model, "canary", 2, labeled=100, correct=20, at=T0)
    log_outcomes(log_db[1], model, "champion", 1, labeled=200, correct=180, at=second)
    log_outcomes(log_db[1], model, "canary", 2, labeled=100, correct=90, at=second)
    verdict = rollout.check(rules, begun, ROLLOUT_RUN, settings(log_db[0]), second + timedelta(1))
    assert verdict is not None and verdict.action == "revert"
    assert verdict.evidence["challenger_labeled"] == 200


def test_step_at_its_maximum_duration_without_labels_reverts(
    tmp_path: Path, model: str, log_db: tuple[str, sa.Engine]
) -> None:
    rules, begun = started(tmp_path, model, max_step_minutes=5)
    restart_clock(model)
    log_outcomes(log_db[1], model, "canary", 2, labeled=0, correct=0, unlabeled=50, at=T0)
    now = T0 + timedelta(minutes=5)
    verdict = rollout.check(rules, begun, ROLLOUT_RUN, settings(log_db[0]), now)
    assert verdict is not None and verdict.action == "revert"
    assert "maximum duration" in verdict.reasons[0] and "fail closed" in verdict.reasons[0]


def test_step_at_its_maximum_duration_holds_when_the_policy_says_hold(
    tmp_path: Path, model: str, log_db: tuple[str, sa.Engine]
) -> None:
    rules, begun = started(tmp_path, model, max_step_minutes=5, on_timeout="hold")
    restart_clock(model)
    now = T0 + timedelta(minutes=6)
    assert rollout.check(rules, begun, ROLLOUT_RUN, settings(log_db[0]), now) is None


def test_shadow_that_disagrees_and_is_wrong_is_reverted(
    tmp_path: Path, model: str, log_db: tuple[str, sa.Engine]
) -> None:
    rules, begun = started(tmp_path, model, mode="shadow")
    restart_clock(model)
    tables = log_tables()
    with log_db[1].begin() as connection:
        for i in range(150):
            for role, version, score in (("champion", 1, 0.9), ("shadow", 2, 0.1)):
                connection.execute(
                    tables.predictions.insert(),
                    {
                        "request_id": f"r{i}",
                        "row_index": 0,
                        "model_name": model,
                        "version": version,
                        "role": role,
                        "features": {},
                        "prediction": score,
                        "latency_ms": 3.0,
                        "created_at": T0,
                    },
                )
            connection.execute(
                tables.labels.insert(),
                {
                    "model_name": model,
                    "request_id": f"r{i}",
                    "row_index": 0,
                    "label": 1.0,
                    "labeled_at": T0,
                },
            )
    verdict = rollout.check(rules, begun, ROLLOUT_RUN, settings(log_db[0]), T0 + timedelta(1))
    assert verdict is not None and verdict.action == "revert"
    assert verdict.evidence["agreement_rate"] == 0.0


def test_a_canary_moved_by_someone_else_ends_the_rollout_without_moving_anything(
    tmp_path: Path, model: str, log_db: tuple[str, sa.Engine]
) -> None:
    rules, begun = started(tmp_path, model)
    registry.move_alias(model, "canary", 3, kind="promote", actor="other", reason="newer")
    verdict = rollout.check(rules, begun, ROLLOUT_RUN, settings(log_db[0]), T0)
    assert verdict is not None and verdict.action == "superseded"
    assert registry.get_alias_version(model, "canary") == 3


# conclude: promote or revert


def test_promotion_moves_champion_clears_the_canary_and_records_the_previous_champion(
    tmp_path: Path, model: str, log_db: tuple[str, sa.Engine]
) -> None:
    rules, begun = started(tmp_path, model, guard_window_minutes=30)
    verdict = rollout.Verdict.from_xcom(
        {
            "action": "promote",
            "reasons": ["step 2/2: enough labels"],
            "evidence": {"metric": "accuracy", "champion_value": 0.9, "challenger_value": 0.91},
            "step": 2,
            "decided_at": T0.isoformat(),
        }
    )
    outcome = rollout.conclude(rules, begun, verdict, ROLLOUT_RUN, settings(log_db[0]), T0)
    assert registry.get_alias_version(model, "champion") == 2
    assert registry.get_alias_version(model, "canary") is None
    [move] = [m for m in registry.alias_history(model, "champion") if m.to_version == 2]
    assert move.from_version == 1
    promoted = state(model)
    assert (promoted.phase, promoted.status) == ("promoted", "promoted after step 2")
    assert (promoted.guard.previous_champion, promoted.guard.previous_level) == (1, 0.9)
    assert outcome.guard_until == (T0 + timedelta(minutes=30)).isoformat()
    assert outcome.guard_until == promoted.guard.until


def test_revert_clears_the_canary_and_tags_the_numbers(
    tmp_path: Path, model: str, log_db: tuple[str, sa.Engine]
) -> None:
    rules, begun = started(tmp_path, model)
    verdict = rollout.Verdict.from_xcom(
        {
            "action": "revert",
            "reasons": ["step 1/2 (20% traffic): the challenger is worse than the champion"],
            "evidence": {"metric": "accuracy", "challenger_value": 0.3, "e_value": 1e6},
            "step": 1,
            "decided_at": T0.isoformat(),
        }
    )
    rollout.conclude(rules, begun, verdict, ROLLOUT_RUN, settings(log_db[0]), T0)
    assert registry.get_alias_version(model, "canary") is None
    assert registry.get_alias_version(model, "champion") == 1
    reverted = mirrored(model)
    assert reverted.phase == "reverted" and reverted.decided_by == ROLLOUT_RUN.actor
    assert reverted.verdict.evidence["challenger_value"] == 0.3
    assert "challenger is worse" in reverted.reason
    assert registry.version_state(model, 2) == State.REVERTED
    assert reverted.notice == "not sent: SLACK_BOT_TOKEN is not set"


def test_revert_is_told_in_the_policy_channel(
    tmp_path: Path, model: str, log_db: tuple[str, sa.Engine]
) -> None:
    rules, begun = started(tmp_path, model)
    rules = rules.model_copy(
        update={"approval": rules.approval.model_copy(update={"channel": "#ml"})}
    )
    verdict = rollout.Verdict.from_xcom(
        {
            "action": "revert",
            "reasons": ["error-rate guardrail: challenger failed 9 of 100 requests"],
            "evidence": {},
            "step": 1,
            "decided_at": T0.isoformat(),
        }
    )
    with FakeSlack() as slack:
        configured = settings(log_db[0], SLACK_BOT_TOKEN="xoxb-1", SLACK_API_URL=slack.url)
        rollout.conclude(rules, begun, verdict, ROLLOUT_RUN, configured, T0)
    [call] = [c for c in slack.calls if c.method == "chat.postMessage"]
    assert call.payload["channel"] == "#ml"
    assert "reverted" in call.payload["text"] and "error-rate guardrail" in json.dumps(
        call.payload["blocks"]
    )


def test_guard_window_reverts_a_champion_below_the_previous_level(
    tmp_path: Path, model: str, log_db: tuple[str, sa.Engine]
) -> None:
    rules = policy(tmp_path, model, guard_window_minutes=30)
    promoted = rollout.RolloutOutcome.from_xcom(
        {
            "model": model,
            "version": 1,
            "champion": 3,
            "previous_level": 0.9,
            "promoted_at": T0.isoformat(),
            "guard_until": (T0 + timedelta(minutes=30)).isoformat(),
        }
    )
    log_outcomes(log_db[1], model, "champion", 1, labeled=200, correct=120, at=T0)
    guard = rollout.guard_check(rules, promoted, settings(log_db[0]), T0 + timedelta(minutes=1))
    assert guard is not None and guard.action == "revert"


def test_guard_window_keeps_a_healthy_champion_until_the_window_ends(
    tmp_path: Path, model: str, log_db: tuple[str, sa.Engine]
) -> None:
    rules = policy(tmp_path, model, guard_window_minutes=30)
    promoted = rollout.RolloutOutcome.from_xcom(
        {
            "model": model,
            "version": 1,
            "champion": 3,
            "previous_level": 0.9,
            "promoted_at": T0.isoformat(),
            "guard_until": (T0 + timedelta(minutes=30)).isoformat(),
        }
    )
    log_outcomes(log_db[1], model, "champion", 1, labeled=200, correct=182, at=T0)
    db = settings(log_db[0])
    assert rollout.guard_check(rules, promoted, db, T0 + timedelta(minutes=10)) is None
    kept = rollout.guard_check(rules, promoted, db, T0 + timedelta(minutes=30))
    assert kept is not None and kept.action == "keep"


def test_a_watch_that_ended_without_a_verdict_reverts_the_rollout(
    tmp_path: Path, model: str, log_db: tuple[str, sa.Engine]
) -> None:
    rules, _ = started(tmp_path, model)
    rollout.revert_unfinished(rules, ROLLOUT_RUN, settings(log_db[0]), T0)
    assert registry.get_alias_version(model, "canary") is None
    assert state(model).phase == "reverted"
    assert "fail closed" in state(model).reason


def test_promotion_refused_because_the_champion_moved_reverts_instead(
    tmp_path: Path, model: str, log_db: tuple[str, sa.Engine]
) -> None:
    rules, begun = started(tmp_path, model)
    registry.move_alias(model, "champion", 3, kind="promote", actor="other", reason="manual")
    verdict = rollout.Verdict.from_xcom(
        {
            "action": "promote",
            "reasons": ["step 2/2: enough labels"],
            "evidence": {},
            "step": 2,
            "decided_at": T0.isoformat(),
        }
    )
    outcome = rollout.conclude(rules, begun, verdict, ROLLOUT_RUN, settings(log_db[0]), T0)
    assert outcome.verdict == "reverted"
    assert registry.get_alias_version(model, "champion") == 3
    assert registry.get_alias_version(model, "canary") is None
    assert "moved since the decision" in state(model).reason


# Per task: a regressor is judged on squared errors


def regression_policy(tmp_path: Path, name: str, **rollout_fields: object) -> Policy:
    from policies import load_policy

    fields = {"mode": "canary", "traffic_steps": [0.2, 0.5], "min_labeled_per_step": 100}
    path = write_policy(
        tmp_path,
        name,
        rollout={**fields, **rollout_fields},
        model__task="regression",
        model__flavor="lightgbm_regressor",
        promotion__metric="rmse",
        promotion__calibration=None,
    )
    return load_policy(path)


def log_values(
    engine: sa.Engine, name: str, role: str, version: int, *, errors: np.ndarray, at: datetime
) -> None:
    """Answered rows of a regressor (one per request), each labeled `error` below its value."""
    tables = log_tables()
    ids = [f"{role}-{version}-{uuid.uuid4().hex}" for _ in errors]
    with engine.begin() as connection:
        connection.execute(
            tables.predictions.insert(),
            [
                {
                    "request_id": request_id,
                    "row_index": 0,
                    "model_name": name,
                    "version": version,
                    "role": role,
                    "features": {},
                    "prediction": 10.0 + float(error),
                    "latency_ms": 5.0,
                    "created_at": at,
                }
                for request_id, error in zip(ids, errors, strict=True)
            ],
        )
        connection.execute(
            tables.labels.insert(),
            [
                {
                    "model_name": name,
                    "request_id": i,
                    "row_index": 0,
                    "label": 10.0,
                    "labeled_at": at,
                }
                for i in ids
            ],
        )


def test_the_rollout_config_carries_the_policys_task(tmp_path: Path) -> None:
    assert rollout.rollout_config(regression_policy(tmp_path, "m")).task == "regression"
    assert rollout.rollout_config(policy(tmp_path, "m")).task == "binary"


def test_a_regression_canary_with_much_larger_errors_is_reverted_on_squared_errors(
    tmp_path: Path, model: str, log_db: tuple[str, sa.Engine]
) -> None:
    rules = regression_policy(tmp_path, model)
    rollout.start(rules, evaluation(model), PROMOTE_RUN)
    begun = rollout.begin(rules, ROLLOUT_RUN)
    restart_clock(model)
    rng = np.random.default_rng(0)
    at = T0 + timedelta(minutes=1)
    log_values(log_db[1], model, "champion", 1, errors=rng.normal(0, 1, 400), at=at)
    log_values(log_db[1], model, "canary", 2, errors=rng.normal(0, 3, 200), at=at)
    verdict = rollout.check(
        rules, begun, ROLLOUT_RUN, settings(log_db[0]), T0 + timedelta(minutes=5)
    )
    assert verdict is not None and verdict.action == "revert"
    evidence = verdict.evidence
    assert evidence["metric"] == "squared_error"
    assert evidence["challenger_value"] > 4 * evidence["champion_value"]


def test_a_regression_guard_window_reverts_a_champion_whose_errors_grew(
    tmp_path: Path, model: str, log_db: tuple[str, sa.Engine]
) -> None:
    rules = regression_policy(tmp_path, model, guard_window_minutes=30)
    promoted = rollout.RolloutOutcome.from_xcom(
        {
            "model": model,
            "version": 1,
            "champion": 3,
            "previous_level": 1.0,
            "promoted_at": T0.isoformat(),
            "guard_until": (T0 + timedelta(minutes=30)).isoformat(),
        }
    )
    errors = np.random.default_rng(1).normal(0, 2, 300)
    log_values(log_db[1], model, "champion", 1, errors=errors, at=T0)
    guard = rollout.guard_check(rules, promoted, settings(log_db[0]), T0 + timedelta(minutes=1))
    assert guard is not None and guard.action == "revert"
    assert guard.evidence["metric"] == "squared_error"


def test_shadow_stats_of_a_regressor_carry_the_paired_differences() -> None:
    pair = PairTotals(
        "champion", 1, "shadow", 2, 480, 0, 400, 0, 0, 0, 800.0, 1000.0, -200.0, 900.0
    )
    window = totals(arm("champion", 1, 500, 0), arm("shadow", 2, 480, 0), pairs=(pair,))
    stats = rollout.shadow_stats(window, champion=1, shadow=2)
    assert (stats.champion.outcome_sum, stats.challenger.outcome_sum) == (800.0, 1000.0)
    assert (stats.difference_sum, stats.difference_sq_sum) == (-200.0, 900.0)


def test_the_rollout_records_round_trip_through_xcom_as_plain_json() -> None:
    watch = rollout.RolloutWatch("m", 2, "canary", 1, T0.isoformat())
    verdict = rollout.Verdict("promote", ("enough labels",), {"e_value": 1.5}, 2, T0.isoformat())
    outcome = rollout.RolloutOutcome("m", 2, 1, "promoted", ("ok",), 0.9, T0.isoformat(), None)
    for record in (watch, verdict, outcome):
        value = json.loads(json.dumps(record.to_xcom()))
        assert type(record).from_xcom(value) == record


# The rollout's state: one record in the ledger, mirrored to the version


def legacy_canary_tags(at: datetime) -> dict[str, str]:
    """The loose tags the previous release wrote for a canary at its second step."""
    second = at + timedelta(minutes=10)
    return {
        "rollout.mode": "canary",
        "rollout.started_at": at.isoformat(),
        "rollout.started_by": PROMOTE_RUN.actor,
        "rollout.champion_version": "1",
        "rollout.step": "2",
        "rollout.step_starts": json.dumps([at.isoformat(), second.isoformat()]),
        "rollout.canary_share": "0.5",
        "rollout.status": "step 1/2 passed",
        "rollout.checked_at": second.isoformat(),
    }


def test_a_rollout_started_by_the_previous_release_goes_on_from_its_loose_tags(
    tmp_path: Path, model: str, log_db: tuple[str, sa.Engine]
) -> None:
    # A margin wide enough for a few hundred unpaired labels to show the canary safe.
    rules = policy(tmp_path, model, margin=0.2)
    registry.move_alias(model, "canary", 2, kind="promote", actor="old", reason="old release")
    registry.set_version_tags(model, 2, legacy_canary_tags(T0))
    begun = rollout.begin(rules, ROLLOUT_RUN, T0 + timedelta(hours=1))
    assert begun.started_at == T0.isoformat() and begun.champion == 1
    upgraded = state(model)
    assert (upgraded.step, upgraded.share, upgraded.status) == (2, 0.5, "step 1/2 passed")
    assert upgraded.step_starts[0] == T0.isoformat() and upgraded.revision == 1
    tags = registry.get_version(model, 2).tags
    assert sorted(k for k in tags if k.startswith("rollout.")) == [
        "rollout.canary_share",
        "rollout.state",
    ]
    # The second step's labels are judged in the second step's window, as before the upgrade.
    second = T0 + timedelta(minutes=10)
    log_outcomes(log_db[1], model, "champion", 1, labeled=400, correct=360, at=second)
    log_outcomes(log_db[1], model, "canary", 2, labeled=120, correct=108, at=second)
    verdict = rollout.check(rules, begun, ROLLOUT_RUN, settings(log_db[0]), second + timedelta(1))
    assert verdict is not None and verdict.action == "promote" and verdict.step == 2


def test_a_malformed_loose_tag_of_the_previous_release_names_the_version_and_tag(
    tmp_path: Path, model: str
) -> None:
    rules = policy(tmp_path, model)
    registry.move_alias(model, "canary", 2, kind="promote", actor="old", reason="old release")
    registry.set_version_tags(model, 2, {**legacy_canary_tags(T0), "rollout.step": "two"})
    with pytest.raises(rollout.RolloutError, match=rf"{model} v2: tag rollout\.step='two'"):
        rollout.begin(rules, ROLLOUT_RUN)


def test_a_version_aliased_by_hand_after_an_earlier_rollout_starts_a_new_one(
    tmp_path: Path, model: str, log_db: tuple[str, sa.Engine]
) -> None:
    rules, _ = started(tmp_path, model)
    rollout.revert_unfinished(rules, ROLLOUT_RUN, settings(log_db[0]), T0)
    registry.move_alias(
        model, "canary", 2, kind="promote", actor="person", reason="try again", force=True
    )
    later = T0 + timedelta(days=1)
    begun = rollout.begin(rules, ROLLOUT_RUN, later)
    fresh = state(model)
    assert begun.started_at == later.isoformat() == fresh.started_at
    assert fresh.running and fresh.step == 1 and fresh.share == 0.2 and fresh.verdict is None


def test_a_rerun_of_conclude_after_its_verdict_was_recorded_moves_nothing(
    tmp_path: Path, model: str, log_db: tuple[str, sa.Engine]
) -> None:
    rules, begun = started(tmp_path, model, guard_window_minutes=30)
    verdict = rollout.Verdict("promote", ("step 2/2: better",), {"champion_value": 0.9}, 2)
    first = rollout.conclude(rules, begun, verdict, ROLLOUT_RUN, settings(log_db[0]), T0)
    moves = registry.alias_history(model)
    again = rollout.conclude(rules, begun, verdict, ROLLOUT_RUN, settings(log_db[0]), T0)
    assert again == first
    assert registry.alias_history(model) == moves


def test_the_guard_windows_checks_and_verdict_are_recorded_in_the_rollouts_state(
    tmp_path: Path, model: str, log_db: tuple[str, sa.Engine]
) -> None:
    rules, begun = started(tmp_path, model, guard_window_minutes=30)
    verdict = rollout.Verdict("promote", ("step 2/2: better",), {"champion_value": 0.9}, 2)
    promoted = rollout.conclude(rules, begun, verdict, ROLLOUT_RUN, settings(log_db[0]), T0)
    log_outcomes(log_db[1], model, "champion", 2, labeled=200, correct=182, at=T0)
    db = settings(log_db[0])
    assert rollout.guard_check(rules, promoted, db, T0 + timedelta(minutes=10)) is None
    assert state(model).guard.checked_at == (T0 + timedelta(minutes=10)).isoformat()
    kept = rollout.guard_check(rules, promoted, db, T0 + timedelta(minutes=30))
    rollout.settle_guard(rules, promoted, kept, ROLLOUT_RUN, db, T0 + timedelta(minutes=30))
    guard = mirrored(model).guard
    assert (guard.verdict, guard.previous_champion, guard.previous_level) == ("kept", 1, 0.9)
    assert guard.decision.evidence["labeled"] == 200


def test_a_verdict_on_overwhelming_evidence_survives_a_postgresql_backed_hand_off(
    postgres_url: str,
) -> None:
    # Airflow keeps a task's return value in a JSON column; PostgreSQL writes a float of 1e20 or
    # more back as an integer the task runner's channel (msgpack) cannot carry, and the next
    # task then fails before it starts.
    import msgspec

    from promotion.rollout import ArmStats as Arm
    from promotion.rollout import PairedStats, RolloutConfig, StepStats, analyze_step

    pairs = PairedStats(
        labeled=6000, challenger_correct=5400, champion_correct=3000, both_correct=2900
    )
    stats = StepStats(
        champion=Arm(6000, 3000, requests=6000, p99_latency_ms=50.0),
        challenger=Arm(6000, 5400, requests=6000, p99_latency_ms=50.0),
        paired=pairs,
    )
    config = RolloutConfig(traffic_steps=(0.5,), min_labeled_per_step=500)
    step = analyze_step(config, 0, stats, elapsed_seconds=3600.0)
    verdict = rollout.Verdict(step.action, step.reasons, step.evidence.as_dict(), 1, "now")
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            back = connection.execute(
                sa.text("SELECT CAST(:value AS jsonb)::text"),
                {"value": json.dumps(verdict.to_xcom())},
            ).scalar_one()
    finally:
        engine.dispose()
    msgspec.msgpack.encode(json.loads(back))
    assert rollout.Verdict.from_xcom(json.loads(back)).action == "promote"
