from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from demo.source_data import write_source
from policies import load_policy
from policies.loader import POLICIES_DIR
from workflow.sources import (
    SourceError,
    SourceUnavailable,
    Window,
    read_window,
    resolve_url,
    windows_for,
)

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


# The same four instants around the bounds of BOUNDS, spelled as SQL sources store them: one
# second before the start, exactly the start, one second before the end, exactly the end.
BOUNDS = Window(datetime(2026, 1, 1), datetime(2026, 1, 2))
SPELLINGS = {
    "no fraction": ["2025-12-31 23:59:59", "2026-01-01 00:00:00", "2026-01-01 23:59:59",
                    "2026-01-02 00:00:00"],
    "microseconds": ["2025-12-31 23:59:59.000000", "2026-01-01 00:00:00.000000",
                     "2026-01-01 23:59:59.000000", "2026-01-02 00:00:00.000000"],
    "T and Z": ["2025-12-31T23:59:59Z", "2026-01-01T00:00:00Z", "2026-01-01T23:59:59Z",
                "2026-01-02T00:00:00Z"],
    "east of UTC": ["2026-01-01 01:59:59+02:00", "2026-01-01 02:00:00+02:00",
                    "2026-01-02 01:59:59+02:00", "2026-01-02 02:00:00+02:00"],
    "west of UTC": ["2025-12-31 18:59:59-05:00", "2025-12-31 19:00:00-05:00",
                    "2026-01-01 18:59:59-05:00", "2026-01-01 19:00:00-05:00"],
}  # fmt: skip
INSIDE = [pd.Timestamp("2026-01-01 00:00:00"), pd.Timestamp("2026-01-01 23:59:59")]


def write_times(url: str, times: list[str], time_type: str = "TIMESTAMP") -> None:
    """A user_features table whose time column holds `times` exactly as given."""
    import sqlalchemy as sa

    columns = ", ".join(f"{name} REAL" for name in POLICY.source.features.numeric)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE IF EXISTS user_features"))
        connection.execute(
            sa.text(
                f"CREATE TABLE user_features (created_at {time_type}, {columns}, "
                "plan TEXT, region TEXT, target INTEGER)"
            )
        )
        for index, moment in enumerate(times):
            connection.execute(
                sa.text(
                    "INSERT INTO user_features VALUES (:t, :i, 1.0, 1.0, 0.0, 'free', 'eu', 0)"
                ),
                {"t": moment, "i": float(index)},
            )
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'times.db'}"


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_text_timestamps_are_cut_exactly_at_the_utc_bounds(database: str, spelling: str) -> None:
    write_times(database, SPELLINGS[spelling], "TEXT")
    frame = read_window(database, POLICY.source, BOUNDS)
    assert frame["created_at"].tolist() == INSIDE


@pytest.mark.parametrize("spelling", ["no fraction", "east of UTC"])
def test_a_query_source_is_cut_like_a_table(database: str, spelling: str) -> None:
    write_times(database, SPELLINGS[spelling], "TEXT")
    source = POLICY.source.model_copy(
        update={"table": None, "query": "SELECT * FROM user_features"}
    )
    assert read_window(database, source, BOUNDS)["created_at"].tolist() == INSIDE


def test_sqlite_timestamps_without_fractions_keep_the_start_and_drop_the_end(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'times.db'}"
    write_times(url, SPELLINGS["no fraction"], "TIMESTAMP")
    assert read_window(url, POLICY.source, BOUNDS)["sessions_7d"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize("time_type", ["TIMESTAMP", "TIMESTAMP WITH TIME ZONE"])
def test_postgresql_timestamps_are_cut_in_utc_whatever_the_session_time_zone(
    postgres_url: str, time_type: str
) -> None:
    import sqlalchemy as sa

    database = sa.make_url(postgres_url).database
    engine = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f"ALTER DATABASE \"{database}\" SET timezone TO 'Asia/Tokyo'"))
    engine.dispose()
    write_times(postgres_url, SPELLINGS["T and Z"], time_type)
    assert read_window(postgres_url, POLICY.source, BOUNDS)["created_at"].tolist() == INSIDE


def test_timestamps_that_are_not_iso_text_are_refused_not_skipped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'times.db'}"
    write_times(url, ["1767225600", "2026-01-01 00:00:00"], "INTEGER")
    with pytest.raises(SourceError, match="'created_at' holds 1767225600, not an ISO-8601"):
        read_window(url, POLICY.source, BOUNDS)


def test_a_misspelt_sqlite_path_is_missing_and_creates_no_file(tmp_path: Path) -> None:
    misspelt = tmp_path / "sourse.db"
    source = POLICY.source.model_copy(update={"conn_id": None, "url": f"sqlite:///{misspelt}"})
    with pytest.raises(SourceError) as raised:
        read_window(f"sqlite:///{misspelt}", source, BOUNDS)
    assert str(raised.value) == (
        f"source.url (sqlite:///{misspelt}): SQLite database file {misspelt} does not exist"
    )
    assert not misspelt.exists()


def test_a_file_that_is_not_a_database_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("not a database" * 100)
    with pytest.raises(
        SourceError, match="source.conn_id 'user_features_db'.*file is not a database"
    ):
        read_window(f"sqlite:///{path}", POLICY.source, BOUNDS)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("features.db", r"\(features.db\): not a database URL"),
        ("postgresql://reader:s3cret@db/features?x=%", r"\*\*\*"),
        ("sqlit:///features.db", "unknown database type 'sqlit'"),
    ],
)
def test_a_url_that_cannot_be_used_is_named_with_its_password_masked(
    url: str, message: str
) -> None:
    with pytest.raises(SourceError, match=message) as raised:
        read_window(url, POLICY.source, BOUNDS)
    assert "s3cret" not in str(raised.value)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("SELEC * FROM user_features", "syntax error"),
        ("SELECT * FROM user_featurez", "no such table: user_featurez"),
        ("SELECT created_at, target FROM user_features", "no such column"),
    ],
)
def test_a_failing_query_is_bad_input_naming_the_query(
    sqlite_source: str, query: str, reason: str
) -> None:
    source = POLICY.source.model_copy(update={"table": None, "query": query})
    with pytest.raises(SourceError, match=f"source.query fails: .*{reason}"):
        read_window(sqlite_source, source, BOUNDS)


def test_a_query_may_end_with_a_semicolon(sqlite_source: str) -> None:
    source = POLICY.source.model_copy(
        update={"table": None, "query": "SELECT * FROM user_features;\n"}
    )
    assert len(read_window(sqlite_source, source, BOUNDS)) == 2


def test_a_postgresql_database_that_does_not_exist_is_bad_input(postgres_url: str) -> None:
    import sqlalchemy as sa

    missing = sa.make_url(postgres_url).set(database="no_such_features").render_as_string(False)
    with pytest.raises(SourceError, match='cannot connect: .*database "no_such_features" does not'):
        read_window(missing, POLICY.source, BOUNDS)


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    from workflow import sources

    monkeypatch.setattr(sources._read_retrying.retry, "sleep", lambda seconds: None)


def test_a_refused_connection_may_pass_so_it_is_unavailable_not_bad_input(no_backoff) -> None:
    with pytest.raises(SourceUnavailable, match="127.0.0.1:9.*retrying may help.*refused"):
        read_window("postgresql://reader@127.0.0.1:9/features", POLICY.source, BOUNDS)


def test_a_connection_dropped_mid_read_is_read_again(postgres_url: str, no_backoff) -> None:
    import sqlalchemy as sa

    write_times(postgres_url, SPELLINGS["no fraction"], "TIMESTAMP")
    engine = sa.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE SEQUENCE reads"))
    # The first read kills its own connection, as a database restart would; the next one passes.
    query = (
        "WITH gate AS MATERIALIZED (SELECT CASE WHEN nextval('reads') = 1 "
        "THEN pg_terminate_backend(pg_backend_pid()) ELSE true END AS open) "
        "SELECT u.* FROM user_features u, gate WHERE gate.open"
    )
    source = POLICY.source.model_copy(update={"table": None, "query": query})
    assert read_window(postgres_url, source, BOUNDS)["created_at"].tolist() == INSIDE
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT last_value FROM reads")).scalar() == 2
    engine.dispose()
