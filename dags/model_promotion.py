"""DAGs generated from policies/*.yaml: train_<model>, promote_<model>, rollback_<model>,
rollout_<model> for a policy whose rollout mode is canary or shadow, and monitor_<model> for a policy
whose triggers watch the champion (performance, data volume or drift).

Wiring only. Task bodies live in `workflow/` and are imported inside each task, so parsing this
file loads Airflow, the standard library and the policy loader, nothing heavier.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    PokeReturnValue,
    TriggerRule,
    dag,
    get_current_context,
    task,
)

from approval import hitl
from policies import Policy, PolicyError, load_valid_policies
from policies.loader import policy_path
from policies.resources import TrainingResources
from policies.schema import cron_expression
from promotion.outcomes import FAILING as FAILING_OUTCOMES
from promotion.outcomes import OUTCOMES, promote_outcome
from workflow.champion_summary import champions_dir, version_form_description
from workflow.notify import FailureNotifier
from workflow.run_note import RUN_NOTE_CONN_ID

T = TypeVar("T")
START_DATE = datetime(2026, 1, 1)
# Every training task runs in one pool (and, under Celery, on one queue) of its own, so trainings
# never take the slots promotions and rollbacks need.
TRAINING = TrainingResources.from_environment()
DEFAULT_ARGS = {
    "retries": 2,
    "retry_delay": timedelta(seconds=5),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=2),
}
# A sensor's Airflow timeout is only a backstop: the analysis ends each step itself. It is given
# room for a few late checks, so it never cuts a step short.
TIMEOUT_MARGIN = timedelta(minutes=10)
# With on_timeout: hold a step may wait for labels indefinitely; the watch gives up after this,
# and the rollout then fails closed (reverted).
LONGEST_HOLD = timedelta(days=7)


def model_default_args(policy: Policy, **overrides: object) -> dict:
    """DEFAULT_ARGS of one model's DAG: any failed task posts a Slack notice naming the model."""
    notifier = FailureNotifier(model_name=policy.model_name, channel=policy.approval.channel)
    return {**DEFAULT_ARGS, "on_failure_callback": [notifier], **overrides}


def candidate_asset(policy: Policy) -> Asset:
    """The Asset a training run updates when it registers a new `challenger`."""
    return Asset(name=f"{policy.model_name}_challenger", uri=policy.candidate_asset_uri)


def rollout_asset(policy: Policy) -> Asset:
    """The Asset a promotion updates when it hands its winner to rollout_<model>."""
    return Asset(name=f"{policy.model_name}_rollout", uri=policy.rollout_asset_uri)


def retrain_asset(policy: Policy) -> Asset:
    """The Asset monitor_<model> updates when a trigger fires; it starts train_<model>."""
    return Asset(name=f"{policy.model_name}_retrain", uri=policy.retrain_asset_uri)


def train_schedule(policy: Policy) -> str | list[Asset] | AssetOrTimeSchedule | None:
    """train_<model> runs on its cron, on the monitor's retrain Asset, or on either."""
    cron = policy.training_cron
    if not policy.triggers.monitored:
        return cron
    if cron is None:
        return [retrain_asset(policy)]
    return AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(cron, timezone="UTC"), assets=[retrain_asset(policy)]
    )


def _run():
    from workflow.runs import RunContext

    return RunContext.of(get_current_context()["dag_run"])


def _storage_root() -> str:
    from workflow.runs import STORAGE_URL_ENV, storage_root

    return storage_root(os.environ.get(STORAGE_URL_ENV), os.environ.get("PROMOTION_WORK_DIR"))


def _bad_input_fails_without_retry(step: Callable[[], T]) -> T:
    """Run a task body; bad input (a window, a source, a DAG param, a hyperparameter, a rollback
    target, a rollout setting, a challenger that cannot be loaded or scored) or a refused move
    fails at once, since a retry would meet the same refusal. Transient errors still go through
    the task's retries."""
    from promotion.decisions import NothingToRollBack
    from registry import MoveRefused
    from workflow.modeling import ModelSpecError
    from workflow.params import ParamError
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
        ParamError,
        ModelSpecError,
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
        schedule=train_schedule(policy),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=model_default_args(policy),
        tags=["model-promotion", name, "train"],
        params={
            "as_of": Param(
                None,
                type=["null", "string"],
                title="Data up to",
                description="End of the holdout window (ISO date). Empty: the run's logical date.",
            )
        },
        doc_md=f"Check the policy's model section, extract `{policy.source.table or 'query'}`, "
        f"validate, train a {policy.task} `{policy.model.import_path}` pipeline"
        + (f" ({policy.tuning.trials} tuning trials)" if policy.tuning else "")
        + f", log it to MLflow and register it as `{name}@challenger`"
        + (
            f" when its validation {policy.promotion.metric} meets the gate "
            f"{policy.model.validation_gate:g}."
            if policy.model.validation_gate is not None
            else "."
        ),
    )
    def train():
        @task(retries=0)
        def check_policy() -> str:
            from airflow.sdk.exceptions import AirflowFailException

            from workflow import estimators

            path = policy_path(name, os.environ.get("PROMOTION_POLICIES_DIR") or None)
            try:
                return estimators.check_policy(policy, path)
            except PolicyError as error:
                raise AirflowFailException(str(error)) from error

        @task(**TRAINING.task_arguments())
        def extract_window() -> dict:
            from workflow import train as steps
            from workflow.params import parse_as_of

            context = get_current_context()
            fallback = context.get("logical_date") or context["dag_run"].run_after
            as_of = _bad_input_fails_without_retry(
                lambda: parse_as_of(context["params"].get("as_of"), fallback)
            )
            window = _bad_input_fails_without_retry(
                lambda: steps.extract(policy, as_of, _storage_root(), _run())
            )
            return window.to_xcom()

        @task(**TRAINING.task_arguments())
        def validate_window(extracted: dict) -> dict:
            from workflow import train as steps

            window = steps.TrainingWindow.from_xcom(extracted)
            return _bad_input_fails_without_retry(
                lambda: steps.validate(policy, window, _run())
            ).to_xcom()

        @task(**TRAINING.task_arguments())
        def train_candidate(validated: dict) -> dict:
            from workflow import train as steps
            from workflow.tuning import NoTrialCompleted

            try:
                return _bad_input_fails_without_retry(
                    lambda: steps.train_and_register(
                        policy,
                        steps.TrainingWindow.from_xcom(validated),
                        _run(),
                        artifact_root=os.environ.get("PROMOTION_ARTIFACT_ROOT"),
                        trigger=_trigger_tags(policy),
                    )
                ).to_xcom()
            except NoTrialCompleted as error:
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(str(error)) from error

        @task(outlets=[candidate_asset(policy)], pool=policy.alias_pool)
        def register_candidate(trained: dict) -> dict:
            from airflow.sdk.exceptions import AirflowFailException

            from workflow import train as steps

            try:
                return steps.name_challenger(policy, steps.Candidate.from_xcom(trained), _run())
            except steps.TrainingRejected as rejected:
                # No Asset event: nothing new for promote_<model> to evaluate.
                raise AirflowFailException(str(rejected)) from rejected

        @task
        def remove_temporary_files() -> str:
            from workflow.runs import remove_run_storage

            return remove_run_storage(_storage_root(), _run())

        extracted = extract_window()
        check_policy() >> extracted
        cleanup = remove_temporary_files().as_teardown(setups=extracted)
        # Teardown, so the run's state is that of the real work; all-done, so the files go even
        # when extraction itself failed half-way.
        cleanup.operator.trigger_rule = TriggerRule.ALL_DONE
        register_candidate(train_candidate(validate_window(extracted))) >> cleanup

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
        default_args=model_default_args(policy),
        tags=["model-promotion", name, "promote"],
        params={
            "version": Param(
                None,
                type=["null", "integer"],
                title="Challenger version",
                description="Version to evaluate. Empty: the version aliased `challenger`.",
            ),
            "as_of": Param(
                None,
                type=["null", "string"],
                title="Holdout up to",
                description="End of the policy's holdout window (ISO date), used for a version "
                "without lineage holdout tags (registered outside the workflow). Empty: the "
                "run's logical date.",
            ),
        },
        doc_md=f"Runs when `train_{name}` registers a challenger, or on demand for a version "
        f"aliased `challenger` by hand. Both models are scored on the challenger's holdout window "
        f"(the policy's most recent one for a version without lineage) by "
        f"`{policy.promotion.metric}`; the challenger is promoted "
        f"when the {policy.promotion.confidence:.0%} confidence interval of its improvement clears "
        f"the policy's bound ({policy.promotion.mode}) and every guardrail passes.",
    )
    def promote():
        @task
        def find_candidates() -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from workflow import promote as steps

            version = get_current_context()["params"].get("version")
            candidates = _bad_input_fails_without_retry(
                lambda: steps.find_candidates(policy, version, _run())
            )
            if candidates.challenger is None:
                raise AirflowSkipException(f"{name} has no `challenger`: nothing to evaluate")
            if candidates.challenger == candidates.champion:
                raise AirflowSkipException(f"v{candidates.challenger} is already champion")
            return candidates.to_xcom()

        @task
        def evaluate(candidates: dict) -> dict:
            from workflow import promote as steps
            from workflow.params import parse_as_of

            context = get_current_context()
            fallback = context.get("logical_date") or context["dag_run"].run_after
            now = _bad_input_fails_without_retry(
                lambda: parse_as_of(context["params"].get("as_of"), fallback)
            )
            return _bad_input_fails_without_retry(
                lambda: steps.evaluate(policy, steps.Candidates.from_xcom(candidates), _run(), now)
            ).to_xcom()

        @task(pool=policy.alias_pool)
        def conclude_evaluation(evaluation: dict) -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from workflow import promote as steps

            try:
                return _bad_input_fails_without_retry(
                    lambda: steps.conclude_evaluation(
                        policy, steps.Evaluation.from_xcom(evaluation), _run()
                    )
                ).to_xcom()
            except steps.NotPromoted as stop:
                raise AirflowSkipException(str(stop)) from stop

        @task(pool=policy.alias_pool)
        def promote_challenger(evaluation: dict, approval: dict | None = None) -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from workflow import promote as steps

            try:
                return steps.promote_evaluated(
                    policy, steps.Evaluation.from_xcom(evaluation), _run(), approval
                ).to_xcom()
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
        _outcome_tasks(finish(winner, approval))

    promote()


def _outcome_tasks(last) -> None:
    """End the promote DAG in one task per outcome, so the grid shows what a run decided; an
    outcome that needs a person (cannot_evaluate, failed) leaves the run failed."""

    @task.branch(trigger_rule=TriggerRule.ALL_DONE, retries=0)
    def choose_outcome() -> str:
        ti = get_current_context()["ti"]
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
        evaluation = ti.xcom_pull(task_ids="evaluate") or {}
        outcome = promote_outcome(states, evaluation.get("result", {}).get("verdict"))
        ti.xcom_push(key="outcome", value=outcome.describe())
        return outcome.outcome

    @task(retries=0, on_failure_callback=[])
    def stop_failed() -> None:
        from airflow.sdk.exceptions import AirflowFailException

        described = get_current_context()["ti"].xcom_pull(task_ids="choose_outcome", key="outcome")
        raise AirflowFailException(f"{described}: see that task's log")

    chosen = choose_outcome()
    last >> chosen
    for outcome in OUTCOMES:
        if outcome in FAILING_OUTCOMES:
            chosen >> stop_failed.override(task_id=outcome)()
        else:
            chosen >> EmptyOperator(task_id=outcome)


def _approval_tasks(policy: Policy, winner):
    """Slack approval between the verdict and the move: post, wait without a worker slot (HITL),
    settle. Anything but an approval stops the promotion; no answer in time is a rejection."""

    @task
    def request_approval(evaluation: dict) -> str:
        from workflow import approve
        from workflow.promote import Evaluation

        settings = approve.ApprovalSettings.from_environment()
        return approve.open_request(policy, Evaluation.from_xcom(evaluation), _run(), settings)

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
    margin, metric = policy.rollback.margin, policy.promotion.metric
    params = {
        # Markdown only (no plain description): the form shows description_md when there is no
        # description. It is the champion summary as of the last parse of this file.
        "version": Param(
            None,
            type=["null", "integer"],
            title="Version",
            description_md=version_form_description(name, champions_dir()),
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
            description=f"Allow a version that was never champion, or one that scores worse than "
            f"the champion on recent data by more than {margin} {metric}.",
        ),
        "as_of": Param(
            None,
            type=["null", "string"],
            title="Recent data up to",
            description="End of the recent data both versions are scored on (ISO date): the "
            "prediction log's newest labeled requests, else the source's newest window. Empty: "
            "the run's logical date.",
        ),
    }

    @dag(
        dag_id=f"rollback_{name}",
        description=f"One-click rollback of {name}@champion to the previous champion.",
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=model_default_args(policy, retries=1),
        tags=["model-promotion", name, "rollback"],
        params=params,
        doc_md=f"Trigger with the defaults to put the previous champion of `{name}` back: the "
        "most recent former champion that was never rolled back from or reverted.\n\n"
        "`plan_rollback` first shows the plan in its log and XCom, before anything moves: the "
        "current champion, the target and why, and both versions' "
        f"`{metric}` on the most recent labeled data: the gateway's prediction log (its labeled "
        f"requests of the last {policy.source.holdout_days} days, when at least "
        f"{policy.rollback.min_rows} logged every feature in the clear), else the source's "
        f"newest {policy.source.holdout_days}-day window; the plan says which, its time range "
        f"and row count, and is also the run's note when the `{RUN_NOTE_CONN_ID}` connection "
        f"is defined. A target worse than the champion by more than {margin} is refused unless "
        f"`force`; without {policy.rollback.min_rows} labeled rows the rollback goes ahead "
        "unscored, with a warning. Keys of the run's conf other than "
        f"{', '.join(f'`{key}`' for key in sorted(params))} are refused.",
    )
    def rollback():
        @task(retries=0)
        def plan_rollback() -> dict:
            from workflow import rollback as steps
            from workflow.params import parse_as_of, require_known_params

            context = get_current_context()
            run = context["dag_run"]
            values = context["params"]
            fallback = context.get("logical_date") or run.run_after

            def planned() -> steps.PlannedRollback:
                from workflow.run_note import RunNoteWriter, set_run_note

                require_known_params(run.conf, params)
                writer = RunNoteWriter.from_airflow_connection()
                return steps.plan(
                    policy,
                    values.get("version"),
                    bool(values.get("force")),
                    _run(),
                    parse_as_of(values.get("as_of"), fallback),
                    steps.RollbackSettings.from_environment(),
                    announce=lambda text: set_run_note(writer, _run(), text),
                )

            return _bad_input_fails_without_retry(planned).to_xcom()

        @task(pool=policy.alias_pool)
        def apply_rollback(planned: dict) -> dict:
            from workflow import rollback as steps

            reason = get_current_context()["params"]["reason"]
            return _bad_input_fails_without_retry(
                lambda: steps.apply(
                    policy, steps.PlannedRollback.from_xcom(planned), reason, _run()
                )
            )

        apply_rollback(plan_rollback())

    rollback()


def _settings():
    from workflow.rollout import RolloutSettings

    return RolloutSettings.from_environment()


def watch_timeout(policy: Policy) -> timedelta:
    """The longest the watch may take: every step at its maximum duration, plus a margin."""
    rules = policy.rollout
    periods = len(rules.traffic_steps) if rules.mode == "canary" else 1
    longest = timedelta(minutes=rules.max_step_minutes * periods)
    if rules.on_timeout == "hold":
        longest = max(longest, LONGEST_HOLD)
    return longest + TIMEOUT_MARGIN


def build_rollout_dag(policy: Policy) -> None:
    name, rules = policy.model_name, policy.rollout
    alias = rules.mode
    steps = " → ".join(f"{share:.0%}" for share in rules.traffic_steps)
    plan = f"canary at {steps} of traffic" if alias == "canary" else "shadow on every request"
    margin = f"{rules.margin:g}" if rules.margin is not None else "the task's default"
    guard = (
        f"then the new champion is watched for {rules.guard_window_minutes:g} minutes and put back "
        f"when it falls {rules.guard_margin:g} below the previous champion's level"
        if rules.guard_window_minutes
        else "no guard window"
    )

    @dag(
        dag_id=f"rollout_{name}",
        description=f"{alias.capitalize()} rollout of {name}: promote or revert on live traffic.",
        schedule=[rollout_asset(policy)],
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=model_default_args(policy),
        tags=["model-promotion", name, "rollout"],
        doc_md=f"Runs when `promote_{name}` hands an approved winner to `{name}@{alias}`: "
        f"{plan}, checked every {rules.check_interval_seconds:g} s against the champion on the "
        f"gateway's labeled predictions (anytime-valid non-inferiority test, alpha "
        f"{rules.alpha:g}, margin {margin}); each step needs {rules.min_labeled_per_step} labels "
        f"per arm within {rules.max_step_minutes:g} minutes (else: {rules.on_timeout}). Passed: "
        f"`champion` moves; failed: `{alias}` is cleared, the version's rollout state (its "
        f"`rollout.state` tag) says reverted and why, Slack told; {guard}.",
    )
    def rollout():
        @task(pool=policy.alias_pool)
        def begin_rollout() -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from workflow import rollout as steps

            begun = _bad_input_fails_without_retry(lambda: steps.begin(policy, _run()))
            if begun is None:
                raise AirflowSkipException(f"no version of {name} holds `{alias}`: nothing to do")
            return begun.to_xcom()

        @task.sensor(
            poke_interval=rules.check_interval_seconds,
            mode="reschedule",
            timeout=watch_timeout(policy),
        )
        def watch_rollout(begun: dict) -> PokeReturnValue:
            from workflow import rollout as steps

            watch = steps.RolloutWatch.from_xcom(begun)
            verdict = _bad_input_fails_without_retry(
                lambda: steps.check(policy, watch, _run(), _settings())
            )
            done = verdict is not None
            return PokeReturnValue(is_done=done, xcom_value=verdict.to_xcom() if done else None)

        @task(pool=policy.alias_pool)
        def conclude_rollout(begun: dict, verdict: dict) -> dict:
            from workflow import rollout as steps

            watch, final = steps.RolloutWatch.from_xcom(begun), steps.Verdict.from_xcom(verdict)
            return _bad_input_fails_without_retry(
                lambda: steps.conclude(policy, watch, final, _run(), _settings())
            ).to_xcom()

        @task(trigger_rule=TriggerRule.ONE_FAILED, pool=policy.alias_pool)
        def revert_unfinished() -> dict | None:
            from workflow import rollout as steps

            outcome = _bad_input_fails_without_retry(
                lambda: steps.revert_unfinished(policy, _run(), _settings())
            )
            return None if outcome is None else outcome.to_xcom()

        begun = begin_rollout()
        verdict = watch_rollout(begun)
        outcome = conclude_rollout(begun, verdict)
        verdict >> revert_unfinished()
        if rules.guard_window_minutes:
            _guard_tasks(policy, outcome)

    rollout()


def _guard_tasks(policy: Policy, outcome) -> None:
    """Watch a newly promoted champion for the guard window; put the previous one back if it
    underperforms."""
    rules = policy.rollout

    @task.sensor(
        poke_interval=rules.check_interval_seconds,
        mode="reschedule",
        timeout=timedelta(minutes=rules.guard_window_minutes) + TIMEOUT_MARGIN,
    )
    def guard_champion(promoted: dict) -> PokeReturnValue:
        from airflow.sdk.exceptions import AirflowSkipException

        from workflow import rollout as steps

        outcome = steps.RolloutOutcome.from_xcom(promoted)
        if outcome.verdict != "promoted":
            raise AirflowSkipException(f"v{outcome.version} was not promoted: nothing to guard")
        guard = _bad_input_fails_without_retry(
            lambda: steps.guard_check(policy, outcome, _settings())
        )
        done = guard is not None
        return PokeReturnValue(is_done=done, xcom_value=guard.to_xcom() if done else None)

    @task(pool=policy.alias_pool)
    def settle_guard(promoted: dict, guard: dict) -> dict:
        from workflow import rollout as steps

        outcome, verdict = steps.RolloutOutcome.from_xcom(promoted), steps.Verdict.from_xcom(guard)
        return _bad_input_fails_without_retry(
            lambda: steps.settle_guard(policy, outcome, verdict, _run(), _settings())
        ).to_xcom()

    settle_guard(outcome, guard_champion(outcome))


def _trigger_tags(policy: Policy) -> dict[str, str]:
    """Which trigger started this training run, from the retrain Asset events that scheduled it."""
    from workflow.monitor import trigger_tags

    context = get_current_context()
    events = context.get("triggering_asset_events") or {}
    extras = [
        event.extra or {}
        for asset in events
        if getattr(asset, "uri", None) == policy.retrain_asset_uri
        for event in events[asset]
    ]
    run_type = context["dag_run"].run_type  # an Enum: str() of it is "DagRunType.MANUAL"
    return trigger_tags(getattr(run_type, "value", str(run_type)), extras, _run().triggered_by)


def _active_runs(policy: Policy) -> list[str]:
    """The train, promote and rollout DAGs of the model with a queued or running run (asked of
    Airflow through the task's own API client)."""
    name = policy.model_name
    dag_ids = [f"train_{name}", f"promote_{name}"]
    if policy.rollout.mode != "none":
        dag_ids.append(f"rollout_{name}")
    ti = get_current_context()["ti"]
    return [d for d in dag_ids if ti.get_dr_count(dag_id=d, states=["queued", "running"])]


def build_monitor_dag(policy: Policy) -> None:
    name, triggers = policy.model_name, policy.triggers
    watched = [k for k in ("performance", "data_volume", "drift") if getattr(triggers, k)]

    @dag(
        dag_id=f"monitor_{name}",
        description=f"Check {name}@champion for retraining triggers: {', '.join(watched)}.",
        schedule=CronTriggerTimetable(cron_expression(triggers.check_every), timezone="UTC"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=model_default_args(policy),
        tags=["model-promotion", name, "monitor"],
        doc_md=f"Every `{triggers.check_every}`: computes {', '.join(watched)} for the champion, "
        f"records one monitor check, and when a trigger holds (at most one training per "
        f"{triggers.cooldown_hours:g} h and {triggers.max_per_day} a day, none while a training, "
        f"promotion or rollout of `{name}` runs) updates the Asset that starts `train_{name}`, "
        "with the trigger and its numbers in the event's extra.",
    )
    def monitor():
        @task
        def check_triggers() -> dict:
            from workflow import monitor as steps

            settings = steps.MonitorSettings.from_environment()
            return steps.check(policy, _run(), settings, _active_runs(policy)).to_xcom()

        @task(outlets=[retrain_asset(policy)])
        def start_training(checked: dict) -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from workflow.monitor import CheckResult

            result = CheckResult.from_xcom(checked)
            if not result.fired or result.extra is None:
                raise AirflowSkipException(f"{result.outcome}: {result.reason}")
            get_current_context()["outlet_events"][retrain_asset(policy)].extra = result.extra
            return result.extra

        start_training(check_triggers())

    monitor()


POLICIES, _POLICY_ERRORS = load_valid_policies(os.environ.get("PROMOTION_POLICIES_DIR") or None)
for _policy in POLICIES:
    build_train_dag(_policy)
    build_promote_dag(_policy)
    build_rollback_dag(_policy)
    if _policy.rollout.mode != "none":
        build_rollout_dag(_policy)
    if _policy.triggers.monitored:
        build_monitor_dag(_policy)
