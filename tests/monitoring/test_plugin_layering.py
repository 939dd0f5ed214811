"""Airflow loads plugins in every component, so the plugin module must stay light (Airflow's own
plugin manager already loads SQLAlchemy; the view's stores and charts must wait for a request)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("mlflow", "matplotlib", "pandas", "sklearn", "monitoring.view", "monitoring.pages")


def test_importing_the_plugin_loads_no_heavy_library() -> None:
    code = (
        "import sys, monitoring.plugin as p; "
        "assert p.MonitoringPlugin.fastapi_apps and p.MonitoringPlugin.external_views; "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert found.stdout.strip() == "[]"
