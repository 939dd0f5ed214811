"""monitor_<model> and the retrain Asset: which policies get a monitor, how train_<model> is
scheduled, and a bad cron staying a policy error."""

from __future__ import annotations

from pathlib import Path

from tests.dags.parsing import run_on_dag_folder
from tests.support import write_policy

SCRIPT = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in sorted(bag.dags.items()):
    timetable = dag.timetable
    inner = getattr(timetable, "timetable", None)
    assets = getattr(dag.timetable, "asset_condition", None)
    out["dags"][dag_id] = {
        "timetable": type(timetable).__name__,
        "cron": getattr(inner or timetable, "expression", None),
        "assets": sorted(a.uri for a in assets.objects) if assets is not None else [],
        "outlets": sorted(o.uri for t in dag.tasks for o in t.outlets),
    }
print(json.dumps(out))
"""

TRIGGERS = {
    "schedule": "@weekly",
    "check_every": "*/30 * * * *",
    "performance": {"max_drop": 0.02},
    "drift": {"source": "source"},
}


def parse(policies: Path) -> dict:
    return run_on_dag_folder(SCRIPT, {"PROMOTION_POLICIES_DIR": str(policies)})


def test_monitored_policies_get_a_monitor_and_a_training_on_cron_or_asset(tmp_path: Path) -> None:
    write_policy(tmp_path, "watched", triggers=TRIGGERS)
    write_policy(tmp_path, "signals", triggers={"data_volume": {"min_new_rows": 10}})
    write_policy(tmp_path, "plain", training_schedule="0 3 * * *")
    write_policy(tmp_path, "broken", triggers={**TRIGGERS, "check_every": "every half hour"})
    parsed = parse(tmp_path)
    dags = parsed["dags"]

    monitor = dags["monitor_watched"]
    assert (monitor["timetable"], monitor["cron"]) == ("CronTriggerTimetable", "*/30 * * * *")
    assert monitor["outlets"] == ["model-registry://watched/retrain"]
    train = dags["train_watched"]
    assert (train["timetable"], train["cron"]) == ("AssetOrTimeSchedule", "0 0 * * 0")
    assert train["assets"] == ["model-registry://watched/retrain"]

    assert dags["train_signals"]["timetable"] == "AssetTriggeredTimetable"
    assert dags["train_signals"]["assets"] == ["model-registry://signals/retrain"]
    assert "monitor_signals" in dags

    assert "monitor_plain" not in dags
    assert (dags["train_plain"]["timetable"], dags["train_plain"]["cron"]) == (
        "CronTriggerTimetable",
        "0 3 * * *",
    )

    assert not any(dag_id.endswith("_broken") for dag_id in dags)
    [error] = parsed["errors"].values()
    assert "broken.yaml: triggers.check_every: 'every half hour' is not a cron expression" in error
