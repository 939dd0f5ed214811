"""The workers' refresh counters in the log's database, and the poller that follows them."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from gateway.predlog import LogTables, create_engine, ensure_tables, log_tables
from gateway.siblings import SiblingRefreshes, announce_refresh, moved, refresh_generations


@pytest.fixture
def log(tmp_path) -> tuple[sa.Engine, LogTables]:
    engine = create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    tables = log_tables()
    ensure_tables(engine, tables)
    return engine, tables


class Recorder:
    """A follower's `request_refresh`: the models asked for, and an event at the first."""

    def __init__(self) -> None:
        self.refreshed: list[str] = []
        self.seen = threading.Event()

    def __call__(self, name: str) -> None:
        self.refreshed.append(name)
        self.seen.set()


def test_each_announcement_raises_the_models_counter_and_returns_it(log) -> None:
    engine, tables = log
    assert announce_refresh(engine, tables, ["a"]) == {"a": 1}
    assert announce_refresh(engine, tables, ["a", "b", "a"]) == {"a": 2, "b": 1}
    assert refresh_generations(engine, tables) == {"a": 2, "b": 1}


def test_only_served_models_whose_counter_moved_are_refreshed() -> None:
    assert moved({"a": 1, "b": 1}, {"a": 2, "b": 1, "c": 1}, ["a", "b"]) == ["a"]
    assert moved({}, {"a": 1}, ["a"]) == ["a"]
    assert moved({"a": 1}, {}, ["a"]) == []


def test_a_model_this_worker_announced_is_not_refreshed_again_but_a_later_one_is() -> None:
    assert moved({"a": 1}, {"a": 2}, ["a"], announced={"a": 2}) == []
    assert moved({"a": 1}, {"a": 3}, ["a"], announced={"a": 2}) == ["a"]


def test_a_poller_refreshes_what_another_worker_announced(log) -> None:
    engine, tables = log
    announce_refresh(engine, tables, ["a"])  # before this worker started: nothing to do
    recorder = Recorder()
    poller = SiblingRefreshes(engine, tables, ["a", "b"], recorder, poll_interval_s=0.01)
    poller.start()
    try:
        announce_refresh(engine, tables, ["b", "not-served"])
        assert recorder.seen.wait(5)
    finally:
        poller.stop()
    assert recorder.refreshed == ["b"]


def test_the_announcing_workers_poller_leaves_its_own_refresh_alone(log) -> None:
    engine, tables = log
    recorder = Recorder()
    poller = SiblingRefreshes(engine, tables, ["a", "b"], recorder, poll_interval_s=0.01)
    poller.start()
    try:
        poller.announce(["a"])  # this worker refreshed `a` itself: a webhook reached it
        announce_refresh(engine, tables, ["b"])  # another worker's
        assert recorder.seen.wait(5)
        time.sleep(0.1)  # several more polls
    finally:
        poller.stop()
    assert recorder.refreshed == ["b"]
