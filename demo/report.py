"""What the demo prints: each step's command, the aliases after it, the timeline, where to look."""

from __future__ import annotations

import json
from pathlib import Path

import registry
from demo.lifecycle import PROJECT_ROOT, Workspace


def announce(title: str, dag_id: str, conf: dict | None = None) -> None:
    """Print the step and the Airflow command it runs."""
    print(
        f"\n▶ {title}: airflow dags test {dag_id}"
        + (f" --conf '{json.dumps(conf)}'" if conf else "")
    )


def print_state(model: str, aliases: tuple[str, ...] = ("champion", "challenger")) -> None:
    """The aliases after a step."""
    found = {alias: registry.get_alias_version(model, alias) for alias in aliases}
    shown = ", ".join(f"{alias}=v{v}" if v else f"{alias}=–" for alias, v in found.items())
    print(f"  aliases: {shown}")


def print_timeline(model: str) -> None:
    """Every recorded alias move, with the numbers behind it, and each version's verdicts."""
    print(f"\nTimeline of {model} (alias history recorded on the registered model):")
    for move in registry.alias_history(model):
        source = f"v{move.from_version}" if move.from_version else "–"
        target = f"v{move.to_version}" if move.to_version else "–"
        print(
            f"  #{move.sequence} {move.at}  {move.alias:<10} {source:>3} → {target:<3} [{move.kind}] {move.reason}"
        )
    print("\nVersions:")
    version = 1
    while True:
        try:
            info = registry.get_version(model, version)
        except Exception:
            break
        tags = info.tags
        line = (
            f"  v{info.version}: trained on [{tags['lineage.window_start'][:10]}, "
            f"{tags['lineage.window_end'][:10]}), {tags['lineage.rows']} rows, "
            f"digest {tags['lineage.dataset_digest']}; verdict: {tags.get('promotion.verdict', '–')} "
            f"({tags.get('promotion.reason', '')})"
        )
        if "approval.status" in tags:
            line += f"; approval: {tags['approval.status']} by {tags.get('approval.by', '–')}"
        rolled = registry.rollout_state(model, version)
        if rolled is not None and not rolled.running:
            line += f"; {rolled.mode}: {rolled.phase} ({rolled.reason})"
        print(line)
        version += 1


def print_how_to_look(workspace: Workspace, env_file: Path, view_port: int) -> None:
    """The commands that open the monitoring view and the MLflow UI on the demo's stores."""
    settings = f"set -a; . {env_file.relative_to(PROJECT_ROOT)}; set +a"
    passwords = (workspace.airflow_home / "passwords.json").relative_to(PROJECT_ROOT)
    print(
        "\nThe monitoring view, inside Airflow's UI (Airflow's api-server with the project's plugin):"
    )
    print(f"  {settings}; .venv/bin/airflow api-server --host 127.0.0.1 --port {view_port}")
    print(
        f"  then open http://127.0.0.1:{view_port}/monitoring/ as `admin` (password in {passwords})"
    )
    print("  the same as terminal tables, while that api-server runs:")
    print(f"  {settings}; .venv/bin/python -m monitoring status --model user_churn_live")
    print("The versions, tags and alias history in the MLflow UI:")
    print(f"  .venv/bin/mlflow ui --backend-store-uri {workspace.tracking_uri} --port 5000")
    print("  then open http://127.0.0.1:5000/#/models")
