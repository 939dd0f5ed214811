from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from demo.source_data import write_source
from policies import load_policy
from policies.loader import POLICIES_DIR
from workflow.sources import SourceError, Window, read_window, resolve_url, windows_for

POLICY = load_policy(POLICIES_DIR / "user_churn.yaml")


@pytest.fixture
def sqlite_source(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'source.db'}"
    frame = pd.DataFrame(
        {
            "created_at": pd.to_datetime(
                ["2026-01-01 00:00", "2026-01-01 23:59", "2026-01-02 00:00"]
            ),
            "sessions_7d": [1.0, 2.0, 3.0],
            "days_since_signup": [1.0, 2.0, 3.0],
            "avg_order_value": [1.0, 2.0, 3.0],
            "support_tickets": [0.0, 1.0, 0.0],
            "plan": ["free", "pro", "free"],
            "region": ["eu", "us", "eu"],
            "target": [0, 1, 0],
        }
    )
    write_source(url, frame)
    return url


def test_window_is_half_open(sqlite_source: str) -> None:
    frame = read_window(
        sqlite_source, POLICY.source, Window(datetime(2026, 1, 1), datetime(2026, 1, 2))
    )
    assert frame["sessions_7d"].tolist() == [1.0, 2.0]


def test_query_source_reads_the_same_window(sqlite_source: str) -> None:
    source = POLICY.source.model_copy(
        update={"table": None, "query": "SELECT * FROM user_features"}
    )
    frame = read_window(
        sqlite_source, source, Window(datetime(2026, 1, 1, 12), datetime(2026, 1, 3))
    )
    assert frame["sessions_7d"].tolist() == [2.0, 3.0]


def test_missing_table_is_named(sqlite_source: str) -> None:
    source = POLICY.source.model_copy(update={"table": "no_such_table"})
    with pytest.raises(SourceError, match="source.table: table 'no_such_table' does not exist"):
        read_window(sqlite_source, source, Window(datetime(2026, 1, 1), datetime(2026, 1, 2)))


def test_missing_time_column_lists_the_columns(sqlite_source: str) -> None:
    source = POLICY.source.model_copy(update={"time_column": "event_time"})
    with pytest.raises(SourceError, match="'event_time' not in the source"):
        read_window(sqlite_source, source, Window(datetime(2026, 1, 1), datetime(2026, 1, 2)))


def test_url_expands_environment_variables() -> None:
    source = POLICY.source.model_copy(update={"conn_id": None, "url": "sqlite:///${DATA}/x.db"})
    assert resolve_url(source, {"DATA": "/srv"}) == "sqlite:////srv/x.db"
    with pytest.raises(SourceError, match="unset environment variable.*DATA"):
        resolve_url(source, {})


def test_airflow_connection_becomes_a_sqlalchemy_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_USER_FEATURES_DB", "postgresql://reader:pw@db.internal:5433/features"
    )
    assert resolve_url(POLICY.source) == "postgresql://reader:pw@db.internal:5433/features"
    monkeypatch.setenv("AIRFLOW_CONN_USER_FEATURES_DB", "sqlite:////data/features.db")
    assert resolve_url(POLICY.source) == "sqlite:////data/features.db"


def test_holdout_follows_the_training_window() -> None:
    training, holdout = windows_for(datetime(2026, 3, 15), POLICY.source)
    assert holdout == Window(datetime(2026, 3, 1), datetime(2026, 3, 15))
    assert training == Window(datetime(2025, 12, 31), datetime(2026, 3, 1))
