"""The init step's service users: each needs a name the auth manager knows and a password."""

from __future__ import annotations

import pytest

from workflow.airflow_init import InitError, service_passwords

USERS = {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,approval_service:user"}


def test_both_service_users_get_their_passwords() -> None:
    env = {
        **USERS,
        "AIRFLOW_ADMIN_USERNAME": "admin",
        "AIRFLOW_ADMIN_PASSWORD": "a-secret",
        "AIRFLOW_API_USERNAME": "approval_service",
        "AIRFLOW_API_PASSWORD": "b-secret",
    }

    assert service_passwords(env) == {"admin": "a-secret", "approval_service": "b-secret"}


def test_every_missing_or_unknown_user_is_named_at_once() -> None:
    env = {**USERS, "AIRFLOW_ADMIN_USERNAME": "root", "AIRFLOW_ADMIN_PASSWORD": "a-secret"}

    with pytest.raises(InitError) as raised:
        service_passwords(env)

    message = str(raised.value)
    assert "AIRFLOW_ADMIN_USERNAME='root' is not among" in message
    assert "AIRFLOW_API_USERNAME and AIRFLOW_API_PASSWORD must both be set" in message
