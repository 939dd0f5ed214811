"""Task bodies of the Slack approval inside promote_<model>: open the request, settle the answer."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import registry
from approval import hitl
from approval.config import ApprovalConfig
from approval.records import CurrentAliases, Guardrail, TaskRef
from policies.schema import Policy
from promotion.records import CHALLENGER, CHAMPION
from workflow.promote import Evaluation, clear_challenger
from workflow.runs import RunContext

WAIT_TASK_ID = "wait_for_approval"


@dataclass(frozen=True)
class ApprovalSettings:
    """Where the approval flow's services are; read once from the environment at the task edge."""

    db_url: str | None
    slack_token: str
    slack_api_url: str
    mlflow_ui_url: str
    airflow_ui_url: str

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, *, require_store: bool = True
    ) -> ApprovalSettings:
        """Read the settings; a notice that only posts to Slack needs no decision store."""
        env = dict(os.environ if environ is None else environ)
        needed = ("APPROVAL_DB_URL", "SLACK_BOT_TOKEN") if require_store else ("SLACK_BOT_TOKEN",)
        missing = [name for name in needed if not env.get(name)]
        if missing:
            raise ValueError(f"Slack settings incomplete: {', '.join(missing)} is not set")
        return cls(
            db_url=env.get("APPROVAL_DB_URL"),
            slack_token=env["SLACK_BOT_TOKEN"],
            slack_api_url=env.get("SLACK_API_URL", "https://slack.com/api/"),
            mlflow_ui_url=env.get("MLFLOW_UI_URL", "http://localhost:5000").rstrip("/"),
            airflow_ui_url=env.get("AIRFLOW_UI_URL", "http://localhost:8080").rstrip("/"),
        )

    def store(self):
        from approval.store import DecisionStore

        if self.db_url is None:
            raise ValueError("APPROVAL_DB_URL is not set: the approval decision store is needed")
        store = DecisionStore.from_url(self.db_url)
        store.create_tables()
        return store

    def slack(self):
        from approval.slack import SlackApprovalHook

        return SlackApprovalHook(token=self.slack_token, base_url=self.slack_api_url)


def approval_config(policy: Policy) -> ApprovalConfig:
    """The approval settings of a policy, as the approval package takes them."""
    rules = policy.approval
    return ApprovalConfig(
        required=rules.required,
        channel=rules.channel,
        approvers=tuple(rules.approvers),
        quorum=rules.quorum,
        timeout_seconds=int(rules.timeout_minutes * 60),
        separation_of_duties=rules.separation_of_duties,
        identities=tuple(rules.identities.items()),
        identity_email_domain=rules.identity_email_domain,
    )


def open_request(
    policy: Policy, evaluation: Evaluation, run: RunContext, settings: ApprovalSettings
) -> str:
    """Post the approval request to Slack with the evaluation's numbers; return its id.

    Fails (and so promotes nothing) when Slack cannot be reached after its retries.
    """
    from approval.records import ApprovalRequest, request_id_for
    from approval.service import request_approval

    name, version, result = policy.model_name, evaluation.challenger, evaluation.result
    task = TaskRef(run.dag_id, run.run_id, WAIT_TASK_ID)
    trained_by = registry.get_version(name, version).tags.get("lineage.triggered_by", "")
    experiment_run = evaluation.eval_run_id
    request = ApprovalRequest(
        request_id=request_id_for(task, name, version),
        model=name,
        challenger_version=version,
        champion_version=evaluation.champion,
        metric=result.metric,
        delta=result.improvement,
        ci_low=result.ci_low,
        ci_high=result.ci_high,
        task=task,
        mlflow_version_url=f"{settings.mlflow_ui_url}/#/models/{name}/versions/{version}",
        report_url=f"{settings.mlflow_ui_url}/#/experiments/{evaluation.experiment_id}/runs/{experiment_run}",
        guardrails=tuple(
            Guardrail(g.name, g.status in ("pass", "skipped"), g.message) for g in result.guardrails
        ),
        requested_by=tuple(who for who in (run.triggered_by, trained_by) if who),
        airflow_run_url=f"{settings.airflow_ui_url}/dags/{run.dag_id}/runs/{run.run_id}",
    )
    request_approval(
        request,
        approval_config(policy),
        store=settings.store(),
        slack=settings.slack(),
        now=datetime.now(UTC),
    )
    return request.request_id


def settle(
    policy: Policy, request_id: str, answer: dict, run: RunContext, settings: ApprovalSettings
) -> dict:
    """Record the approval outcome once, tell Slack, tag the version; return the outcome.

    Only an `approved` outcome lets the promotion go on; any other clears `challenger` (the
    version is rejected) and the caller stops.
    """
    from approval.hitl import HITLAnswer
    from approval.service import finish_approval

    name = policy.model_name
    current = CurrentAliases(
        registry.get_alias_version(name, CHAMPION), registry.get_alias_version(name, CHALLENGER)
    )
    outcome = finish_approval(
        request_id,
        HITLAnswer.from_xcom(answer),
        store=settings.store(),
        slack=settings.slack(),
        current=current,
        service_user_id=hitl.SERVICE_USER,
        now=datetime.now(UTC),
    )
    version = settings.store().get(request_id).request.challenger_version
    registry.set_version_tags(name, version, outcome.tags())
    evidence = {"approval_request": request_id, "by": ",".join(outcome.by)}
    if outcome.status == "approved":
        registry.record_transition(
            name, version, "approved", actor=run.actor, reason=outcome.reason, evidence=evidence
        )
    else:
        reason = f"approval {outcome.status}: {outcome.reason}"
        clear_challenger(name, version, "reject", run, reason, evidence)
    return {"status": outcome.status, "by": list(outcome.by), "reason": outcome.reason}
