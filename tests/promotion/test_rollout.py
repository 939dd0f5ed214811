from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from promotion.rollout import (
    ArmStats,
    PairedStats,
    RolloutConfig,
    ShadowStats,
    StepStats,
    analyze_shadow,
    analyze_step,
    guard_window_verdict,
    row_outcomes,
)

CANARY = RolloutConfig(traffic_steps=(0.05, 0.25, 0.5), min_labeled_per_step=500)
SHADOW = RolloutConfig(mode="shadow", min_labeled_per_step=500)
HOUR = 3600.0


def step(champion: tuple[int, int], challenger: tuple[int, int], **challenger_health) -> StepStats:
    """Stats of a step from (labeled, correct) per arm; request health defaults to healthy."""
    health = {"requests": max(challenger[0], 200), "errors": 0, "p99_latency_ms": 80.0}
    health.update(challenger_health)
    return StepStats(
        champion=ArmStats(champion[0], champion[1], requests=20 * champion[0] + 200),
        challenger=ArmStats(challenger[0], challenger[1], **health),
    )


def simulate_canary_reverts(
    config: RolloutConfig,
    challenger_accuracy: float,
    *,
    runs: int,
    looks: int,
    seed: int,
    champion_accuracy: float = 0.90,
    batch: int = 10,
) -> float:
    """Share of simulated 5% canaries reverted when the verdict is read after every batch."""
    rng = np.random.default_rng(seed)
    champion_batch = batch * 19
    champion = np.cumsum(rng.binomial(champion_batch, champion_accuracy, (runs, looks)), axis=1)
    challenger = np.cumsum(rng.binomial(batch, challenger_accuracy, (runs, looks)), axis=1)
    reverted = 0
    for run in range(runs):
        for look in range(looks):
            stats = step(
                (champion_batch * (look + 1), int(champion[run, look])),
                (batch * (look + 1), int(challenger[run, look])),
            )
            if analyze_step(config, 0, stats, elapsed_seconds=0.0).action == "revert":
                reverted += 1
                break
    return reverted / runs


# Never steps up and never times out, so every look is a chance to revert falsely.
ENDLESS_STEP = dataclasses.replace(CANARY, min_labeled_per_step=10**9, max_step_seconds=1e12)


def test_equal_models_are_rarely_reverted_although_checked_after_every_batch():
    runs = 200
    share = simulate_canary_reverts(ENDLESS_STEP, 0.90, runs=runs, looks=100, seed=7)
    # alpha plus three standard errors of the simulation
    assert share <= 0.05 + 3 * (0.05 * 0.95 / runs) ** 0.5


def test_clearly_worse_challenger_is_reverted_in_almost_every_simulated_canary():
    share = simulate_canary_reverts(ENDLESS_STEP, 0.80, runs=100, looks=60, seed=11)
    assert share >= 0.95


def test_clearly_worse_challenger_is_reverted_with_the_numbers():
    verdict = analyze_step(CANARY, 0, step((5700, 5130), (300, 240)), elapsed_seconds=HOUR)
    evidence = verdict.evidence
    assert verdict.action == "revert"
    assert "worse than the champion by more than the margin" in verdict.reasons[0]
    assert "0.8000" in verdict.reasons[-1] and "0.9000" in verdict.reasons[-1]
    assert "upper bound" in verdict.reasons[-1] and "below -margin" in verdict.reasons[-1]
    assert evidence.e_value >= evidence.threshold == 20
    assert evidence.upper_bound is not None and evidence.upper_bound < -evidence.margin
    assert evidence.ci_high is not None and evidence.ci_high < 0


def test_the_default_margin_is_one_and_a_half_accuracy_points_or_a_tenth_of_the_squared_error():
    assert CANARY.non_inferiority_margin == 0.015
    assert dataclasses.replace(CANARY, task="regression").non_inferiority_margin == 0.10
    assert dataclasses.replace(CANARY, margin=0.05).non_inferiority_margin == 0.05
    with pytest.raises(ValueError, match="margin"):
        dataclasses.replace(CANARY, margin=0.0)


def test_equal_challenger_with_enough_labels_steps_up_to_the_next_traffic_share():
    verdict = analyze_step(CANARY, 0, step((9500, 8550), (500, 450)), elapsed_seconds=HOUR)
    assert verdict.action == "step_up"
    assert "step up to 25%" in verdict.reasons[0]


def paired_step(labeled: int, challenger_only: int, champion_only: int, both: int) -> StepStats:
    """A step whose `labeled` canary requests the champion scored too: `both` right for both
    models, the others right for one model only; the champion's own arm is as accurate."""
    pairs = PairedStats(
        labeled=labeled,
        challenger_correct=both + challenger_only,
        champion_correct=both + champion_only,
        both_correct=both,
    )
    stats = step(
        (labeled, pairs.champion_correct), (labeled, pairs.challenger_correct), requests=labeled
    )
    return dataclasses.replace(stats, paired=pairs)


def test_last_step_promotes_a_challenger_shown_non_inferior_on_pairs():
    # 2000 requests scored by both, 40 right for one model only each way: equal, and sure of it.
    verdict = analyze_step(CANARY, 2, paired_step(2000, 20, 20, 1780), elapsed_seconds=HOUR)
    assert verdict.action == "promote"
    assert "non-inferior" in verdict.reasons[0]
    assert "lower bound" in verdict.reasons[-1] and "clears -margin" in verdict.reasons[-1]
    assert verdict.evidence.paired_labeled == 2000
    assert verdict.evidence.lower_bound > -verdict.evidence.margin


def test_last_step_with_enough_labels_but_no_evidence_of_non_inferiority_waits():
    # 500 labels per arm, arm against arm: equal accuracies, but far too uncertain to promote.
    verdict = analyze_step(CANARY, 2, step((500, 450), (500, 452)), elapsed_seconds=HOUR)
    assert verdict.action == "wait"
    assert "waiting until the challenger is shown non-inferior" in verdict.reasons[0]
    assert "undecided" in verdict.reasons[-1]
    assert verdict.evidence.lower_bound <= -verdict.evidence.margin


def test_pairs_decide_where_the_same_labels_arm_against_arm_do_not():
    stats = paired_step(2000, 20, 20, 1780)
    unpaired = dataclasses.replace(stats, paired=None)
    assert analyze_step(CANARY, 2, unpaired, elapsed_seconds=HOUR).action == "wait"
    assert analyze_step(CANARY, 2, stats, elapsed_seconds=HOUR).action == "promote"


def test_last_step_at_maximum_duration_without_non_inferiority_does_what_the_policy_says():
    stats = step((500, 450), (500, 452))
    reverted = analyze_step(CANARY, 2, stats, elapsed_seconds=CANARY.max_step_seconds)
    held = analyze_step(
        dataclasses.replace(CANARY, on_timeout="hold"), 2, stats, CANARY.max_step_seconds
    )
    assert reverted.action == "revert" and "not yet" not in reverted.reasons[0]
    assert "non-inferior" in reverted.reasons[0] and "fail closed" in reverted.reasons[0]
    assert held.action == "wait" and "on_timeout is 'hold'" in held.reasons[0]


def test_a_wider_margin_promotes_what_the_default_margin_waits_on():
    stats = step((3000, 2700), (3000, 2700))
    assert analyze_step(CANARY, 2, stats, elapsed_seconds=HOUR).action == "wait"
    wide = dataclasses.replace(CANARY, margin=0.05)
    assert analyze_step(wide, 2, stats, elapsed_seconds=HOUR).action == "promote"


def test_paired_stats_with_impossible_counts_are_refused():
    with pytest.raises(ValueError, match="both_correct"):
        PairedStats(labeled=100, challenger_correct=90, champion_correct=20, both_correct=50)


def test_step_waits_for_labels_before_its_maximum_duration():
    verdict = analyze_step(CANARY, 1, step((900, 810), (300, 272)), elapsed_seconds=HOUR)
    assert verdict.action == "wait"
    assert "300 challenger" in verdict.reasons[0] and "need 500" in verdict.reasons[0]


def test_step_at_maximum_duration_without_enough_labels_reverts_by_default():
    config = dataclasses.replace(CANARY, max_step_seconds=6 * HOUR)
    verdict = analyze_step(config, 1, step((900, 810), (300, 272)), elapsed_seconds=6 * HOUR)
    assert verdict.action == "revert"
    assert "maximum duration" in verdict.reasons[0] and "fail closed" in verdict.reasons[0]


def test_step_at_maximum_duration_holds_when_the_policy_says_hold():
    config = dataclasses.replace(CANARY, max_step_seconds=6 * HOUR, on_timeout="hold")
    verdict = analyze_step(config, 1, step((900, 810), (300, 272)), elapsed_seconds=7 * HOUR)
    assert verdict.action == "wait"
    assert "on_timeout is 'hold'" in verdict.reasons[0]


def test_error_rate_guardrail_reverts_and_names_the_guardrail():
    stats = step((9500, 8550), (500, 450), requests=500, errors=25)
    verdict = analyze_step(CANARY, 0, stats, elapsed_seconds=HOUR)
    assert verdict.action == "revert"
    assert verdict.reasons[0].startswith("error-rate guardrail")
    assert "25 of 500" in verdict.reasons[0]


def test_failing_challenger_trips_the_error_guardrail_before_the_minimum_request_count():
    stats = step((190, 171), (0, 0), requests=5, errors=5)
    verdict = analyze_step(CANARY, 0, stats, elapsed_seconds=60)
    assert verdict.action == "revert"
    assert verdict.reasons[0].startswith("error-rate guardrail")


def test_a_single_early_error_does_not_end_the_step():
    stats = step((190, 171), (10, 9), requests=10, errors=1)
    assert analyze_step(CANARY, 0, stats, elapsed_seconds=60).action == "wait"


def test_p99_latency_guardrail_reverts_and_names_the_guardrail():
    stats = step((9500, 8550), (500, 450), requests=500, p99_latency_ms=900.0)
    verdict = analyze_step(CANARY, 0, stats, elapsed_seconds=HOUR)
    assert verdict.action == "revert"
    assert verdict.reasons[0].startswith("p99-latency guardrail")
    assert "900 ms" in verdict.reasons[0]


def test_slow_first_requests_do_not_trip_the_latency_guardrail():
    stats = step((190, 171), (10, 9), requests=10, p99_latency_ms=3000.0)
    assert analyze_step(CANARY, 0, stats, elapsed_seconds=60).action == "wait"


def test_evidence_from_earlier_steps_carries_into_the_current_step():
    # 0.85 against 0.90: not enough in any one step, enough over the three.
    first = step((9500, 8550), (500, 425))
    second = step((1500, 1350), (500, 425))
    third = step((500, 450), (500, 425))
    alone = analyze_step(CANARY, 2, third, elapsed_seconds=HOUR)
    together = analyze_step(CANARY, 2, third, elapsed_seconds=HOUR, earlier_steps=[first, second])
    assert alone.action == "wait"
    assert together.action == "revert"
    assert together.evidence.challenger_labeled == 1500


def test_error_rate_metric_reports_error_rates_and_reverts_the_same_way():
    config = dataclasses.replace(CANARY, metric="error_rate")
    verdict = analyze_step(config, 0, step((5700, 5130), (300, 240)), elapsed_seconds=HOUR)
    assert verdict.action == "revert"
    assert verdict.evidence.challenger_value == pytest.approx(0.20)
    assert verdict.evidence.champion_value == pytest.approx(0.10)
    assert verdict.evidence.difference == pytest.approx(0.10)
    assert verdict.evidence.ci_low is not None and verdict.evidence.ci_low > 0


def test_evidence_is_plain_data_for_tags():
    verdict = analyze_step(CANARY, 0, step((5700, 5130), (300, 240)), elapsed_seconds=HOUR)
    values = verdict.evidence.as_dict()
    assert values["challenger_labeled"] == 300
    assert all(isinstance(v, (int, float, str, type(None))) for v in values.values())


def test_step_index_outside_the_policy_steps_is_refused():
    with pytest.raises(ValueError, match="step_index"):
        analyze_step(CANARY, 3, step((500, 450), (500, 450)), elapsed_seconds=0)


def test_invalid_config_names_every_bad_field():
    with pytest.raises(ValueError) as error:
        RolloutConfig(alpha=1.5, traffic_steps=(0.5, 0.25))
    assert "alpha" in str(error.value) and "traffic_steps" in str(error.value)


def test_impossible_counts_are_refused():
    with pytest.raises(ValueError, match="correct"):
        ArmStats(labeled=10, correct=11)


arms = st.integers(min_value=0, max_value=3000).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(min_value=0, max_value=n))
)


@settings(max_examples=300, deadline=None)
@given(champion=arms, challenger=arms, elapsed=st.floats(min_value=0, max_value=10 * HOUR))
def test_step_never_goes_up_before_both_arms_have_the_minimum_labels(champion, challenger, elapsed):
    verdict = analyze_step(CANARY, 0, step(champion, challenger), elapsed_seconds=elapsed)
    if min(champion[0], challenger[0]) < CANARY.min_labeled_per_step:
        assert verdict.action in ("wait", "revert")


@settings(max_examples=300, deadline=None)
@given(
    champion=arms,
    challenger=arms,
    more_wrong=st.integers(min_value=1, max_value=500),
    flipped=st.integers(min_value=0, max_value=500),
)
def test_more_evidence_against_the_challenger_never_turns_a_revert_into_a_step_up(
    champion, challenger, more_wrong, flipped
):
    before = analyze_step(CANARY, 0, step(champion, challenger), elapsed_seconds=HOUR)
    worse = (challenger[0] + more_wrong, max(challenger[1] - flipped, 0))
    after = analyze_step(CANARY, 0, step(champion, worse), elapsed_seconds=HOUR)
    if before.action == "revert":
        assert after.action == "revert"


@settings(max_examples=200, deadline=None)
@given(champion=arms, challenger=arms, errors=st.integers(min_value=0, max_value=200))
def test_breaking_a_guardrail_always_reverts(champion, challenger, errors):
    requests = max(challenger[0], CANARY.min_guardrail_requests)
    stats = step(champion, challenger, requests=requests, errors=min(errors, requests))
    verdict = analyze_step(CANARY, 0, stats, elapsed_seconds=HOUR)
    if min(errors, requests) > CANARY.max_error_rate * requests:
        assert verdict.action == "revert"
        assert any("error-rate guardrail" in reason for reason in verdict.reasons)


def shadow(
    labeled: int,
    champion_correct: int,
    challenger_correct: int,
    both_correct: int,
    *,
    compared: int = 1000,
    agreed: int = 950,
) -> ShadowStats:
    return ShadowStats(
        champion=ArmStats(labeled, champion_correct, requests=compared),
        challenger=ArmStats(labeled, challenger_correct, requests=compared, p99_latency_ms=90.0),
        compared=compared,
        agreed=agreed,
        both_correct=both_correct,
    )


def test_label_flipped_challenger_in_shadow_is_reverted():
    stats = shadow(200, 180, 20, 0, agreed=100)
    verdict = analyze_shadow(SHADOW, stats, elapsed_seconds=HOUR)
    assert verdict.action == "revert"
    assert "worse than the champion on the same requests" in verdict.reasons[0]
    assert verdict.evidence.agreement_rate == pytest.approx(0.10)


def test_shadow_reverts_on_low_agreement_before_any_label_arrives():
    config = dataclasses.replace(SHADOW, min_agreement=0.8)
    verdict = analyze_shadow(config, shadow(0, 0, 0, 0, agreed=500), elapsed_seconds=HOUR)
    assert verdict.action == "revert"
    assert "min_agreement" in verdict.reasons[0] and "50.00%" in verdict.reasons[0]


def test_shadow_with_a_near_copy_of_the_champion_promotes_once_enough_labels_arrive():
    verdict = analyze_shadow(SHADOW, shadow(2000, 1800, 1802, 1780), elapsed_seconds=HOUR)
    assert verdict.action == "promote"
    assert "agreement 95.00%" in verdict.reasons[0]
    assert verdict.evidence.paired_labeled == 2000


def test_shadow_with_too_few_pairs_to_show_non_inferiority_waits():
    verdict = analyze_shadow(SHADOW, shadow(600, 540, 542, 510), elapsed_seconds=HOUR)
    assert verdict.action == "wait"
    assert "waiting until the challenger is shown non-inferior" in verdict.reasons[0]


def test_shadow_at_maximum_duration_without_enough_labels_reverts_by_default():
    config = dataclasses.replace(SHADOW, max_step_seconds=HOUR)
    verdict = analyze_shadow(config, shadow(100, 90, 90, 85), elapsed_seconds=2 * HOUR)
    assert verdict.action == "revert"
    assert "maximum duration" in verdict.reasons[0]


def test_shadow_stats_with_impossible_pair_counts_are_refused():
    with pytest.raises(ValueError, match="both_correct"):
        shadow(100, 90, 20, 50)


def test_shadow_config_is_refused_by_the_canary_analysis():
    with pytest.raises(ValueError, match="canary"):
        analyze_step(SHADOW, 0, step((500, 450), (500, 450)), elapsed_seconds=0)


def test_guard_window_reverts_a_champion_that_degraded_after_promotion():
    verdict = guard_window_verdict(CANARY, ArmStats(1000, 850, requests=1000), 0.90)
    assert verdict.action == "revert"
    assert "below the previous champion's level" in verdict.reasons[0]
    assert "0.8500" in verdict.reasons[-1] and "floor 0.8900" in verdict.reasons[-1]


def test_guard_window_keeps_a_champion_within_the_margin():
    verdict = guard_window_verdict(CANARY, ArmStats(5000, 4480, requests=5000), 0.90)
    assert verdict.action == "keep"


def test_guard_window_keeps_a_champion_without_labels_yet():
    verdict = guard_window_verdict(CANARY, ArmStats(0, 0, requests=50), 0.90)
    assert verdict.action == "keep"
    assert "no labeled outcomes" in verdict.reasons[-1]


def test_guard_window_reads_the_previous_level_as_an_error_rate_when_the_metric_is():
    config = dataclasses.replace(CANARY, metric="error_rate")
    worse = guard_window_verdict(config, ArmStats(1000, 850, requests=1000), 0.10)
    fine = guard_window_verdict(config, ArmStats(1000, 900, requests=1000), 0.10)
    assert (worse.action, fine.action) == ("revert", "keep")
    assert worse.evidence.floor == pytest.approx(0.11)


def test_guard_window_reverts_a_champion_breaking_a_guardrail():
    verdict = guard_window_verdict(CANARY, ArmStats(1000, 900, requests=1000, errors=100), 0.90)
    assert verdict.action == "revert"
    assert verdict.reasons[0].startswith("error-rate guardrail")


def test_guard_window_rarely_reverts_a_champion_exactly_at_its_floor():
    rng = np.random.default_rng(3)
    runs, looks, batch = 300, 80, 25
    correct = np.cumsum(rng.binomial(batch, 0.89, (runs, looks)), axis=1)
    reverted = 0
    for run in range(runs):
        for look in range(looks):
            n = batch * (look + 1)
            stats = ArmStats(n, int(correct[run, look]), requests=n)
            if guard_window_verdict(CANARY, stats, 0.90).action == "revert":
                reverted += 1
                break
    assert reverted / runs <= 0.05 + 3 * (0.05 * 0.95 / runs) ** 0.5


def test_rollout_decisions_import_no_io_libraries():
    code = (
        "import sys, promotion.rollout; "
        "print(sorted({'mlflow', 'airflow', 'slack_sdk', 'sqlalchemy', 'pandas'} & "
        "{name.split('.')[0] for name in sys.modules}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# Regression: the outcome of a row is its squared error, and the arms are compared on their mean.
REGRESSION = dataclasses.replace(CANARY, task="regression")
ENDLESS_REGRESSION = dataclasses.replace(ENDLESS_STEP, task="regression")


def errors_of(labeled: int, mean: float, spread: float | None = None, **health) -> ArmStats:
    """An arm whose squared errors have the given mean and variance (by default 2·mean², the
    variance of squared normal residuals)."""
    variance = 2 * mean * mean if spread is None else spread
    return ArmStats(
        labeled,
        0,
        requests=health.pop("requests", max(labeled, 200)),
        outcome_sum=labeled * mean,
        outcome_sq_sum=labeled * (variance + mean * mean),
        **health,
    )


def simulate_regression_reverts(
    config: RolloutConfig, challenger_sd: float, *, runs: int, looks: int, seed: int
) -> float:
    """Share of simulated 5% regression canaries reverted, read after every batch of labels;
    residuals are normal, the champion's with standard deviation 1."""
    rng = np.random.default_rng(seed)
    batch, champion_batch = 10, 190
    reverted = 0
    for _ in range(runs):
        a = rng.normal(0, 1, (looks, champion_batch)) ** 2
        b = rng.normal(0, challenger_sd, (looks, batch)) ** 2
        sums_a, squares_a = np.cumsum(a.sum(axis=1)), np.cumsum((a * a).sum(axis=1))
        sums_b, squares_b = np.cumsum(b.sum(axis=1)), np.cumsum((b * b).sum(axis=1))
        for look in range(looks):
            stats = StepStats(
                champion=ArmStats(
                    champion_batch * (look + 1),
                    0,
                    requests=champion_batch * (look + 1),
                    outcome_sum=float(sums_a[look]),
                    outcome_sq_sum=float(squares_a[look]),
                ),
                challenger=ArmStats(
                    batch * (look + 1),
                    0,
                    requests=max(batch * (look + 1), 200),
                    outcome_sum=float(sums_b[look]),
                    outcome_sq_sum=float(squares_b[look]),
                ),
            )
            if analyze_step(config, 0, stats, elapsed_seconds=0.0).action == "revert":
                reverted += 1
                break
    return reverted / runs


def test_a_regressor_exactly_at_the_margin_is_rarely_reverted_although_checked_after_every_batch():
    runs = 150
    at_margin = (1 + REGRESSION.non_inferiority_margin) ** 0.5  # mean squared error 1.1 × 1
    share = simulate_regression_reverts(ENDLESS_REGRESSION, at_margin, runs=runs, looks=60, seed=5)
    assert share <= REGRESSION.alpha + 3 * (0.05 * 0.95 / runs) ** 0.5


def test_a_regressor_with_much_larger_errors_is_reverted_in_almost_every_simulated_canary():
    share = simulate_regression_reverts(ENDLESS_REGRESSION, 1.6, runs=100, looks=60, seed=13)
    assert share >= 0.95


def test_a_regression_verdict_reports_mean_squared_errors():
    stats = StepStats(champion=errors_of(2000, 4.0), challenger=errors_of(600, 12.0))
    verdict = analyze_step(REGRESSION, 0, stats, elapsed_seconds=HOUR)
    evidence = verdict.evidence
    assert verdict.action == "revert"
    assert (evidence.metric, evidence.champion_value, evidence.challenger_value) == (
        "squared_error",
        pytest.approx(4.0),
        pytest.approx(12.0),
    )
    assert evidence.difference == pytest.approx(8.0) and evidence.ci_low > 0


def test_an_equal_regressor_with_enough_labels_steps_up():
    stats = StepStats(champion=errors_of(2000, 4.0), challenger=errors_of(600, 4.0))
    assert analyze_step(REGRESSION, 0, stats, elapsed_seconds=HOUR).action == "step_up"


def test_a_regression_step_waits_until_each_arm_has_two_labels():
    stats = StepStats(champion=errors_of(1, 4.0, 0.0), challenger=errors_of(1, 400.0, 0.0))
    verdict = analyze_step(REGRESSION, 0, stats, elapsed_seconds=0.0)
    assert verdict.action == "wait" and verdict.evidence.difference is None


def test_the_regression_effect_size_defaults_from_the_expected_effect():
    assert REGRESSION.relative_error_effect == pytest.approx(20 * REGRESSION.expected_effect)
    tuned = dataclasses.replace(REGRESSION, error_effect=0.5)
    assert tuned.relative_error_effect == 0.5
    with pytest.raises(ValueError, match="error_effect"):
        dataclasses.replace(REGRESSION, error_effect=0.0)
    with pytest.raises(ValueError, match="task"):
        dataclasses.replace(REGRESSION, task="ranking")


regression_arms = st.tuples(
    st.integers(min_value=2, max_value=5000),
    st.floats(min_value=1e-3, max_value=1e6),
    st.floats(min_value=0.1, max_value=4.0),
)


@settings(max_examples=300, deadline=None)
@given(champion=regression_arms, challenger_n=st.integers(min_value=300, max_value=5000))
def test_a_challenger_with_three_times_the_squared_error_is_always_reverted(champion, challenger_n):
    n, mean, _ = champion
    stats = StepStats(
        champion=errors_of(max(n, 300), mean), challenger=errors_of(challenger_n, 3 * mean)
    )
    assert analyze_step(REGRESSION, 0, stats, elapsed_seconds=HOUR).action == "revert"


@settings(max_examples=300, deadline=None)
@given(arm=regression_arms, other_n=st.integers(min_value=2, max_value=5000))
def test_arms_with_the_same_squared_errors_are_never_reverted(arm, other_n):
    n, mean, relative_spread = arm
    spread = relative_spread * mean * mean
    stats = StepStats(
        champion=errors_of(n, mean, spread), challenger=errors_of(other_n, mean, spread)
    )
    assert analyze_step(REGRESSION, 0, stats, elapsed_seconds=HOUR).action != "revert"


@settings(max_examples=200, deadline=None)
@given(
    champion=regression_arms,
    challenger=regression_arms,
    scale=st.floats(min_value=1e-3, max_value=1e3),
)
@example(champion=(2, 0.25, 0.25), challenger=(43, 1.0, 1.0), scale=0.001953125)
def test_the_regression_verdict_does_not_depend_on_the_units_of_the_target(
    champion, challenger, scale
):
    def stats(factor: float) -> StepStats:
        (n_a, m_a, s_a), (n_b, m_b, s_b) = champion, challenger
        squared = factor * factor  # squared errors scale with the square of the target's unit
        return StepStats(
            champion=errors_of(n_a, m_a * squared, s_a * (m_a * squared) ** 2),
            challenger=errors_of(n_b, m_b * squared, s_b * (m_b * squared) ** 2),
        )

    before = analyze_step(REGRESSION, 0, stats(1.0), elapsed_seconds=HOUR)
    after = analyze_step(REGRESSION, 0, stats(scale), elapsed_seconds=HOUR)
    assert before.action == after.action


REGRESSION_SHADOW = dataclasses.replace(SHADOW, task="regression")


def paired_errors(champion: np.ndarray, challenger: np.ndarray) -> ShadowStats:
    """Shadow stats from the squared errors of both models on the same labeled requests."""
    n, difference = len(champion), champion - challenger
    return ShadowStats(
        champion=ArmStats(n, 0, requests=n, outcome_sum=float(champion.sum())),
        challenger=ArmStats(n, 0, requests=n, outcome_sum=float(challenger.sum())),
        compared=n,
        difference_sum=float(difference.sum()),
        difference_sq_sum=float((difference * difference).sum()),
    )


def test_a_shadow_regressor_with_larger_errors_on_the_same_requests_is_reverted():
    rng = np.random.default_rng(2)
    residual = rng.normal(0, 1, 800)
    stats = paired_errors(residual**2, (residual + rng.normal(0, 1, 800)) ** 2)
    verdict = analyze_shadow(REGRESSION_SHADOW, stats, elapsed_seconds=HOUR)
    assert verdict.action == "revert"
    assert verdict.evidence.metric == "squared_error" and verdict.evidence.agreement_rate is None


def test_a_shadow_regressor_close_to_the_champion_on_each_request_promotes():
    rng = np.random.default_rng(4)
    residual = rng.normal(0, 1, 800)
    stats = paired_errors(residual**2, (residual + rng.normal(0, 0.05, 800)) ** 2)
    verdict = analyze_shadow(REGRESSION_SHADOW, stats, elapsed_seconds=HOUR)
    assert verdict.action == "promote"
    assert verdict.evidence.margin == pytest.approx(0.10 * float(np.mean(residual**2)))


def test_a_shadow_regressor_with_unrelated_errors_needs_more_than_800_labels():
    rng = np.random.default_rng(4)
    stats = paired_errors(rng.normal(0, 1, 800) ** 2, rng.normal(0, 1, 800) ** 2)
    assert analyze_shadow(REGRESSION_SHADOW, stats, elapsed_seconds=HOUR).action == "wait"


def test_an_identical_shadow_regressor_is_not_reverted():
    errors = np.random.default_rng(6).normal(0, 1, 800) ** 2
    verdict = analyze_shadow(REGRESSION_SHADOW, paired_errors(errors, errors), elapsed_seconds=0)
    assert verdict.action == "promote"


def test_the_regression_guard_window_reverts_a_champion_whose_errors_grew():
    verdict = guard_window_verdict(REGRESSION, errors_of(800, 9.0), 4.0)
    assert verdict.action == "revert"
    assert verdict.evidence.floor == pytest.approx(4.0 * (1 + REGRESSION.guard_margin))


def test_the_regression_guard_window_keeps_a_champion_at_the_previous_level():
    assert guard_window_verdict(REGRESSION, errors_of(800, 4.0), 4.0).action == "keep"


def test_the_regression_guard_window_refuses_a_negative_level():
    with pytest.raises(ValueError, match="mean squared error"):
        guard_window_verdict(REGRESSION, errors_of(800, 4.0), -1.0)


def test_the_regression_guard_window_rarely_reverts_a_champion_at_the_previous_level():
    rng = np.random.default_rng(8)
    runs, looks, batch = 300, 60, 25
    reverted = 0
    for _ in range(runs):
        errors = rng.normal(0, 2, (looks, batch)) ** 2
        sums, squares = np.cumsum(errors.sum(axis=1)), np.cumsum((errors**2).sum(axis=1))
        for look in range(looks):
            n = batch * (look + 1)
            stats = ArmStats(
                n, 0, requests=n, outcome_sum=float(sums[look]), outcome_sq_sum=float(squares[look])
            )
            if guard_window_verdict(REGRESSION, stats, 4.0).action == "revert":
                reverted += 1
                break
    assert reverted / runs <= REGRESSION.alpha + 3 * (0.05 * 0.95 / runs) ** 0.5


@pytest.mark.parametrize(
    ("task", "predictions", "labels", "expected"),
    [
        ("binary", [0.9, 0.2, 0.6], [1, 1, 0], [1.0, 0.0, 0.0]),
        ("multiclass", ["cat", "dog", "2"], ["cat", "cow", 2], [1.0, 0.0, 1.0]),
        ("regression", [1.5, -1.0], [1.0, 1.0], [0.25, 4.0]),
    ],
)
def test_row_outcomes_are_correctness_for_classes_and_squared_error_for_values(
    task, predictions, labels, expected
):
    assert row_outcomes(task, predictions, labels).tolist() == expected
