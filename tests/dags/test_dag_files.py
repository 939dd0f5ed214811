"""The DAG files parse cleanly through Airflow, stay light, and follow the policy files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.dags.parsing import DAGS, run_on_dag_folder
from tests.support import write_policy

HEAVY = ["mlflow", "pandas", "sklearn", "lightgbm", "numpy", "scipy", "sqlalchemy", "slack_sdk"]

DAGBAG_SCRIPT = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({"dag_ids": sorted(bag.dag_ids), "errors": {k: str(v) for k, v in bag.import_errors.items()}}))
"""


def parse_dag_folder(policies_dir: Path | None = None) -> dict:
    changes = {} if policies_dir is None else {"PROMOTION_POLICIES_DIR": str(policies_dir)}
    return run_on_dag_folder(DAGBAG_SCRIPT, changes)


def test_dagbag_imports_without_errors_and_ids_follow_the_policies() -> None:
    parsed = parse_dag_folder()
    assert parsed["errors"] == {}
    assert parsed["dag_ids"] == ["promote_user_churn", "rollback_user_churn", "train_user_churn"]


def test_each_policy_file_gets_its_three_dags(tmp_path: Path) -> None:
    for name in ("fraud", "upsell"):
        write_policy(tmp_path, name)
    parsed = parse_dag_folder(tmp_path)
    assert parsed["errors"] == {}
    assert parsed["dag_ids"] == [
        f"{kind}_{name}"
        for kind in ("promote", "rollback", "train")
        for name in ("fraud", "upsell")
    ]


def test_broken_policy_is_an_import_error_and_the_others_still_load(tmp_path: Path) -> None:
    write_policy(tmp_path, "good")
    write_policy(tmp_path, "bad", promotion__metric="auc")
    parsed = parse_dag_folder(tmp_path)
    assert parsed["dag_ids"] == ["promote_good", "rollback_good", "train_good"]
    [(path, error)] = parsed["errors"].items()
    assert path.endswith("policy_errors.py")
    assert "bad.yaml: promotion.metric" in error


def test_dag_files_import_no_heavy_library() -> None:
    script = (
        "import json, runpy, sys\n"
        "import airflow.sdk\n"
        f"baseline = {{m for m in {HEAVY!r} if m in sys.modules}}\n"
        f"for path in {sorted(str(p) for p in DAGS.glob('*.py'))!r}:\n"
        "    runpy.run_path(path)\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules and m not in baseline]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_promotion_decisions_import_no_io_library() -> None:
    script = (
        "import importlib, json, pkgutil, sys, promotion\n"
        "for module in pkgutil.walk_packages(promotion.__path__, 'promotion.'):\n"
        "    importlib.import_module(module.name)\n"
        "print(json.dumps([m for m in ['mlflow', 'airflow', 'slack_sdk', 'sqlalchemy'] if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_a_misspelt_policies_directory_is_an_import_error_naming_the_variable(
    tmp_path: Path,
) -> None:
    parsed = parse_dag_folder(tmp_path / "polices")
    assert parsed["dag_ids"] == []
    [error] = parsed["errors"].values()
    assert f"PROMOTION_POLICIES_DIR={tmp_path / 'polices'}: " in error
    assert "no such directory of policy files" in error
