"""Reproducing a version: retrained from its lineage on the same source, it has the registered
dataset digest and predictions; a changed source row is found."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

import pytest

import registry
from demo.source_data import generate_user_features, write_source
from policies.loader import load_policy
from tests.support import write_policy
from workflow import reproduce, train
from workflow.runs import RunContext

MODEL = "churn"
RUN = RunContext(dag_id="train_churn", run_id="manual__1")
AS_OF = datetime(2026, 3, 15)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "source.db"
    write_source(f"sqlite:///{path}", generate_user_features(days=90, rows_per_day=40))
    return path


@pytest.fixture
def policies(tmp_path: Path, source: Path) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    write_policy(
        folder,
        MODEL,
        source__conn_id=None,
        source__url=f"sqlite:///{source}",
        model__hyperparameters={"n_estimators": 30, "num_leaves": 7},
    )
    return folder


@pytest.fixture
def version(policies: Path, mlflow_store: str, tmp_path: Path) -> int:
    """A version trained and registered by train_<model>'s own task bodies."""
    policy = load_policy(policies / f"{MODEL}.yaml")
    window = train.extract(policy, AS_OF, (tmp_path / "work").as_uri(), RUN)
    window = train.validate(policy, window, RUN)
    return train.train_and_register(policy, window, RUN).version


def test_a_version_retrained_from_its_lineage_has_its_digest_and_predictions(
    policies: Path, version: int
) -> None:
    result = reproduce.reproduce(reproduce.find_policy(MODEL, str(policies)), version)
    assert result.digest == registry.get_version(MODEL, version).tags["lineage.dataset_digest"]
    assert result.holdout_rows > 0
    assert result.max_difference <= reproduce.PREDICTION_TOLERANCE
    assert result.reproduced
    assert reproduce.main([MODEL, str(version), "--policies", str(policies)]) == 0


def test_a_changed_source_row_in_the_window_is_found(
    policies: Path, version: int, source: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(source) as db:
        db.execute(
            "UPDATE user_features SET sessions_7d = sessions_7d + 5 WHERE rowid = "
            "(SELECT rowid FROM user_features WHERE created_at >= '2026-01-10' LIMIT 1)"
        )
    assert reproduce.main([MODEL, str(version), "--policies", str(policies)]) == 1
    printed = capsys.readouterr().out
    assert f"{MODEL} v{version}: NOT reproduced" in printed
    assert "DIFFERENT (the source rows of the window changed)" in printed


def test_a_version_without_lineage_cannot_be_reproduced(
    policies: Path, mlflow_store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.registry.support import save_loadable_model

    registry.ensure_registered_model(MODEL)
    registry.register_version(
        MODEL, str(save_loadable_model(tmp_path / "m")), run_id=None, tags={}, description=""
    )
    assert reproduce.main([MODEL, "1", "--policies", str(policies)]) == 2
    assert "no lineage to retrain from: lineage.window_start" in capsys.readouterr().err
