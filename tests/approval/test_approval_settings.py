from __future__ import annotations

import pytest

from approval.settings import Settings, SettingsError


def test_every_missing_variable_is_named_at_once() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"APPROVAL_PORT": "eighty"})
    message = str(raised.value)
    for name in (
        "SLACK_SIGNING_SECRET",
        "SLACK_BOT_TOKEN",
        "AIRFLOW_API_USERNAME",
        "APPROVAL_PORT",
    ):
        assert name in message


def test_a_complete_environment_is_read_with_defaults_for_the_rest() -> None:
    settings = Settings.from_env(
        {
            "SLACK_SIGNING_SECRET": "s",
            "SLACK_BOT_TOKEN": "xoxb-1",
            "AIRFLOW_API_TOKEN": "jwt",
            "APPROVAL_DB_URL": "postgresql://db/approvals",
        }
    )
    assert settings.db_url == "postgresql://db/approvals"
    assert settings.airflow_token == "jwt"
    assert (settings.host, settings.port) == ("127.0.0.1", 8095)
    assert settings.slack_api_url == "https://slack.com/api/"
