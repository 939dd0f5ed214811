from __future__ import annotations

from pathlib import Path

import pytest

from policies import PolicyError, load_policies, load_policy, load_valid_policies
from tests.support import write_policy


def test_shipped_demo_policy_is_valid() -> None:
    policies = load_policies()
    assert [policy.model_name for policy in policies] == ["user_churn"]
    assert policies[0].source.features.categorical == ["plan", "region"]


def test_misspelled_field_names_file_and_field(tmp_path: Path) -> None:
    path = write_policy(tmp_path, "churn", promotion__min_improvment=0.01)
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    message = str(raised.value)
    assert str(path) in message
    assert "promotion.min_improvment: unknown field" in message


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path,
        "churn",
        promotion__min_improvement=-1,
        model__flavor="xgboost",
        source__holdout_days=0,
    )
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    fields = [problem.split(":")[0] for problem in raised.value.problems]
    assert fields == ["source.holdout_days", "model.flavor", "promotion.min_improvement"]


def test_source_needs_exactly_one_location(tmp_path: Path) -> None:
    path = write_policy(tmp_path, "churn", source__url="sqlite:///x.db")
    with pytest.raises(PolicyError, match="exactly one of 'url' or 'conn_id'"):
        load_policy(path)


def test_model_name_must_match_file_name(tmp_path: Path) -> None:
    path = write_policy(tmp_path, "churn")
    path.rename(tmp_path / "other.yaml")
    with pytest.raises(PolicyError, match="must match the file name 'other'"):
        load_policy(tmp_path / "other.yaml")


def test_feature_listed_as_target_is_refused(tmp_path: Path) -> None:
    path = write_policy(tmp_path, "churn", source__target="plan")
    with pytest.raises(PolicyError, match="cannot also be features"):
        load_policy(path)


def test_invalid_yaml_is_reported_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("model_name: [unclosed\n")
    with pytest.raises(PolicyError, match=r"broken\.yaml: not valid YAML"):
        load_policy(path)


def test_valid_policies_survive_a_broken_neighbour(tmp_path: Path) -> None:
    write_policy(tmp_path, "good")
    write_policy(tmp_path, "bad", model__flavor="xgboost")
    policies, errors = load_valid_policies(tmp_path)
    assert [policy.model_name for policy in policies] == ["good"]
    assert len(errors) == 1 and "bad.yaml: model.flavor" in str(errors[0])
    with pytest.raises(PolicyError, match="bad.yaml"):
        load_policies(tmp_path)


def test_a_policy_file_ending_in_yml_is_reported_not_skipped(tmp_path: Path) -> None:
    write_policy(tmp_path, "good")
    write_policy(tmp_path, "churn").rename(tmp_path / "churn.yml")
    policies, [error] = load_valid_policies(tmp_path)
    assert [policy.model_name for policy in policies] == ["good"]
    assert (
        str(error) == f"{tmp_path / 'churn.yml'}: policy files end in .yaml; rename it to be read"
    )


def test_a_directory_that_does_not_exist_is_an_error_not_zero_policies(tmp_path: Path) -> None:
    policies, [error] = load_valid_policies(tmp_path / "polices")
    assert policies == []
    assert str(error) == f"{tmp_path / 'polices'}: no such directory of policy files"
