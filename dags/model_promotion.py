"""DAGs generated from policies/*.yaml: train_<model>, promote_<model> and rollback_<model>.

Wiring only. Task bodies live in `workflow/` and are imported inside each task, so parsing this
file loads Airflow, the standard library and the policy loader, nothing heavier.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Asset, Param, TriggerRule, dag, get_current_context, task

from approval import hitl
from policies import Policy, load_valid_policies

T = TypeVar("T")
START_DATE = datetime(2026, 1, 1)
DEFAULT_ARGS = {
    "retries": 2,
    "retry_delay": timedelta(seconds=5),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=2),
}


def candidate_asset(policy: Policy) -> Asset:
    """The Asset a training run updates when it registers a new `challenger`."""
    return Asset(name=f"{policy.model_name}_challenger", uri=policy.candidate_asset_uri)


def rollout_asset(policy: Policy) -> Asset:
    """The Asset a promotion updates when it hands its winner to rollout_<model>."""
    return Asset(name=f"{policy.model_name}_rollout", uri=policy.rollout_asset_uri)


def _run():
    from workflow.runs import RunContext

    return RunContext.of(get_current_context()["dag_run"])


def _work_root() -> str | None:
    return os.environ.get("PROMOTION_WORK_DIR")


def _bad_input_fails_without_retry(step: Callable[[], T]) -> T:
    """Run a task body; a bad window, source or rollback target fails at once, since a retry
    would only meet the same data. Transient errors still go through the task's retries."""
    from promotion.decisions import NothingToRollBack
    from registry import MoveRefused
    from workflow.promote import CannotEvaluate
    from workflow.rollout import RolloutError
    from workflow.sources import SourceError
    from workflow.validation import DataValidationError

    try:
        return step()
    except (
        DataValidationError,
        SourceError,
        NothingToRollBack,
        CannotEvaluate,
        RolloutError,
        MoveRefused,
    ) as error:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(error)) from error


def build_train_dag(policy: Policy) -> None:
    name = policy.model_name

    @dag(
        dag_id=f"train_{name}",
        description=f"Train {name} on a fresh window and register it as the challenger.",
        schedule=policy.training_schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=["model-promotion", name, "train"],
        params={
            "as_of": Param(
                None,
                type=["null", "string"],
                title="Data up to",
                description="End of the holdout window (ISO date). Empty: the run's logical date.",
            )
        },
        doc_md=f"Extract `{policy.source.table or 'query'}`, validate, train a `{policy.model.flavor}` "
        f"pipeline, log it to MLflow and register it as `{name}@challenger`.",
    )
    def train():
        @task
        def extract_window() -> dict:
            from workflow import train as steps
            from workflow.runs import run_dir

            context = get_current_context()
            fallback = context.get("logical_date") or context["dag_run"].run_after
            as_of = steps.parse_as_of(context["params"].get("as_of"), fallback)
            directory = run_dir(_work_root(), _run())
            return _bad_input_fails_without_retry(lambda: steps.extract(policy, as_of, directory))

        @task
        def validate_window(extracted: dict) -> dict:
            from workflow import train as steps

            return _bad_input_fails_without_retry(lambda: steps.validate(policy, extracted))

        @task(outlets=[candidate_asset(policy)], pool=policy.alias_pool)
        def register_candidate(validated: dict) -> dict:
            from workflow import train as steps

            return steps.train_and_register(
                policy, validated, _run(), artifact_root=os.environ.get("PROMOTION_ARTIFACT_ROOT")
            )

        @task
        def remove_temporary_files() -> str:
            from workflow.runs import remove_run_dir

            return remove_run_dir(_work_root(), _run())

        extracted = extract_window()
        cleanup = remove_temporary_files().as_teardown(setups=extracted)
        # Teardown, so the run's state is that of the real work; all-done, so the files go even
        # when extraction itself failed half-way.
        cleanup.operator.trigger_rule = TriggerRule.ALL_DONE
        register_candidate(validate_window(extracted)) >> cleanup

    train()


def build_promote_dag(policy: Policy) -> None:
    name = policy.model_name

    @dag(
        dag_id=f"promote_{name}",
        description=f"Champion–challenger evaluation of {name}; moves `champion` to a winner.",
        schedule=[candidate_asset(policy)],
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=["model-promotion", name, "promote"],
        params={
            "version": Param(
                None,
                type=["null", "integer"],
                title="Challenger version",
                description="Version to evaluate. Empty: the version aliased `challenger`.",
            )
        },
        doc_md=f"Runs when `train_{name}` registers a challenger. Both models are scored on the "
        f"challenger's holdout window by `{policy.promotion.metric}`; the challenger is promoted "
        f"when the {policy.promotion.confidence:.0%} confidence interval of its improvement clears "
        f"the policy's bound ({policy.promotion.mode}) and every guardrail passes.",
    )
    def promote():
        @task
        def find_candidates() -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from workflow import promote as steps

            candidates = steps.find_candidates(
                policy, get_current_context()["params"].get("version")
            )
            if candidates["challenger"] is None:
                raise AirflowSkipException(f"{name} has no `challenger`: nothing to evaluate")
            if candidates["challenger"] == candidates["champion"]:
                raise AirflowSkipException(f"v{candidates['challenger']} is already champion")
            return candidates

        @task
        def evaluate(candidates: dict) -> dict:
            from workflow import promote as steps

            return _bad_input_fails_without_retry(
                lambda: steps.evaluate(policy, candidates, _run())
            )

        @task(pool=policy.alias_pool)
        def conclude_evaluation(evaluation: dict) -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from workflow import promote as steps

            try:
                return _bad_input_fails_without_retry(
                    lambda: steps.conclude_evaluation(policy, evaluation, _run())
                )
            except steps.NotPromoted as stop:
                raise AirflowSkipException(str(stop)) from stop

        @task(pool=policy.alias_pool)
        def promote_challenger(evaluation: dict, approval: dict | None = None) -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from workflow import promote as steps

            try:
                return steps.promote_challenger(policy, evaluation, _run(), approval)
            except steps.NotPromoted as stop:
                raise AirflowSkipException(str(stop)) from stop

        @task(outlets=[rollout_asset(policy)], pool=policy.alias_pool)
        def start_rollout(evaluation: dict, approval: dict | None = None) -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from workflow import rollout as steps

            try:
                return _bad_input_fails_without_retry(
                    lambda: steps.start(policy, evaluation, _run(), approval)
                )
            except steps.NotPromoted as stop:
                raise AirflowSkipException(str(stop)) from stop

        winner = conclude_evaluation(evaluate(find_candidates()))
        approval = _approval_tasks(policy, winner) if policy.approval.required else None
        finish = promote_challenger if policy.rollout.mode == "none" else start_rollout
        finish(winner, approval)

    promote()


def _approval_tasks(policy: Policy, winner):
    """Slack approval between the verdict and the move: post, wait without a worker slot (HITL),
    settle. Anything but an approval stops the promotion; no answer in time is a rejection."""

    @task
    def request_approval(evaluation: dict) -> str:
        from workflow import approve

        settings = approve.ApprovalSettings.from_environment()
        return approve.open_request(policy, evaluation, _run(), settings)

    wait_for_approval = HITLOperator(
        task_id="wait_for_approval",
        subject=f"Promote {policy.model_name}?",
        body="Answer with the buttons in Slack (#{channel}); the promotion re-checks the registry "
        "before it moves anything.".format(channel=policy.approval.channel.lstrip("#")),
        options=list(hitl.OPTIONS),
        defaults=list(hitl.DEFAULTS),
        multiple=False,
        params={field: Param("", type="string") for field in hitl.PARAMS},
        assigned_users=[{"id": hitl.SERVICE_USER, "name": hitl.SERVICE_USER}],
        response_timeout=timedelta(minutes=policy.approval.timeout_minutes),
    )

    @task(pool=policy.alias_pool)
    def settle_approval(request_id: str, answer: dict) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from workflow import approve

        outcome = approve.settle(
            policy, request_id, answer, _run(), approve.ApprovalSettings.from_environment()
        )
        if outcome["status"] != "approved":
            raise AirflowSkipException(
                f"not promoted: approval {outcome['status']}: {outcome['reason']}"
            )
        return outcome

    request_id = request_approval(winner)
    request_id >> wait_for_approval
    return settle_approval(request_id, wait_for_approval.output)


def build_rollback_dag(policy: Policy) -> None:
    name = policy.model_name

    @dag(
        dag_id=f"rollback_{name}",
        description=f"One-click rollback of {name}@champion to the previous champion.",
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args={**DEFAULT_ARGS, "retries": 1},
        tags=["model-promotion", name, "rollback"],
        params={
            "version": Param(
                None,
                type=["null", "integer"],
                title="Version",
                description="Version to make champion. Empty: undo the last champion move.",
            ),
            "reason": Param(
                "manual rollback",
                type="string",
                minLength=1,
                title="Reason",
                description="Recorded in the alias history.",
            ),
            "force": Param(
                False,
                type="boolean",
                title="Force",
                description="Allow a version that was never champion.",
            ),
        },
        doc_md=f"Trigger with the defaults to put the previous champion of `{name}` back.",
    )
    def rollback():
        @task(retries=0)
        def plan_rollback() -> dict:
            from workflow import rollback as steps

            params = get_current_context()["params"]
            return _bad_input_fails_without_retry(
                lambda: steps.plan(policy, params.get("version"), bool(params.get("force")), _run())
            )

        @task(pool=policy.alias_pool)
        def apply_rollback(planned: dict) -> dict:
            from workflow import rollback as steps

            reason = get_current_context()["params"]["reason"]
            return _bad_input_fails_without_retry(
                lambda: steps.apply(policy, planned, reason, _run())
            )

        apply_rollback(plan_rollback())

    rollback()


POLICIES, _POLICY_ERRORS = load_valid_policies(os.environ.get("PROMOTION_POLICIES_DIR") or None)
for _policy in POLICIES:
    build_train_dag(_policy)
    build_promote_dag(_policy)
    build_rollback_dag(_policy)
