"""Who is acting (which DAG run) and where a run keeps the objects its tasks hand each other."""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from airflow.sdk import ObjectStoragePath

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STORAGE_URL_ENV = "PROMOTION_STORAGE_URL"


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


def storage_root(storage_url: str | None, work_dir: str | None) -> str:
    """Where runs keep the objects their tasks hand each other: `storage_url` (any fsspec URL,
    e.g. `s3://bucket/prefix`, or `s3://conn_id@bucket/prefix` for an Airflow connection), else a
    `file://` folder under `work_dir` (else under the system's temporary directory), which is
    shared only by workers on one machine or on a shared volume."""
    if storage_url:
        return storage_url.rstrip("/")
    folder = Path(work_dir) if work_dir else Path(tempfile.gettempdir()) / "model-promotion"
    return folder.resolve().as_uri()


def run_storage(root: str, run: RunContext) -> ObjectStoragePath:
    """A folder of shared storage private to one DAG run, for the objects its tasks hand on."""
    path = _run_folder(root, run)
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove_run_storage(root: str, run: RunContext) -> str:
    """Delete a run's objects, whatever state the run ended in; returns the folder's URL."""
    path = _run_folder(root, run)
    if path.exists():
        path.rmdir(recursive=True)
    return str(path)


def _run_folder(root: str, run: RunContext) -> ObjectStoragePath:
    safe_run = re.sub(r"[^A-Za-z0-9_.-]", "_", run.run_id)
    return ObjectStoragePath(f"{root}/{run.dag_id}/{safe_run}")


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
