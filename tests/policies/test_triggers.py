"""The policy's `triggers:` section: schedules, signals and their validation at load."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from policies import PolicyError, load_policy
from tests.support import write_policy


def problems(path: Path) -> list[str]:
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    assert str(path) in str(raised.value)
    return raised.value.problems


def test_a_full_triggers_section_loads_with_its_defaults(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path,
        "churn",
        training_schedule=None,
        triggers={
            "schedule": "@weekly",
            "performance": {"floor": 0.7, "max_drop": 0.03},
            "data_volume": {"min_new_rows": 5000},
            "drift": {"features": ["plan", "sessions_7d"], "source": "source"},
        },
    )
    triggers = load_policy(path).triggers
    assert (triggers.check_every, triggers.cooldown_hours, triggers.max_per_day) == (
        "@hourly",
        24,
        2,
    )
    assert (triggers.performance.min_labeled, triggers.performance.confidence) == (500, 0.95)
    assert (triggers.drift.alpha, triggers.drift.min_psi, triggers.drift.window_hours) == (
        0.05,
        0.02,
        24,
    )
    assert triggers.monitored
    assert load_policy(path).training_cron == "0 0 * * 0"


def test_an_invalid_cron_is_a_policy_error_naming_the_field(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path, "churn", triggers={"schedule": "61 * * * *", "check_every": "every hour"}
    )
    found = problems(path)
    assert [p.split(":")[0] for p in found] == ["triggers.schedule", "triggers.check_every"]
    assert "'61 * * * *' is not a cron expression" in found[0]


def test_the_deprecated_training_schedule_still_schedules_training(tmp_path: Path) -> None:
    path = write_policy(tmp_path, "churn", training_schedule="0 3 * * *")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        policy = load_policy(path)
    assert policy.training_cron == "0 3 * * *"
    assert any("triggers.schedule" in str(w.message) for w in caught)


def test_an_invalid_deprecated_training_schedule_is_a_policy_error(tmp_path: Path) -> None:
    found = problems(write_policy(tmp_path, "churn", training_schedule="@sometimes"))
    assert found[0].startswith("training_schedule: '@sometimes' is not a cron expression")


def test_both_schedules_at_once_are_refused(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path, "churn", training_schedule="@daily", triggers={"schedule": "@weekly"}
    )
    assert "keep triggers.schedule only" in problems(path)[0]


def test_no_signal_means_nothing_to_monitor(tmp_path: Path) -> None:
    policy = load_policy(write_policy(tmp_path, "churn", triggers={"schedule": "@daily"}))
    assert not policy.triggers.monitored
    assert policy.training_cron == "0 0 * * *"


def test_a_performance_trigger_needs_a_bound(tmp_path: Path) -> None:
    found = problems(write_policy(tmp_path, "churn", triggers={"performance": {"min_labeled": 9}}))
    assert found == ["triggers.performance: give a floor, a max_drop, or both"]


def test_a_floor_outside_the_metric_range_is_refused(tmp_path: Path) -> None:
    found = problems(write_policy(tmp_path, "churn", triggers={"performance": {"floor": 70}}))
    assert found == ["triggers.performance.floor: roc_auc lies in [0, 1], got 70.0"]


def test_drift_features_must_be_features(tmp_path: Path) -> None:
    path = write_policy(tmp_path, "churn", triggers={"drift": {"features": ["plan", "target"]}})
    assert (
        "triggers.drift.features: must be features of source.features, not target"
        in (problems(path)[0])
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cooldown_hours", -1),
        ("max_per_day", 0),
        ("drift", {"source": "kafka"}),
        ("drift", {"alpha": 0.9}),
        ("data_volume", {"min_new_rows": 0}),
        ("performance", {"floor": 0.7, "confidence": 1.0}),
    ],
)
def test_out_of_range_trigger_settings_name_their_field(
    tmp_path: Path, field: str, value: object
) -> None:
    found = problems(write_policy(tmp_path, "churn", triggers={field: value}))
    assert found[0].startswith(f"triggers.{field}")
