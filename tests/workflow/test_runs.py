"""A run's shared storage: where its tasks hand each other objects, and its removal."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from workflow.runs import RunContext, remove_run_storage, run_storage, storage_root
from workflow.train import EXTRACT_FILE, TrainingWindow

RUN = RunContext(dag_id="train_user_churn", run_id="manual__2026-03-01T00:00:00+00:00")


def test_without_a_storage_url_the_root_is_a_file_url_under_the_work_dir(tmp_path: Path) -> None:
    assert storage_root(None, str(tmp_path)) == tmp_path.resolve().as_uri()


def test_a_storage_url_is_used_as_given_without_its_trailing_slash(tmp_path: Path) -> None:
    assert storage_root("s3://aws_default@bucket/runs/", str(tmp_path)) == (
        "s3://aws_default@bucket/runs"
    )


def test_each_run_gets_its_own_folder_named_safely(tmp_path: Path) -> None:
    folder = run_storage(storage_root(None, str(tmp_path)), RUN)

    assert str(folder) == (
        f"{tmp_path.resolve().as_uri()}/train_user_churn/manual__2026-03-01T00_00_00_00_00"
    )
    assert folder.is_dir()


def test_removing_a_run_deletes_its_objects_and_keeps_the_others(tmp_path: Path) -> None:
    root = storage_root(None, str(tmp_path))
    other = RunContext(dag_id="train_user_churn", run_id="manual__other")
    for run in (RUN, other):
        (run_storage(root, run) / EXTRACT_FILE).write_bytes(b"rows")

    removed = remove_run_storage(root, RUN)

    assert removed == f"{root}/train_user_churn/manual__2026-03-01T00_00_00_00_00"
    assert not (tmp_path / "train_user_churn" / "manual__2026-03-01T00_00_00_00_00").exists()
    assert (run_storage(root, other) / EXTRACT_FILE).read_bytes() == b"rows"


def test_removing_a_run_that_stored_nothing_succeeds(tmp_path: Path) -> None:
    remove_run_storage(storage_root(None, str(tmp_path)), RUN)


def test_a_training_window_crosses_xcom_as_json_and_reads_its_rows_back(tmp_path: Path) -> None:
    path = run_storage(storage_root(None, str(tmp_path)), RUN) / EXTRACT_FILE
    frame = pd.DataFrame({"tenure": [1, 2, 3], "churned": [0, 1, 0]})
    with path.open("wb") as file:
        frame.to_parquet(file, index=False)
    window = TrainingWindow(
        data_url=str(path),
        rows=3,
        source="sqlite:///source.db",
        selection="user_features",
        window_start="2026-01-01T00:00:00",
        window_end="2026-02-01T00:00:00",
        holdout_start="2026-02-01T00:00:00",
        holdout_end="2026-02-08T00:00:00",
    )

    received = TrainingWindow.from_xcom(json.loads(json.dumps(window.to_xcom())))

    assert received == window
    pd.testing.assert_frame_equal(received.read(), frame)
