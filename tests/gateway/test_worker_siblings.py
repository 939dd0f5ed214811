"""The workers' refresh counters in the log's database, and the poller that follows them."""

from __future__ import annotations

import threading

from gateway.predlog import create_engine, ensure_tables, log_tables
from gateway.siblings import SiblingRefreshes, announce_refresh, moved, refresh_generations


def test_each_announcement_raises_the_models_counter(tmp_path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    tables = log_tables()
    ensure_tables(engine, tables)
    announce_refresh(engine, tables, ["a"])
    announce_refresh(engine, tables, ["a", "b", "a"])
    assert refresh_generations(engine, tables) == {"a": 2, "b": 1}


def test_only_served_models_whose_counter_moved_are_refreshed() -> None:
    assert moved({"a": 1, "b": 1}, {"a": 2, "b": 1, "c": 1}, ["a", "b"]) == ["a"]
    assert moved({}, {"a": 1}, ["a"]) == ["a"]
    assert moved({"a": 1}, {}, ["a"]) == []


def test_a_poller_refreshes_what_another_worker_announced(tmp_path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    tables = log_tables()
    ensure_tables(engine, tables)
    announce_refresh(engine, tables, ["a"])  # before this worker started: nothing to do
    refreshed: list[str] = []
    seen = threading.Event()

    def request_refresh(name: str) -> None:
        refreshed.append(name)
        seen.set()

    poller = SiblingRefreshes(engine, tables, ["a", "b"], request_refresh, poll_interval_s=0.01)
    poller.start()
    try:
        announce_refresh(engine, tables, ["b", "not-served"])
        assert seen.wait(5)
    finally:
        poller.stop()
    assert refreshed == ["b"]
