from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from approval.reference import ButtonRef, MalformedReference

models = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_]{0,62}\Z")
versions = st.integers(min_value=1, max_value=9_999_999_999)
request_ids = st.from_regex(r"\A[0-9a-f]{32}\Z")


@given(models, versions, request_ids)
def test_a_reference_survives_the_round_trip_through_a_button(
    model: str, version: int, request_id: str
) -> None:
    ref = ButtonRef(model, version, request_id)
    value = ref.encode()
    assert len(value) <= 2000  # Slack's limit on a button value
    assert ButtonRef.decode(value) == ref


@given(st.text(max_size=120))
def test_arbitrary_text_is_refused_or_decodes_to_exactly_itself(value: str) -> None:
    try:
        ref = ButtonRef.decode(value)
    except MalformedReference:
        return
    assert ref.encode() == value


@pytest.mark.parametrize(
    "value",
    [
        "apr1:user_churn:7:" + "a" * 31,
        "apr1:user_churn:07:" + "a" * 32,
        "apr1:user churn:7:" + "a" * 32,
        "apr1:user_churn:7:" + "A" * 32,
        "apr2:user_churn:7:" + "a" * 32,
        "apr1:user_churn:7:" + "a" * 32 + "\n",
    ],
)
def test_near_misses_are_refused(value: str) -> None:
    with pytest.raises(MalformedReference):
        ButtonRef.decode(value)


def test_a_reference_that_cannot_be_encoded_is_refused() -> None:
    with pytest.raises(MalformedReference):
        ButtonRef("user-churn", 1, "a" * 32).encode()
