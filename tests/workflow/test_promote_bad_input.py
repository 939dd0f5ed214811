"""promote_<model> given bad input: a `version` param naming no version, a model whose artifacts
cannot be read. Each ends at once with the reason recorded; no alias moves but the failed
challenger's own."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

import registry
from demo.source_data import generate_user_features, write_source
from policies.loader import load_policy
from tests.registry.support import save_loadable_model
from tests.support import write_policy
from workflow import promote
from workflow.params import ParamError
from workflow.runs import RunContext

MODEL = "churn"
RUN = RunContext(dag_id="promote_churn", run_id="manual__1")
NOW = datetime(2026, 3, 15)
HOLDOUT = {
    "lineage.holdout_start": "2026-03-01T00:00:00",
    "lineage.holdout_end": "2026-03-15T00:00:00",
}


@pytest.fixture
def policy(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'source.db'}"
    write_source(url, generate_user_features(days=90, rows_per_day=60))
    return load_policy(write_policy(tmp_path, MODEL, source__conn_id=None, source__url=url))


def register(source: Path, tags: dict[str, str] | None = None) -> int:
    registry.ensure_registered_model(MODEL)
    return registry.register_version(
        MODEL, str(source), run_id=None, tags=tags or {}, description=""
    ).version


@pytest.fixture
def unreadable(mlflow_store: str, tmp_path: Path) -> Path:
    """A model directory whose pickle is gone, as after a storage clean-up."""
    broken = save_loadable_model(tmp_path / "broken")
    (broken / "model.skops").unlink()
    return broken


@pytest.mark.parametrize("version", [7, 0])
def test_a_version_param_naming_no_version_fails_by_name(
    policy, unreadable: Path, version: int
) -> None:
    register(unreadable)
    with pytest.raises(ParamError, match=f"DAG param version: .*{version}"):
        promote.find_candidates(policy, version, RUN)


def test_a_challenger_whose_artifacts_cannot_be_read_is_not_evaluated_and_loses_its_alias(
    policy, unreadable: Path
) -> None:
    challenger = register(unreadable, HOLDOUT)
    registry.move_alias(MODEL, "challenger", challenger, kind="candidate", actor="t", reason="new")
    evaluation = promote.evaluate(policy, promote.find_candidates(policy, None, RUN), RUN, NOW)
    with pytest.raises(promote.CannotEvaluate, match="challenger v1's artifacts cannot be read"):
        promote.conclude_evaluation(policy, evaluation, RUN)
    tags = registry.get_version(MODEL, challenger).tags
    assert tags["promotion.verdict"] == "cannot_evaluate"
    assert "artifacts cannot be read" in tags["promotion.reason"]
    assert registry.get_alias_version(MODEL, "challenger") is None
    assert registry.get_alias_version(MODEL, "champion") is None


def test_an_unreadable_champion_stops_the_evaluation_and_keeps_the_challenger(
    policy, unreadable: Path, tmp_path: Path
) -> None:
    champion = register(unreadable)
    registry.move_alias(MODEL, "champion", champion, kind="promote", actor="t", reason="first")
    challenger = register(save_loadable_model(tmp_path / "fine"), HOLDOUT)
    registry.move_alias(MODEL, "challenger", challenger, kind="candidate", actor="t", reason="new")
    evaluation = promote.evaluate(policy, promote.find_candidates(policy, None, RUN), RUN, NOW)
    with pytest.raises(promote.CannotEvaluate, match="champion v1's artifacts cannot be read"):
        promote.conclude_evaluation(policy, evaluation, RUN)
    assert registry.get_alias_version(MODEL, "challenger") == challenger
    assert registry.get_alias_version(MODEL, "champion") == champion
