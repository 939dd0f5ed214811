"""Validation records: every validated window is kept, newest first, with its failed checks
(SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from registry.validation_records import ValidationRecord, read_validations, record_validation


def _record(at: str, *, model: str = "churn", failed: tuple[str, ...] = ()) -> ValidationRecord:
    return ValidationRecord(
        model_name=model,
        validated_at=at,
        window_start="2026-01-01T00:00:00",
        window_end="2026-02-01T00:00:00",
        rows=1200,
        passed=not failed,
        failed_checks=failed,
        run_id=f"manual__{at}",
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def test_validations_read_back_newest_first_with_their_failed_checks(ledger_url: str) -> None:
    failed = ("too few rows: 12 < validation.min_rows=500", "column 'tenure': 40.0% missing > 5.0%")
    record_validation(ledger_url, _record("2026-02-01T06:00:00+00:00"))
    record_validation(ledger_url, _record("2026-02-02T06:00:00+00:00", failed=failed))

    newest, oldest = read_validations(ledger_url)

    recorded = _record("2026-02-02T06:00:00+00:00", failed=failed)
    assert newest == replace(recorded, validated_at="2026-02-02T06:00:00.000000+00:00")
    assert oldest.passed and oldest.failed_checks == ()


def test_validations_filter_by_model_since_and_limit(ledger_url: str) -> None:
    for day in (1, 2, 3):
        record_validation(ledger_url, _record(f"2026-02-0{day}T06:00:00+00:00"))
    record_validation(ledger_url, _record("2026-02-03T07:00:00+00:00", model="fraud"))

    recent = read_validations(ledger_url, "churn", since="2026-02-02T00:00:00+00:00")
    assert [r.validated_at[:10] for r in recent] == ["2026-02-03", "2026-02-02"]
    assert [r.model_name for r in read_validations(ledger_url, limit=1)] == ["fraud"]


def test_since_in_another_offset_keeps_a_validation_exactly_at_the_bound(ledger_url: str) -> None:
    record_validation(ledger_url, _record("2026-02-02T06:00:00"))
    record_validation(ledger_url, _record("2026-02-02T05:59:59.999999+00:00"))

    recent = read_validations(ledger_url, "churn", since="2026-02-02T07:00:00+01:00")

    assert [r.validated_at for r in recent] == ["2026-02-02T06:00:00.000000+00:00"]


def test_a_ledger_without_validations_reads_empty(ledger_url: str) -> None:
    assert read_validations(ledger_url, "churn") == []


def test_a_failed_validation_must_say_which_checks_failed() -> None:
    with pytest.raises(ValueError, match="failed must list its failed checks"):
        ValidationRecord("churn", "2026-02-01T00:00:00+00:00", "a", "b", 0, False, ())
