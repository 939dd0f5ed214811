from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.routing import bucket, choose_role


def test_canary_answers_its_share_of_keys_within_two_points() -> None:
    roles = [choose_role("churn", f"user-{i}", 0.2, canary_loaded=True) for i in range(10_000)]
    assert abs(roles.count("canary") / len(roles) - 0.2) < 0.02


@given(key=st.text(), share=st.floats(0, 1))
def test_a_key_always_gets_the_same_role(key: str, share: float) -> None:
    first = choose_role("churn", key, share, canary_loaded=True)
    assert all(choose_role("churn", key, share, canary_loaded=True) == first for _ in range(3))


@given(key=st.text(), low=st.floats(0, 1), high=st.floats(0, 1))
def test_raising_the_share_never_moves_a_key_back_to_the_champion(
    key: str, low: float, high: float
) -> None:
    low, high = sorted((low, high))
    if choose_role("churn", key, low, canary_loaded=True) == "canary":
        assert choose_role("churn", key, high, canary_loaded=True) == "canary"


def test_without_a_loaded_canary_every_request_goes_to_the_champion() -> None:
    assert {choose_role("churn", str(i), 1.0, canary_loaded=False) for i in range(100)} == {
        "champion"
    }


def test_zero_share_sends_nobody_to_the_canary() -> None:
    assert {choose_role("churn", str(i), 0.0, canary_loaded=True) for i in range(100)} == {
        "champion"
    }


def test_a_key_is_placed_independently_per_model() -> None:
    in_both = sum(
        bucket("churn", f"u{i}") < 0.1 and bucket("fraud", f"u{i}") < 0.1 for i in range(10_000)
    )
    # Independent placement puts about 1% of keys in both canaries, not the 10% of a shared hash.
    assert in_both < 200
