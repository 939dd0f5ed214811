"""Monitor checks recorded in and read back from the ledger database (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.monitor_checks import MonitorCheck, read_checks, record_check


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def check(model: str, at: str, **changes: object) -> MonitorCheck:
    fields = {
        "model_name": model,
        "checked_at": at,
        "champion_version": 3,
        "outcome": "quiet",
        "fired": (),
        "reason": "no trigger fired",
        "signals": {"data_volume": {"new_rows": 12, "threshold": 500, "since": at, "fired": False}},
        "run_id": "scheduled__2026-12-01T08:00:00+00:00",
    }
    return MonitorCheck(**{**fields, **changes})


def test_a_recorded_check_reads_back_with_its_signals(ledger: str) -> None:
    fired = check(
        "churn",
        "2026-12-01T08:00:00+00:00",
        outcome="fired",
        fired=("performance", "drift"),
        reason="accuracy 0.71 [0.68, 0.74] is below the floor 0.80",
        signals={
            "performance": {"metric": "accuracy", "value": 0.71, "lower": 0.68, "upper": 0.74},
            "drift": {"fired": True, "features": {"tenure": {"psi": 0.4, "drifted": True}}},
        },
    )
    record_check(ledger, fired)
    assert read_checks(ledger) == [
        check(
            "churn",
            "2026-12-01T08:00:00.000000+00:00",
            outcome="fired",
            fired=("performance", "drift"),
            reason=fired.reason,
            signals=fired.signals,
        )
    ]


def test_checks_read_newest_first_filtered_by_model_time_and_limit(ledger: str) -> None:
    for at in ("2026-12-01T08:00:00Z", "2026-12-01T10:00:00Z", "2026-12-01T09:00:00Z"):
        record_check(ledger, check("churn", at))
    record_check(ledger, check("fraud", "2026-12-01T11:00:00Z"))

    def hours(checks: list[MonitorCheck]) -> list[tuple[str, str]]:
        return [(c.model_name, c.checked_at[11:13]) for c in checks]

    assert hours(read_checks(ledger)) == [
        ("fraud", "11"),
        ("churn", "10"),
        ("churn", "09"),
        ("churn", "08"),
    ]
    assert hours(read_checks(ledger, "churn", since="2026-12-01T09:00:00+00:00")) == [
        ("churn", "10"),
        ("churn", "09"),
    ]
    assert hours(read_checks(ledger, "churn", limit=1)) == [("churn", "10")]


def test_times_in_other_offsets_compare_as_the_same_instant(ledger: str) -> None:
    record_check(ledger, check("churn", "2026-12-01T10:30:00+02:00"))
    assert read_checks(ledger, since="2026-12-01T08:30:00Z")[0].checked_at == (
        "2026-12-01T08:30:00.000000+00:00"
    )
    assert read_checks(ledger, since="2026-12-01T08:30:01Z") == []


def test_a_check_not_made_keeps_its_reason_and_no_champion(ledger: str) -> None:
    record_check(
        ledger,
        check(
            "churn",
            "2026-12-01T08:00:00Z",
            champion_version=None,
            outcome="not_checked",
            reason="no champion to monitor",
            signals={},
            run_id=None,
        ),
    )
    [read] = read_checks(ledger, "churn")
    assert (read.outcome, read.champion_version, read.reason, read.run_id) == (
        "not_checked",
        None,
        "no champion to monitor",
        None,
    )


def test_an_unknown_model_has_no_checks(ledger: str) -> None:
    record_check(ledger, check("churn", "2026-12-01T08:00:00Z"))
    assert read_checks(ledger, "fraud") == []


def test_an_outcome_that_contradicts_its_fired_triggers_is_refused() -> None:
    with pytest.raises(ValueError, match="must list the triggers"):
        check("churn", "2026-12-01T08:00:00Z", outcome="fired", fired=())
    with pytest.raises(ValueError, match="cannot list fired triggers"):
        check("churn", "2026-12-01T08:00:00Z", outcome="quiet", fired=("drift",))
    with pytest.raises(ValueError, match="outcome must be one of"):
        check("churn", "2026-12-01T08:00:00Z", outcome="late")
