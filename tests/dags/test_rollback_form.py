"""rollback_<model>'s trigger form shows the current champion and the default target, from the
champion summary the workflow writes, without the DAG file loading anything heavy or slow."""

from __future__ import annotations

import time
from pathlib import Path

from promotion.champion_summary import ChampionSummary
from tests.dags.parsing import run_on_dag_folder
from workflow.champion_summary import version_form_description, write_summary

MODEL = "user_churn"
# What the UI reads: the serialized DAG's params (it shows description_md when description is
# null).
SCRIPT = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
bag = DagBag(dag_folder=sys.argv[1])
params = dict(DagSerialization.to_dict(bag.dags["rollback_user_churn"])["dag"]["params"])
version = params["version"]
print(json.dumps({"description": version["description"],
                  "description_md": version["schema"]["__var"]["description_md"]}))
"""


def serialized_version_param(champions_dir: Path | None) -> dict:
    directory = None if champions_dir is None else str(champions_dir)
    return run_on_dag_folder(SCRIPT, {"PROMOTION_CHAMPIONS_DIR": directory})


def summary(model: str = MODEL) -> ChampionSummary:
    return ChampionSummary(
        model_name=model,
        as_of="2026-06-30T12:05:00+00:00",
        champion=2,
        champion_since="2026-06-30T12:00:00+00:00",
        target=1,
        target_reason="most recent former champion not rolled back from: v1",
        target_until="2026-06-30T12:00:00+00:00",
    )


def test_the_form_shows_champion_and_default_target_with_their_times(tmp_path: Path) -> None:
    write_summary(tmp_path, summary())
    param = serialized_version_param(tmp_path)
    assert param["description"] is None
    text = param["description_md"]
    assert "- Current champion: **v2** since 2026-06-30 12:00 UTC" in text
    assert (
        "- Default target (this field empty): **v1**, champion until 2026-06-30 12:00 UTC" in text
    )
    assert "_As of 2026-06-30 12:05 UTC" in text


def test_without_a_summary_directory_the_form_says_so(tmp_path: Path) -> None:
    param = serialized_version_param(None)
    assert param["description_md"].endswith("not shown: PROMOTION_CHAMPIONS_DIR is not set._")


def test_an_unreadable_summary_is_named_and_the_dag_still_parses(tmp_path: Path) -> None:
    (tmp_path / f"{MODEL}.json").write_text("{not json")
    text = version_form_description(MODEL, str(tmp_path))
    assert f"{tmp_path / (MODEL + '.json')} cannot be read (JSONDecodeError" in text


def test_reading_and_rendering_a_summary_takes_well_under_a_millisecond(tmp_path: Path) -> None:
    names = [f"model_{index:03d}" for index in range(50)]
    for name in names:
        write_summary(tmp_path, summary(name))
    fastest = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for name in names:
            version_form_description(name, str(tmp_path))
        fastest = min(fastest, time.perf_counter() - started)
    assert fastest / len(names) < 0.001
