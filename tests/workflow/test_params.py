"""DAG params: a value that cannot be used fails the run by name, before anything is read."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

import registry
from tests.registry.support import save_loadable_model
from workflow.params import ParamError, parse_as_of, require_version

FALLBACK = datetime(2026, 3, 1)


@pytest.mark.parametrize("value", ["2026-13-01", "yesterday", "15/03/2026", "2026-03-15T25:00"])
def test_an_unparseable_as_of_names_the_param_and_the_value(value: str) -> None:
    with pytest.raises(ParamError, match=f"DAG param as_of: '{value}' is not an ISO date"):
        parse_as_of(value, FALLBACK)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-15", datetime(2026, 3, 15)),
        (" 2026-03-15 ", datetime(2026, 3, 15)),
        ("2026-03-15T10:00:00+02:00", datetime(2026, 3, 15, 8)),
        ("2026-03-15T10:00:00Z", datetime(2026, 3, 15, 10)),
        (None, FALLBACK),
        ("", FALLBACK),
    ],
)
def test_as_of_is_naive_utc_and_defaults_to_the_run_date(
    value: str | None, expected: datetime
) -> None:
    assert parse_as_of(value, FALLBACK) == expected


@pytest.fixture
def one_version(mlflow_store: str, tmp_path: Path) -> int:
    registry.ensure_registered_model("churn")
    model = save_loadable_model(tmp_path / "model")
    return registry.register_version(
        "churn", str(model), run_id=None, tags={}, description=""
    ).version


@pytest.mark.parametrize("version", [0, -1])
def test_versions_are_numbered_from_one(version: int) -> None:
    with pytest.raises(
        ParamError, match=f"DAG param version: versions are numbered from 1, got {version}"
    ):
        require_version("churn", version)


def test_only_a_registered_version_passes(one_version: int) -> None:
    assert require_version("churn", one_version).version == one_version
    with pytest.raises(
        ParamError, match="DAG param version: churn has no version 2 in the registry"
    ):
        require_version("churn", 2)


def test_a_model_never_registered_has_no_version(mlflow_store: str) -> None:
    with pytest.raises(ParamError, match="churn has no version 1 in the registry"):
        require_version("churn", 1)
