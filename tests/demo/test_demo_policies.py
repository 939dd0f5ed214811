"""The demo's own policies load, and sit beside the shipped ones without a clash."""

from __future__ import annotations

from demo.__main__ import DEMO_POLICIES
from policies import load_policies


def test_demo_policies_are_valid_and_named_apart_from_the_shipped_ones() -> None:
    demo = {policy.model_name: policy for policy in load_policies(DEMO_POLICIES)}
    shipped = {policy.model_name for policy in load_policies()}
    assert demo and not set(demo) & shipped
    live = demo["user_churn_live"]
    assert live.approval.required and live.rollout.mode == "canary"
    assert live.triggers.data_volume is not None
