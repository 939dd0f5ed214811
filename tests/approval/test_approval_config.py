from __future__ import annotations

from datetime import timedelta

import pytest

from approval.config import ApprovalConfig, ApprovalConfigError
from approval.testing.samples import ALICE, BOB, sample_config


def test_valid_config_keeps_approvers_as_a_tuple_and_exposes_the_timeout() -> None:
    config = sample_config(approvers=[ALICE, BOB], quorum=2, timeout_seconds=90)
    assert config.approvers == (ALICE, BOB)
    assert config.timeout == timedelta(seconds=90)


def test_every_problem_is_reported_at_once_with_its_field() -> None:
    with pytest.raises(ApprovalConfigError) as raised:
        ApprovalConfig(
            required=True, channel=" ", approvers=("alice",), quorum=3, timeout_seconds=0
        )
    message = str(raised.value)
    for field in ("timeout_seconds", "channel", "approvers", "quorum"):
        assert f"approval.{field}:" in message
    assert "'alice'" in message


def test_quorum_cannot_exceed_the_listed_approvers() -> None:
    with pytest.raises(ApprovalConfigError, match="quorum: must be between 1 and the 2"):
        sample_config(quorum=3)


def test_an_approver_listed_twice_is_refused() -> None:
    with pytest.raises(ApprovalConfigError, match="listed twice"):
        sample_config(approvers=(ALICE, ALICE))


def test_a_config_that_requires_no_approval_needs_no_channel_or_approvers() -> None:
    config = ApprovalConfig(required=False, channel="")
    assert config.approvers == ()


def test_an_airflow_user_is_known_in_slack_by_mapping_then_by_email_domain() -> None:
    config = ApprovalConfig(
        required=False,
        channel="",
        identities=(("carol", "UCAROL003"), ("dana", "dana.r@corp.example")),
        identity_email_domain="example.com",
    )
    assert config.slack_identity("carol") == "UCAROL003"
    assert config.slack_identity("dana") == "dana.r@corp.example"
    assert config.slack_identity("erin") == "erin@example.com"
    assert ApprovalConfig(required=False, channel="").slack_identity("erin") is None


def test_an_identity_that_is_neither_a_slack_id_nor_an_email_is_refused() -> None:
    with pytest.raises(ApprovalConfigError, match="approval.identities: 'carol'"):
        ApprovalConfig(required=False, channel="", identities=(("carol", "Carol"),))
    with pytest.raises(ApprovalConfigError, match="identity_email_domain"):
        ApprovalConfig(required=False, channel="", identity_email_domain="not a domain")
