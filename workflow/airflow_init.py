"""`python -m workflow.airflow_init`: what a deployment does once before Airflow starts — migrate
the metadata DB, create every pool the DAGs use, and give the service users their passwords.

The compose file's `airflow-init` service runs it, and every other Airflow service waits for it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from policies import load_valid_policies
from policies.resources import TrainingResources, airflow_pools

USERS_ENV = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"
PASSWORDS_FILE_ENV = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
# Each service user: the variable naming it and the variable holding its password. The approval
# endpoint logs in with the same two variables.
SERVICE_USERS = (
    ("AIRFLOW_ADMIN_USERNAME", "AIRFLOW_ADMIN_PASSWORD"),
    ("AIRFLOW_API_USERNAME", "AIRFLOW_API_PASSWORD"),
)


class InitError(RuntimeError):
    """The environment cannot set Airflow up; the message names every missing variable."""


def service_passwords(env: Mapping[str, str]) -> dict[str, str]:
    """The simple auth manager's passwords file content for the service users; each must be one of
    the users the auth manager knows, with a password."""
    known = {entry.split(":")[0].strip() for entry in env.get(USERS_ENV, "").split(",") if entry}
    problems, passwords = [], {}
    for user_variable, password_variable in SERVICE_USERS:
        user, password = env.get(user_variable, "").strip(), env.get(password_variable, "")
        if not user or not password:
            problems.append(f"{user_variable} and {password_variable} must both be set")
        elif user not in known:
            problems.append(f"{user_variable}={user!r} is not among {USERS_ENV} ({sorted(known)})")
        else:
            passwords[user] = password
    if problems:
        raise InitError("airflow init: " + "; ".join(problems))
    return passwords


def initialise(env: Mapping[str, str], airflow: str = "airflow") -> None:
    """Migrate, import the pools, write the passwords file (when the auth manager reads one)."""
    passwords = service_passwords(env) if env.get(PASSWORDS_FILE_ENV) else None
    run_env = dict(env)
    subprocess.run([airflow, "db", "migrate"], env=run_env, check=True)
    policies, _ = load_valid_policies(env.get("PROMOTION_POLICIES_DIR") or None)
    pools = airflow_pools(policies, TrainingResources.from_environment(env))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pools.json"
        path.write_text(json.dumps(pools, indent=2))
        subprocess.run([airflow, "pools", "import", str(path)], env=run_env, check=True)
    if passwords is not None:
        target = Path(env[PASSWORDS_FILE_ENV])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(passwords))
        target.chmod(0o600)


def main() -> int:
    """Run the init against this process's environment; 2 on a settings error."""
    beside = Path(sys.executable).with_name("airflow")
    try:
        initialise(
            os.environ, str(beside) if beside.exists() else shutil.which("airflow") or "airflow"
        )
    except InitError as error:
        print(error, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
