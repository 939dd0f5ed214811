"""DAGs generated from policies/*.yaml whose rollout mode is canary or shadow: rollout_<model>.

Wiring only. promote_<model> hands an approved winner over through the `<model>_rollout` Asset;
the task bodies live in `workflow/rollout.py` and are imported inside each task, so parsing this
file loads Airflow, the standard library and the policy loader, nothing heavier.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from airflow.sdk import Asset, PokeReturnValue, TriggerRule, dag, get_current_context, task

from policies import Policy, load_valid_policies

T = TypeVar("T")
START_DATE = datetime(2026, 1, 1)
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


def _run():
    from workflow.runs import RunContext

    return RunContext.of(get_current_context()["dag_run"])


def _settings():
    from workflow.rollout import RolloutSettings

    return RolloutSettings.from_environment()


def _refusal_fails_without_retry(step: Callable[[], T]) -> T:
    """Run a task body; a missing setting, a bad policy value or a refused move fails at once,
    since a retry would meet the same refusal. Transient errors still go through the retries."""
    from workflow.rollout import RolloutError

    try:
        return step()
    except RolloutError as error:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(error)) from error


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
    guard = (
        f"then the new champion is watched for {rules.guard_window_minutes:g} minutes and put back "
        f"when it falls {rules.guard_margin:g} below the previous champion's level"
        if rules.guard_window_minutes
        else "no guard window"
    )

    @dag(
        dag_id=f"rollout_{name}",
        description=f"{alias.capitalize()} rollout of {name}: promote or revert on live traffic.",
        schedule=[Asset(name=f"{name}_rollout", uri=policy.rollout_asset_uri)],
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=["model-promotion", name, "rollout"],
        doc_md=f"Runs when `promote_{name}` hands an approved winner to `{name}@{alias}`: "
        f"{plan}, checked every {rules.check_interval_seconds:g} s against the champion on the "
        f"gateway's labeled predictions (anytime-valid test, alpha {rules.alpha:g}); each step "
        f"needs {rules.min_labeled_per_step} labels per arm within {rules.max_step_minutes:g} "
        f"minutes (else: {rules.on_timeout}). Passed: `champion` moves; failed: `{alias}` is "
        f"cleared, the version tagged `rollout.verdict=reverted`, Slack told; {guard}.",
    )
    def rollout():
        @task(pool=policy.alias_pool)
        def begin_rollout() -> dict:
            from airflow.sdk.exceptions import AirflowSkipException

            from workflow import rollout as steps

            begun = _refusal_fails_without_retry(lambda: steps.begin(policy, _run()))
            if begun is None:
                raise AirflowSkipException(f"no version of {name} holds `{alias}`: nothing to do")
            return begun

        @task.sensor(
            poke_interval=rules.check_interval_seconds,
            mode="reschedule",
            timeout=watch_timeout(policy),
        )
        def watch_rollout(begun: dict) -> PokeReturnValue:
            from workflow import rollout as steps

            verdict = _refusal_fails_without_retry(
                lambda: steps.check(policy, begun, _run(), _settings())
            )
            return PokeReturnValue(is_done=verdict is not None, xcom_value=verdict)

        @task(pool=policy.alias_pool)
        def conclude_rollout(begun: dict, verdict: dict) -> dict:
            from workflow import rollout as steps

            return _refusal_fails_without_retry(
                lambda: steps.conclude(policy, begun, verdict, _run(), _settings())
            )

        @task(trigger_rule=TriggerRule.ONE_FAILED, pool=policy.alias_pool)
        def revert_unfinished() -> dict | None:
            from workflow import rollout as steps

            return _refusal_fails_without_retry(
                lambda: steps.revert_unfinished(policy, _run(), _settings())
            )

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

        if promoted["verdict"] != "promoted":
            raise AirflowSkipException(f"v{promoted['version']} was not promoted: nothing to guard")
        guard = _refusal_fails_without_retry(
            lambda: steps.guard_check(policy, promoted, _settings())
        )
        return PokeReturnValue(is_done=guard is not None, xcom_value=guard)

    @task(pool=policy.alias_pool)
    def settle_guard(promoted: dict, guard: dict) -> dict:
        from workflow import rollout as steps

        return _refusal_fails_without_retry(
            lambda: steps.settle_guard(policy, promoted, guard, _run(), _settings())
        )

    settle_guard(outcome, guard_champion(outcome))


POLICIES, _POLICY_ERRORS = load_valid_policies(os.environ.get("PROMOTION_POLICIES_DIR") or None)
for _policy in POLICIES:
    if _policy.rollout.mode != "none":
        build_rollout_dag(_policy)
