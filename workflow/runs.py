"""Who is acting (which DAG run) and where a run keeps its temporary files."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class RunContext:
    """The Airflow run a task belongs to; recorded on every version and alias move it makes."""

    dag_id: str
    run_id: str
    triggered_by: str = ""

    @classmethod
    def of(cls, dag_run: object) -> RunContext:
        """The context of an Airflow DagRun (what `get_current_context()["dag_run"]` gives)."""
        return cls(
            dag_id=dag_run.dag_id,  # type: ignore[attr-defined]
            run_id=dag_run.run_id,  # type: ignore[attr-defined]
            triggered_by=getattr(dag_run, "triggering_user_name", None) or "",
        )

    @property
    def actor(self) -> str:
        by = f" (triggered by {self.triggered_by})" if self.triggered_by else ""
        return f"{self.dag_id}/{self.run_id}{by}"


def run_dir(work_root: str | Path | None, run: RunContext) -> Path:
    """A directory private to one DAG run, for files passed between its tasks."""
    root = Path(work_root) if work_root else Path(tempfile.gettempdir()) / "model-promotion"
    safe_run = re.sub(r"[^A-Za-z0-9_.-]", "_", run.run_id)
    path = root / run.dag_id / safe_run
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove_run_dir(work_root: str | Path | None, run: RunContext) -> str:
    """Delete a run's temporary directory, whatever state the run ended in."""
    path = run_dir(work_root, run)
    shutil.rmtree(path, ignore_errors=True)
    return str(path)


def code_version() -> str:
    """The git commit of the project when available, else the installed package version."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return f"git:{commit}{'-dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return f"package:{metadata.version('model-promotion-workflow')}"
