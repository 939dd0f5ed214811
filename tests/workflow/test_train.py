"""The train DAG's validation step: every window it checks is recorded, passed or failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.moves import current_ledger
from registry.validation_records import read_validations
from tests.workflow.test_validation import POLICY, window
from workflow import train
from workflow.runs import RunContext
from workflow.validation import DataValidationError

RUN = RunContext(dag_id="train_user_churn", run_id="scheduled__2026-02-01")


def _extracted(tmp_path: Path, rows: int, drop: tuple[str, ...] = ()) -> train.TrainingWindow:
    path = tmp_path / "window.parquet"
    window(rows=rows).drop(columns=list(drop)).to_parquet(path, index=False)
    return train.TrainingWindow(
        data_url=path.as_uri(),
        rows=rows,
        source="sqlite:///source.db",
        selection="user_features",
        window_start="2026-01-01T00:00:00",
        window_end="2026-02-01T00:00:00",
        holdout_start="2026-02-01T00:00:00",
        holdout_end="2026-02-08T00:00:00",
    )


def test_a_passing_window_is_recorded_as_passed(mlflow_store: str, tmp_path: Path) -> None:
    extracted = _extracted(tmp_path, rows=600)

    assert train.validate(POLICY, extracted, RUN) == extracted
    (record,) = read_validations(current_ledger().url, POLICY.model_name)
    assert (record.passed, record.failed_checks, record.rows) == (True, (), 600)
    assert (record.window_start, record.run_id) == ("2026-01-01T00:00:00", RUN.run_id)


def test_a_failing_window_raises_every_problem_and_records_each(
    mlflow_store: str, tmp_path: Path
) -> None:
    with pytest.raises(DataValidationError) as raised:
        train.validate(POLICY, _extracted(tmp_path, rows=10, drop=("region",)), RUN)

    assert str(raised.value).startswith(
        f"training window 2026-01-01T00:00:00 → 2026-02-01T00:00:00 of {POLICY.model_name} "
        "failed validation:"
    )
    (record,) = read_validations(current_ledger().url, POLICY.model_name)
    assert not record.passed
    assert record.failed_checks == (
        "missing column(s): region",
        "too few rows: 10 < validation.min_rows=500",
    )
