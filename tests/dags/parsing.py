"""Runs a script against the DAG folder in a fresh interpreter, as Airflow's DAG processor
would import it, and returns the JSON object the script prints last."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

DAGS = Path(__file__).resolve().parents[2] / "dags"


def run_on_dag_folder(script: str, env_changes: Mapping[str, str | None] = ()) -> dict:
    """`script` run with the DAG folder as its first argument; `env_changes` set (or, None,
    remove) variables of this process's environment for it."""
    env = dict(os.environ)
    for name, value in dict(env_changes).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    result = subprocess.run(
        [sys.executable, "-c", script, str(DAGS)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])
