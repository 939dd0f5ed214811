from __future__ import annotations

import pytest

from gateway.arms import Change, canary_share, changes, next_attempt


def test_changes_lists_only_roles_whose_alias_moved() -> None:
    loaded = {"champion": 1, "canary": 2, "shadow": None}
    assert changes(loaded, {"champion": 1, "shadow": 4}) == [
        Change("canary", 2, None),
        Change("shadow", None, 4),
    ]


@pytest.mark.parametrize(
    ("tag", "share", "noted"),
    [(None, 0.1, False), ("0.25", 0.25, False), ("1.5", 0.1, True), ("half", 0.1, True)],
)
def test_the_canary_tag_overrides_the_config_when_it_is_a_share(tag, share, noted) -> None:
    got, note = canary_share(0.1, tag)
    assert got == share and (note is not None) is noted


def test_a_failing_version_is_retried_less_and_less_often() -> None:
    assert [next_attempt(n, 100.0, 5.0, cap_s=30) - 100 for n in (1, 2, 3, 4)] == [5, 10, 20, 30]
