"""The rollback task bodies: what they put back, what they refuse and why, and their retries."""

from __future__ import annotations

import logging
import re
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import registry
from demo.source_data import write_source
from policies.loader import load_policy
from promotion.decisions import NothingToRollBack
from promotion.lifecycle import State
from tests.registry.support import save_loadable_model
from tests.support import write_policy
from workflow import rollback
from workflow.params import ParamError, require_known_params
from workflow.runs import RunContext

MODEL = "churn"
RUN = RunContext(dag_id="rollback_churn", run_id="manual__1")
SECOND_RUN = RunContext(dag_id="rollback_churn", run_id="manual__2")
# The scored source's rows end on 2026-03-13; its newest 14-day window before this holds them all.
AS_OF = datetime(2026, 3, 14)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_loadable_model(tmp_path_factory.mktemp("model") / "model")


@pytest.fixture
def policy(tmp_path: Path):
    return load_policy(write_policy(tmp_path, MODEL))


@pytest.fixture
def versions(mlflow_store: str, saved_model: Path, tmp_path: Path) -> list[int]:
    """Four loadable versions; v1 then v2 promoted to champion."""
    registry.ensure_registered_model(MODEL)
    found = [
        registry.register_version(
            MODEL, str(saved_model), run_id=None, tags={}, description=""
        ).version
        for _ in range(4)
    ]
    for version, run in ((1, "promote_churn/run-1"), (2, "promote_churn/run-2")):
        registry.move_alias(MODEL, "champion", version, kind="promote", actor=run, reason="wins")
    return found


def champion() -> int | None:
    return registry.get_alias_version(MODEL, "champion")


def test_default_params_put_the_previous_champion_back(policy, versions) -> None:
    planned = rollback.plan(policy, None, False)
    assert (planned.from_version, planned.to_version) == (2, 1)
    rollback.apply(policy, planned, "bad predictions", RUN)
    assert champion() == 1
    assert registry.version_state(MODEL, 2) is State.ROLLED_BACK
    assert registry.get_version(MODEL, 2).tags["promotion.rollback_reason"] == "bad predictions"


def test_a_retried_apply_finds_its_rollback_done_and_moves_nothing(policy, versions) -> None:
    planned = rollback.plan(policy, None, False)
    rollback.apply(policy, planned, "bad predictions", RUN)
    rollback.apply(policy, planned, "bad predictions", RUN)
    assert champion() == 1
    assert [m.kind for m in registry.alias_history(MODEL, "champion")] == [
        "promote",
        "promote",
        "rollback",
    ]


def test_a_rerun_of_a_run_that_rolled_back_does_not_undo_its_own_rollback(policy, versions) -> None:
    rollback.apply(policy, rollback.plan(policy, None, False, RUN), "bad predictions", RUN)
    again = rollback.plan(policy, None, False, RUN)
    rollback.apply(policy, again, "bad predictions", RUN)
    assert champion() == 1
    assert len(registry.alias_history(MODEL, "champion")) == 3


def test_a_rollback_planned_before_another_move_is_refused_and_moves_nothing(
    policy, versions
) -> None:
    planned = rollback.plan(policy, None, False)
    registry.move_alias(
        MODEL, "champion", 3, kind="promote", actor="promote_churn/run-3", reason=""
    )
    with pytest.raises(NothingToRollBack, match="moved since the decision: it points at v3"):
        rollback.apply(policy, planned, "bad predictions", RUN)
    assert champion() == 3


def test_a_rollback_during_a_canary_clears_the_canary_first(policy, versions) -> None:
    registry.move_alias(MODEL, "canary", 3, kind="promote", actor="rollout", reason="step 1")
    planned = rollback.plan(policy, None, False)
    rollback.apply(policy, planned, "canary errors", RUN)
    assert registry.get_alias_version(MODEL, "canary") is None
    assert champion() == 1
    assert [(m.alias, m.to_version) for m in registry.alias_history(MODEL)][-2:] == [
        ("canary", None),
        ("champion", 1),
    ]
    assert registry.version_state(MODEL, 3) is State.REVERTED


def test_a_canary_started_after_the_plan_stops_the_rollback(policy, versions) -> None:
    planned = rollback.plan(policy, None, False)
    registry.move_alias(MODEL, "canary", 3, kind="promote", actor="rollout", reason="step 1")
    with pytest.raises(NothingToRollBack, match="canary v3 is still running"):
        rollback.apply(policy, planned, "bad predictions", RUN)
    assert champion() == 2


def test_a_version_that_never_was_champion_needs_force(policy, versions) -> None:
    with pytest.raises(NothingToRollBack, match="never champion; set force=true"):
        rollback.plan(policy, 4, False)
    rollback.apply(policy, rollback.plan(policy, 4, True), "hotfix build", RUN)
    assert champion() == 4
    assert registry.state_history(MODEL, 4)[-1].forced


def test_a_deleted_target_is_refused(policy, versions) -> None:
    registry.client.client().delete_model_version(MODEL, "1")
    with pytest.raises(NothingToRollBack, match="version 1 cannot be read from the registry"):
        rollback.plan(policy, None, False)
    assert champion() == 2


def test_a_target_whose_artifacts_no_longer_load_is_refused(
    policy, saved_model: Path, mlflow_store: str, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(saved_model, broken)
    (broken / "model.skops").unlink()
    registry.ensure_registered_model(MODEL)
    for source in (broken, saved_model):
        registry.register_version(MODEL, str(source), run_id=None, tags={}, description="")
    for version, run in ((1, "promote_churn/run-1"), (2, "promote_churn/run-2")):
        registry.move_alias(MODEL, "champion", version, kind="promote", actor=run, reason="wins")
    with pytest.raises(NothingToRollBack, match="version 1's artifacts no longer load"):
        rollback.plan(policy, None, False)
    assert champion() == 2


@pytest.mark.parametrize("force", [False, True])
def test_a_version_param_naming_no_version_is_refused_by_name(policy, versions, force) -> None:
    with pytest.raises(
        ParamError, match="DAG param version: churn has no version 9 in the registry"
    ):
        rollback.plan(policy, 9, force)
    assert champion() == 2
    assert len(registry.alias_history(MODEL, "champion")) == 2


def test_a_second_default_rollback_does_not_flip_back(policy, versions) -> None:
    rollback.apply(policy, rollback.plan(policy, None, False, RUN), "bad predictions", RUN)
    with pytest.raises(NothingToRollBack, match=r"every former champion \(v2\) was rolled back"):
        rollback.plan(policy, None, False, SECOND_RUN)
    assert champion() == 1


def test_without_recent_data_the_plan_says_so_and_the_rollback_goes_ahead(
    policy, versions, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="workflow.rollback"):
        planned = rollback.plan(policy, None, False, RUN)
    assert "roc_auc on it: not scored: the source cannot be read" in planned.plan
    assert planned.check.startswith("WARNING: not compared")
    assert planned.champion_score is None and planned.target_score is None
    assert planned.plan in caplog.text
    assert rollback.PlannedRollback.from_xcom(planned.to_xcom()) == planned


@pytest.mark.parametrize(
    ("conf", "unknown"), [({"versoin": 1}, "versoin"), ({"force": True, "x": 1, "a": 2}, "a, x")]
)
def test_unknown_conf_keys_are_refused_with_the_accepted_ones(conf: dict, unknown: str) -> None:
    with pytest.raises(ParamError) as refused:
        require_known_params(conf, ["version", "reason", "force", "as_of"])
    assert f"unknown key(s) {unknown}; accepted: as_of, force, reason, version" in str(
        refused.value
    )


def test_known_conf_keys_and_an_empty_conf_pass() -> None:
    require_known_params({"version": 2, "reason": "x"}, ["version", "reason", "force"])
    require_known_params(None, ["version"])


def recent_rows(seed: int = 3, n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 3, n)
    return pd.DataFrame(
        {
            "created_at": pd.date_range("2026-03-01", periods=n, freq="30min"),
            "x": x,
            "target": (x + rng.normal(0, 0.5, n) > 1.5).astype(int),
        }
    )


def fitted_model(path: Path, frame: pd.DataFrame, inverted: bool) -> Path:
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    labels = 1 - frame["target"] if inverted else frame["target"]
    fitted = LogisticRegression().fit(frame[["x"]], labels)
    mlflow.sklearn.save_model(fitted, path, serialization_format="skops", skops_trusted_types=[])
    return path


@pytest.fixture
def scored_policy(tmp_path: Path):
    """A policy whose source holds 600 recent labeled rows of one feature."""
    url = f"sqlite:///{tmp_path / 'source.db'}"
    write_source(url, recent_rows())
    path = write_policy(
        tmp_path,
        MODEL,
        source__url=url,
        source__conn_id=None,
        source__features={"numeric": ["x"], "categorical": []},
        promotion__slices=[],
    )
    return load_policy(path)


def promote_history(tmp_path: Path, first_inverted: bool) -> None:
    """v1 (inverted labels when `first_inverted`: worse than chance) then v2 made champion."""
    training = recent_rows(seed=11)
    registry.ensure_registered_model(MODEL)
    for version, inverted in ((1, first_inverted), (2, False)):
        source = fitted_model(tmp_path / f"model-{version}", training, inverted)
        registry.register_version(MODEL, str(source), run_id=None, tags={}, description="")
        registry.move_alias(
            MODEL, "champion", version, kind="promote", actor=f"promote/{version}", reason="wins"
        )


def test_the_plan_shows_champion_target_why_and_both_scores(
    scored_policy, mlflow_store: str, tmp_path: Path
) -> None:
    promote_history(tmp_path, first_inverted=False)
    planned = rollback.plan(scored_policy, None, False, RUN, AS_OF)
    assert (planned.from_version, planned.to_version, planned.rows) == (2, 1, 600)
    assert planned.champion_score == pytest.approx(planned.target_score, abs=0.02)
    assert planned.champion_score > 0.8
    lines = planned.plan.splitlines()
    assert lines[1:3] == [
        "  current champion: v2",
        "  target: v1 (most recent former champion not rolled back from: v1, champion until "
        "move #2 (promote: v1 → v2))",
    ]
    assert "source window [2026-02-28T00:00:00, 2026-03-14T00:00:00), 600 labeled rows" in lines[4]
    assert (
        f"champion v2 {planned.champion_score:.4f}, target v1 {planned.target_score:.4f}"
        in lines[5]
    )
    assert lines[6].startswith("  decision: will move champion v2 → v1: target within the margin")
    rollback.apply(scored_policy, planned, "bad predictions", RUN)
    evidence = registry.alias_history(MODEL, "champion")[-1].evidence
    assert evidence["target_score"] == planned.target_score and evidence["preflight_rows"] == 600


def test_a_target_worse_on_recent_data_is_refused_and_nothing_moves(
    scored_policy, mlflow_store: str, tmp_path: Path
) -> None:
    promote_history(tmp_path, first_inverted=True)
    with pytest.raises(rollback.RollbackRefused) as refused:
        rollback.plan(scored_policy, None, False, RUN, AS_OF)
    message = str(refused.value)
    assert "current champion: v2" in message and "target: v1" in message
    assert "refused: the target scores worse than the champion on recent data" in message
    assert re.search(r"roc_auc target 0\.\d{4} vs champion 0\.\d{4}", message)
    assert "Set force=true" in message
    assert champion() == 2
    assert len(registry.alias_history(MODEL, "champion")) == 2

    forced = rollback.plan(scored_policy, None, True, RUN, AS_OF)
    assert forced.target_score < 0.5 < forced.champion_score
    assert "forced although the target is worse" in forced.plan
    rollback.apply(scored_policy, forced, "on-call: forced", RUN)
    assert champion() == 1


def write_log(
    url: str,
    frame: pd.DataFrame,
    *,
    labeled: int,
    unlabeled: int = 0,
    without_features: int = 0,
    shadow: bool = False,
) -> None:
    """The gateway's log of the newest rows of `frame` answered by the champion: `labeled` of
    them with their label, then `unlabeled` without one and `without_features` whose features
    were not logged (labeled); with `shadow`, each labeled row also answered by a shadow."""
    from gateway.predlog import create_engine, ensure_tables, log_tables

    engine, tables = create_engine(url), log_tables()
    ensure_tables(engine, tables)
    newest = frame.tail(labeled + unlabeled + without_features).reset_index(drop=True)
    rows, labels = [], []
    for index, row in newest.iterrows():
        kind = (
            "labeled"
            if index < labeled
            else "unlabeled"
            if index < labeled + unlabeled
            else "without_features"
        )
        logged = {
            "request_id": f"r{index}",
            "row_index": 0,
            "model_name": MODEL,
            "version": 2,
            "role": "champion",
            "features": {} if kind == "without_features" else {"x": float(row["x"])},
            "prediction": 0.5,
            "latency_ms": 1.0,
            "created_at": row["created_at"].to_pydatetime(),
        }
        rows.append(logged)
        if shadow and kind == "labeled":
            rows.append({**logged, "role": "shadow", "version": 3})
        if kind != "unlabeled":
            labels.append(
                {
                    "model_name": MODEL,
                    "request_id": f"r{index}",
                    "row_index": 0,
                    "label": float(row["target"]),
                    "labeled_at": row["created_at"].to_pydatetime(),
                }
            )
    with engine.begin() as connection:
        connection.execute(tables.predictions.insert(), rows)
        connection.execute(tables.labels.insert(), labels)
    engine.dispose()


@pytest.fixture
def log_settings(tmp_path: Path) -> rollback.RollbackSettings:
    return rollback.RollbackSettings(log_url=f"sqlite:///{tmp_path / 'predictions.db'}")


def test_the_plan_scores_the_prediction_logs_newest_labeled_requests(
    scored_policy, log_settings, mlflow_store: str, tmp_path: Path
) -> None:
    promote_history(tmp_path, first_inverted=True)
    write_log(str(log_settings.log_url), recent_rows(), labeled=300)
    with pytest.raises(rollback.RollbackRefused) as refused:
        rollback.plan(scored_policy, None, False, RUN, AS_OF, log_settings)
    assert (
        "  recent data: prediction log, 300 labeled rows logged "
        "[2026-03-07T06:00:00, 2026-03-13T11:30:00] (the newest answered rows with every feature)"
    ) in str(refused.value).splitlines()
    forced = rollback.plan(scored_policy, None, True, RUN, AS_OF, log_settings)
    assert (forced.data, forced.rows) == ("prediction log", 300)
    assert forced.target_score < 0.5 < forced.champion_score


def test_unlabeled_shadow_and_featureless_log_rows_are_not_scored(
    scored_policy, log_settings, mlflow_store: str, tmp_path: Path
) -> None:
    promote_history(tmp_path, first_inverted=False)
    write_log(
        str(log_settings.log_url),
        recent_rows(),
        labeled=250,
        unlabeled=100,
        without_features=50,
        shadow=True,
    )
    planned = rollback.plan(scored_policy, None, False, RUN, AS_OF, log_settings)
    assert (planned.data, planned.rows) == ("prediction log", 250)
    rollback.apply(scored_policy, planned, "bad predictions", RUN)
    assert registry.alias_history(MODEL, "champion")[-1].evidence["preflight_data"] == (
        "prediction log"
    )


def test_too_few_labeled_log_rows_fall_back_to_the_source_window_and_say_why(
    scored_policy, log_settings, mlflow_store: str, tmp_path: Path
) -> None:
    promote_history(tmp_path, first_inverted=False)
    write_log(str(log_settings.log_url), recent_rows(), labeled=150, unlabeled=100)
    planned = rollback.plan(scored_policy, None, False, RUN, AS_OF, log_settings)
    assert (planned.data, planned.rows) == ("source window", 600)
    assert (
        "source window [2026-02-28T00:00:00, 2026-03-14T00:00:00), 600 labeled rows (not the "
        "prediction log: the prediction log holds 150 labeled rows with every feature, fewer "
        "than rollback.min_rows=200)"
    ) in planned.plan


def test_a_feature_the_log_hashes_makes_the_log_unusable_and_the_plan_says_so(
    log_settings, mlflow_store: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'source.db'}"
    write_source(url, recent_rows())
    policy = load_policy(
        write_policy(
            tmp_path,
            MODEL,
            source__url=url,
            source__conn_id=None,
            source__features={"numeric": ["x"], "categorical": []},
            promotion__slices=[],
            prediction_log={"hashed_features": ["x"]},
        )
    )
    promote_history(tmp_path, first_inverted=False)
    write_log(str(log_settings.log_url), recent_rows(), labeled=300)
    planned = rollback.plan(policy, None, False, RUN, AS_OF, log_settings)
    assert planned.data == "source window"
    assert "not the prediction log: the prediction log masks features the models read (x;" in (
        planned.plan
    )


def test_an_unreadable_log_falls_back_to_the_source_window(
    scored_policy, mlflow_store: str, tmp_path: Path
) -> None:
    promote_history(tmp_path, first_inverted=False)
    empty = rollback.RollbackSettings(log_url=f"sqlite:///{tmp_path / 'no-tables.db'}")
    planned = rollback.plan(scored_policy, None, False, RUN, AS_OF, empty)
    assert (planned.data, planned.rows) == ("source window", 600)
    assert "not the prediction log: the prediction log cannot be read: OperationalError" in (
        planned.plan
    )


def test_the_plan_is_announced_before_a_refusal(
    scored_policy, mlflow_store: str, tmp_path: Path
) -> None:
    promote_history(tmp_path, first_inverted=True)
    announced: list[str] = []
    with pytest.raises(rollback.RollbackRefused) as refused:
        rollback.plan(scored_policy, None, False, RUN, AS_OF, announce=announced.append)
    assert announced == [str(refused.value)]


def test_a_rollback_rewrites_the_champion_summary_the_form_shows(
    policy, versions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workflow.champion_summary import read_summary

    monkeypatch.setenv("PROMOTION_CHAMPIONS_DIR", str(tmp_path / "champions"))
    rollback.apply(policy, rollback.plan(policy, None, False), "bad predictions", RUN)
    summary = read_summary(tmp_path / "champions", MODEL)
    assert (summary.champion, summary.target) == (1, None)
    assert "every former champion (v2) was rolled back from" in summary.target_reason


def test_settings_come_from_the_gateways_variables() -> None:
    settings = rollback.RollbackSettings.from_environment(
        {"GATEWAY_LOG_URL": "sqlite:///log.db", "GATEWAY_LOG_SCHEMA": ""}
    )
    assert settings == rollback.RollbackSettings("sqlite:///log.db", None)
    assert rollback.RollbackSettings.from_environment({}).log_url is None
