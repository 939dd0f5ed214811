"""`python -m approval` starts the endpoint from the environment, or says what is missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from approval.testing.interactions import SIGNING_SECRET, button_click, signed_headers
from approval.testing.slack_fake import FakeSlack

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[3]


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AIRFLOW_API_"))}
    return {**base, "PYTHONPATH": str(REPO_ROOT), **extra}


def test_a_missing_setting_stops_the_command_with_every_problem_named() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "approval"], env=_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "SLACK_SIGNING_SECRET is not set" in done.stderr
    assert "AIRFLOW_API_USERNAME" in done.stderr


def test_the_command_serves_the_endpoint(
    tmp_path: Path, fake_slack: FakeSlack, unused_port: int
) -> None:
    port = unused_port
    env = _env(
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_BOT_TOKEN="xoxb-test-token",
        SLACK_API_URL=fake_slack.url,
        APPROVAL_DB_URL=f"sqlite:///{tmp_path / 'approval.db'}",
        AIRFLOW_API_URL="http://127.0.0.1:9",
        AIRFLOW_API_USERNAME="approval_service",
        AIRFLOW_API_PASSWORD="unused",
        APPROVAL_PORT=str(port),
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "approval"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "did not start"
            time.sleep(0.2)
        body = button_click(user_id="UALICE001", value="apr1:user_churn:7:" + "0" * 32)
        forged = signed_headers("another-secret", int(time.time()), body)
        assert (
            httpx.post(f"{url}/slack/interactions", content=body, headers=forged).status_code == 401
        )
        unknown = httpx.post(
            f"{url}/slack/interactions",
            content=body,
            headers=signed_headers(SIGNING_SECRET, int(time.time()), body),
        )
        assert unknown.status_code == 400
        assert (tmp_path / "approval.db").exists()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
