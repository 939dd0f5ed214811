"""`make demo`: the whole lifecycle on embedded SQLite stores under var/demo/, printed as a timeline."""

from __future__ import annotations

import json
import os
import sys
import time

from demo.lifecycle import PROJECT_ROOT, DagRunFailed, Lifecycle, Workspace
from demo.source_data import as_of_for_window, generate_user_features, write_source

MODEL = "user_churn"


def main() -> int:
    workspace = Workspace(PROJECT_ROOT / "var" / "demo")
    lifecycle = Lifecycle(workspace)
    lifecycle.reset()
    os.environ["MLFLOW_TRACKING_URI"] = workspace.tracking_uri
    started = time.monotonic()

    rows = write_source(workspace.source, generate_user_features())
    print(f"source: {rows} rows of user_features (drifting from 2026-03-20) in {workspace.source}")
    print("airflow: creating the metadata DB and serializing the DAGs …")
    lifecycle.prepare_airflow()

    steps = [
        ("train_" + MODEL, {"as_of": as_of_for_window(1)}, "train on window 1 (before the drift)"),
        ("promote_" + MODEL, None, "promote: no champion yet"),
        ("train_" + MODEL, {"as_of": as_of_for_window(2)}, "train on window 2 (after the drift)"),
        ("promote_" + MODEL, None, "promote: challenger vs champion on the fresh holdout"),
        ("train_" + MODEL, {"as_of": as_of_for_window(3)}, "train a week later (same regime)"),
        ("promote_" + MODEL, None, "promote: a challenger no better than the champion"),
        (
            "rollback_" + MODEL,
            {"reason": "demo: one-click rollback"},
            "rollback with default params",
        ),
    ]
    try:
        for dag_id, conf, title in steps:
            print(
                f"\n▶ {title}: airflow dags test {dag_id}"
                + (f" --conf '{json.dumps(conf)}'" if conf else "")
            )
            lifecycle.run_dag(dag_id, conf)
            print_state()
    except DagRunFailed as failure:
        print(f"\n✗ {failure}", file=sys.stderr)
        return 1

    print_timeline()
    print(
        f"\nDone in {time.monotonic() - started:.0f} s. Review the versions, tags and alias history:"
    )
    print(f"  .venv/bin/mlflow ui --backend-store-uri {workspace.tracking_uri} --port 5000")
    print("  then open http://127.0.0.1:5000/#/models/" + MODEL)
    return 0


def print_state() -> None:
    """The aliases after a step."""
    import registry

    aliases = {
        alias: registry.get_alias_version(MODEL, alias) for alias in ("champion", "challenger")
    }
    shown = ", ".join(f"{alias}=v{v}" if v else f"{alias}=–" for alias, v in aliases.items())
    print(f"  aliases: {shown}")


def print_timeline() -> None:
    """Every recorded alias move, with the numbers behind it."""
    import registry

    print("\nTimeline (alias history recorded on the registered model):")
    for move in registry.alias_history(MODEL):
        source = f"v{move.from_version}" if move.from_version else "–"
        target = f"v{move.to_version}" if move.to_version else "–"
        print(
            f"  #{move.sequence} {move.at}  {move.alias:<10} {source:>3} → {target:<3} [{move.kind}] {move.reason}"
        )
    print("\nVersions:")
    version = 1
    while True:
        try:
            info = registry.get_version(MODEL, version)
        except Exception:
            break
        tags = info.tags
        print(
            f"  v{info.version}: trained on [{tags['lineage.window_start'][:10]}, "
            f"{tags['lineage.window_end'][:10]}), {tags['lineage.rows']} rows, "
            f"digest {tags['lineage.dataset_digest']}; verdict: {tags.get('promotion.verdict', '–')} "
            f"({tags.get('promotion.reason', '')})"
        )
        version += 1


if __name__ == "__main__":
    sys.exit(main())
