from __future__ import annotations

import threading

from gateway.config import ServedModel
from gateway.holder import KEEP_RECENT_VERSIONS, AliasFollower
from tests.gateway.fakes import ConstantModel, FakeSource, wait_until


def _follower(source: FakeSource, share: float = 0.0) -> AliasFollower:
    return AliasFollower(
        [ServedModel(name="churn", canary_share=share)], source, refresh_interval_s=60
    )


def _source(*versions: int) -> FakeSource:
    source = FakeSource()
    for version in versions:
        source.add("churn", version, ConstantModel(version / 10))
    return source


def test_an_alias_move_is_served_after_the_next_refresh() -> None:
    source = _source(1, 2)
    follower = _follower(source)
    source.aliases_by_model["churn"] = {"champion": 1}
    follower.refresh("churn")
    source.aliases_by_model["churn"] = {"champion": 2}
    assert follower.refresh("churn").version_of("champion") == 2


def test_the_old_version_answers_while_the_new_one_loads() -> None:
    source = _source(1, 2)
    follower = _follower(source)
    source.aliases_by_model["churn"] = {"champion": 1}
    follower.refresh("churn")
    source.aliases_by_model["churn"] = {"champion": 2}
    source.gate = threading.Event()
    loading = threading.Thread(target=follower.refresh, args=("churn",))
    loading.start()
    try:
        assert follower.arms("churn").version_of("champion") == 1
    finally:
        source.gate.set()
        loading.join()
    assert follower.arms("churn").version_of("champion") == 2


def test_a_version_that_fails_to_load_leaves_the_serving_one_in_place() -> None:
    source = _source(1, 2)
    source.broken.add(("churn", 2))
    follower = _follower(source)
    source.aliases_by_model["churn"] = {"champion": 1}
    follower.refresh("churn")
    source.aliases_by_model["churn"] = {"champion": 2}
    assert follower.refresh("churn").version_of("champion") == 1
    assert "artifact of version 2 is missing" in follower.state("churn").load_errors[2]


def test_a_version_that_cannot_score_its_example_is_not_switched_to() -> None:
    source = _source(1)
    source.add("churn", 2, ConstantModel(0.5, fail_on_x=0.5))
    follower = _follower(source)
    source.aliases_by_model["churn"] = {"champion": 1}
    follower.refresh("churn")
    source.aliases_by_model["churn"] = {"champion": 2}
    assert follower.refresh("churn").version_of("champion") == 1


def test_a_broken_version_is_not_reloaded_on_every_poll() -> None:
    source = _source(1)
    source.broken.add(("churn", 2))
    follower = _follower(source)
    source.aliases_by_model["churn"] = {"champion": 1, "canary": 2}
    for _ in range(3):
        follower.refresh("churn")
    assert source.loads.count(("churn", 2)) == 1


def test_rollback_to_a_recent_version_switches_without_reloading() -> None:
    source = _source(1, 2)
    follower = _follower(source)
    for champion in (1, 2, 1):
        source.aliases_by_model["churn"] = {"champion": champion}
        follower.refresh("churn")
    assert follower.arms("churn").version_of("champion") == 1
    assert source.loads == [("churn", 1), ("churn", 2)]


def test_only_a_few_idle_versions_stay_loaded() -> None:
    versions = range(1, KEEP_RECENT_VERSIONS + 4)
    source = _source(*versions)
    follower = _follower(source)
    for version in versions:
        source.aliases_by_model["churn"] = {"champion": version}
        follower.refresh("churn")
    source.aliases_by_model["churn"] = {"champion": 1}
    follower.refresh("churn")
    assert source.loads.count(("churn", 1)) == 2


def test_removing_the_canary_alias_stops_the_canary() -> None:
    source = _source(1, 2)
    follower = _follower(source, share=0.5)
    source.aliases_by_model["churn"] = {"champion": 1, "canary": 2}
    assert follower.refresh("churn").version_of("canary") == 2
    source.aliases_by_model["churn"] = {"champion": 1}
    assert follower.refresh("churn").canary is None


def test_the_canary_share_follows_the_canary_versions_tag() -> None:
    source = _source(1, 2)
    follower = _follower(source, share=0.1)
    source.aliases_by_model["churn"] = {"champion": 1, "canary": 2}
    assert follower.refresh("churn").canary_share == 0.1
    source.tags[("churn", 2)] = {"rollout.canary_share": "0.4"}
    assert follower.refresh("churn").canary_share == 0.4


def test_a_registry_outage_keeps_serving_and_is_reported() -> None:
    source = _source(1)
    follower = _follower(source)
    source.aliases_by_model["churn"] = {"champion": 1}
    follower.refresh("churn")

    def down(model_name: str) -> dict[str, int]:
        raise ConnectionError("registry unreachable")

    source.aliases = down
    assert follower.refresh("churn").version_of("champion") == 1
    assert "registry unreachable" in follower.state("churn").registry_error


def test_a_requested_refresh_happens_before_the_next_poll() -> None:
    source = _source(1, 2)
    follower = _follower(source)
    source.aliases_by_model["churn"] = {"champion": 1}
    follower.start()
    try:
        wait_until(lambda: follower.arms("churn").version_of("champion") == 1)
        source.aliases_by_model["churn"] = {"champion": 2}
        follower.request_refresh("churn")
        wait_until(lambda: follower.arms("churn").version_of("champion") == 2)
    finally:
        follower.stop()
