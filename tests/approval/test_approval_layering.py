from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_package_and_its_pure_modules_load_no_io_library() -> None:
    code = (
        "import sys, approval, approval.decisions, approval.messages, approval.hitl;"
        "print(','.join(m for m in ('slack_sdk', 'sqlalchemy', 'fastapi', 'httpx', 'airflow',"
        " 'mlflow') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout.strip()
    assert loaded == ""
