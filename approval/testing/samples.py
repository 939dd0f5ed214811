"""Ready-made requests and configs for tests and the demo; any field can be overridden."""

from __future__ import annotations

from dataclasses import replace

from approval.config import ApprovalConfig
from approval.records import ApprovalRequest, Guardrail, TaskRef, request_id_for

ALICE = "UALICE001"
BOB = "UBOB00002"
CAROL = "UCAROL003"
MALLORY = "UMALLORY9"


def sample_config(**overrides: object) -> ApprovalConfig:
    """Two listed approvers (Alice and Bob), quorum 1, separation of duties on, Airflow user
    `carol` known in Slack as CAROL."""
    config = ApprovalConfig(
        required=True,
        channel="#model-approvals",
        approvers=(ALICE, BOB),
        quorum=1,
        timeout_seconds=3600,
        separation_of_duties=True,
        identities=(("carol", CAROL),),
    )
    return replace(config, **overrides)  # type: ignore[arg-type]


def sample_request(**overrides: object) -> ApprovalRequest:
    """user_churn v7 against champion v5, requested by Airflow user `carol` (Slack CAROL), with
    its id derived as in the DAG."""
    task = overrides.pop("task", None) or TaskRef(
        "promote_user_churn", "manual__2026-01-05T10:00:00+00:00", "wait_for_approval"
    )
    model = str(overrides.get("model", "user_churn"))
    version = int(overrides.get("challenger_version", 7))  # type: ignore[arg-type]
    request = ApprovalRequest(
        request_id=request_id_for(task, model, version),  # type: ignore[arg-type]
        model=model,
        challenger_version=version,
        champion_version=5,
        metric="roc_auc",
        delta=0.0123,
        ci_low=0.0041,
        ci_high=0.0207,
        task=task,  # type: ignore[arg-type]
        mlflow_version_url="http://mlflow.example/#/models/user_churn/versions/7",
        report_url="http://mlflow.example/#/experiments/1/runs/abc/artifacts/report.html",
        guardrails=(
            Guardrail("latency_p95_ms", True, "41 ms ≤ 50 ms"),
            Guardrail("calibration_error", True, "0.021 ≤ 0.05"),
        ),
        requested_by=("carol",),
        requester_ids=(CAROL,),
    )
    return replace(request, **overrides)  # type: ignore[arg-type]
