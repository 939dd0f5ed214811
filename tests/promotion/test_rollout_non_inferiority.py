"""The non-inferiority rule of the rollout: which bound decides, and both error rates ≤ alpha."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from promotion.rollout import (
    MAX_E_VALUE,
    ArmStats,
    PairedStats,
    RolloutConfig,
    StepStats,
    analyze_step,
)

CANARY = RolloutConfig(traffic_steps=(0.05, 0.25, 0.5), min_labeled_per_step=500)
LAST = len(CANARY.traffic_steps) - 1
HOUR = 3600.0


def healthy(labeled: int, correct: int) -> ArmStats:
    return ArmStats(labeled, correct, requests=max(labeled, 200), p99_latency_ms=50.0)


@st.composite
def paired_steps(draw: st.DrawFn, max_labeled: int = 6000) -> StepStats:
    """A canary step with pairs: (both right, challenger only, champion only, both wrong)."""
    n = draw(st.integers(min_value=1, max_value=max_labeled))
    both = draw(st.integers(min_value=0, max_value=n))
    challenger_only = draw(st.integers(min_value=0, max_value=n - both))
    champion_only = draw(st.integers(min_value=0, max_value=n - both - challenger_only))
    pairs = PairedStats(
        labeled=n,
        challenger_correct=both + challenger_only,
        champion_correct=both + champion_only,
        both_correct=both,
    )
    return StepStats(
        champion=healthy(n, pairs.champion_correct),
        challenger=healthy(n, pairs.challenger_correct),
        paired=pairs,
    )


@st.composite
def unpaired_steps(draw: st.DrawFn) -> StepStats:
    n_a = draw(st.integers(min_value=0, max_value=20000))
    n_b = draw(st.integers(min_value=0, max_value=6000))
    return StepStats(
        champion=healthy(n_a, draw(st.integers(min_value=0, max_value=n_a))),
        challenger=healthy(n_b, draw(st.integers(min_value=0, max_value=n_b))),
    )


steps = st.one_of(paired_steps(), unpaired_steps())


@settings(max_examples=300, deadline=None)
@given(stats=steps, earlier=st.lists(steps, max_size=2))
def test_promotion_never_happens_while_the_lower_bound_is_at_or_below_minus_margin(stats, earlier):
    verdict = analyze_step(CANARY, LAST, stats, elapsed_seconds=HOUR, earlier_steps=earlier)
    evidence = verdict.evidence
    if evidence.lower_bound is None or evidence.lower_bound <= -evidence.margin:
        assert verdict.action != "promote"
    if verdict.action == "promote":
        assert min(stats.champion.labeled, stats.challenger.labeled) >= CANARY.min_labeled_per_step


@settings(max_examples=300, deadline=None)
@given(stats=steps, earlier=st.lists(steps, max_size=2), index=st.integers(0, LAST))
def test_a_healthy_challenger_is_never_reverted_while_the_upper_bound_is_at_or_above_minus_margin(
    stats, earlier, index
):
    verdict = analyze_step(CANARY, index, stats, elapsed_seconds=HOUR, earlier_steps=earlier)
    evidence = verdict.evidence
    if evidence.upper_bound is None or evidence.upper_bound >= -evidence.margin:
        assert verdict.action != "revert"
    else:
        assert verdict.action == "revert"


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(min_value=CANARY.min_labeled_per_step, max_value=50000),
    accuracy=st.floats(min_value=0.0, max_value=1.0),
)
def test_identical_models_on_enough_pairs_are_promoted(n, accuracy):
    correct = round(accuracy * n)
    pairs = PairedStats(
        labeled=n, challenger_correct=correct, champion_correct=correct, both_correct=correct
    )
    stats = StepStats(champion=healthy(n, correct), challenger=healthy(n, correct), paired=pairs)
    assert analyze_step(CANARY, LAST, stats, elapsed_seconds=HOUR).action == "promote"


@settings(max_examples=150, deadline=None)
@given(stats=steps, earlier=st.lists(steps, min_size=2, max_size=3), data=st.data())
def test_the_verdict_does_not_depend_on_the_order_of_the_earlier_steps(stats, earlier, data):
    shuffled = data.draw(st.permutations(earlier))
    one = analyze_step(CANARY, LAST, stats, elapsed_seconds=HOUR, earlier_steps=earlier)
    other = analyze_step(CANARY, LAST, stats, elapsed_seconds=HOUR, earlier_steps=shuffled)
    assert one.action == other.action
    for field in ("difference", "lower_bound", "upper_bound"):
        a, b = getattr(one.evidence, field), getattr(other.evidence, field)
        assert (a is None and b is None) or abs(a - b) <= 1e-9 * max(1.0, abs(a))


# The simulated error rates: a challenger exactly at -margin lies in both nulls, so neither a
# promotion nor a revert may happen in more than alpha of the canaries, however often the verdict
# is read. The last step, never timed out, reads it after every batch.
ENDLESS_LAST_STEP = dataclasses.replace(
    CANARY, traffic_steps=(0.5,), min_labeled_per_step=1, max_step_seconds=1e12
)


def verdict_shares(
    probabilities: list[float], *, paired: bool, runs: int, looks: int, seed: int
) -> tuple[float, float]:
    """Shares of simulated canaries promoted and reverted; per request the probabilities of
    (both right, challenger only, champion only, both wrong)."""
    rng = np.random.default_rng(seed)
    batch = 20
    counts = np.cumsum(rng.multinomial(batch, probabilities, (runs, looks)), axis=1)
    champion_arm = np.cumsum(
        rng.binomial(batch, probabilities[0] + probabilities[2], (runs, looks)), axis=1
    )
    promoted = reverted = 0
    for run in range(runs):
        for look in range(looks):
            n = batch * (look + 1)
            both, challenger_only, champion_only, _ = (int(x) for x in counts[run, look])
            pairs = PairedStats(
                labeled=n,
                challenger_correct=both + challenger_only,
                champion_correct=both + champion_only,
                both_correct=both,
            )
            stats = StepStats(
                champion=healthy(n, int(champion_arm[run, look])),
                challenger=healthy(n, pairs.challenger_correct),
                paired=pairs if paired else None,
            )
            action = analyze_step(ENDLESS_LAST_STEP, 0, stats, elapsed_seconds=0.0).action
            if action != "wait":
                promoted += action == "promote"
                reverted += action == "revert"
                break
    return promoted / runs, reverted / runs


def allowed(runs: int) -> float:
    """alpha plus three standard errors of the simulation."""
    alpha = CANARY.alpha
    return alpha + 3 * (alpha * (1 - alpha) / runs) ** 0.5


def test_a_challenger_exactly_at_the_margin_is_rarely_promoted_or_reverted_on_pairs():
    m = CANARY.non_inferiority_margin
    # Champion 0.90, challenger 0.885: 1% of requests right for the challenger alone, 2.5% for
    # the champion alone.
    probabilities = [0.875, 0.01, 0.01 + m, 1 - 0.895 - m]
    runs = 200
    promoted, reverted = verdict_shares(probabilities, paired=True, runs=runs, looks=60, seed=1)
    assert promoted <= allowed(runs) and reverted <= allowed(runs)


def test_a_challenger_exactly_at_the_margin_is_rarely_promoted_or_reverted_arm_against_arm():
    m = CANARY.non_inferiority_margin
    probabilities = [0.80, 0.10 - m, 0.10, m]  # challenger 0.885 against champion 0.90
    runs = 200
    promoted, reverted = verdict_shares(probabilities, paired=False, runs=runs, looks=60, seed=2)
    assert promoted <= allowed(runs) and reverted <= allowed(runs)


def test_an_equal_challenger_is_mostly_promoted_within_6000_pairs():
    # 4% of requests right for one model only, 2% each way.
    probabilities = [0.88, 0.02, 0.02, 0.08]
    promoted, reverted = verdict_shares(probabilities, paired=True, runs=50, looks=300, seed=3)
    assert promoted >= 0.9 and reverted == 0


def _numbers(value: object) -> list[float]:
    if isinstance(value, dict):
        return [n for item in value.values() for n in _numbers(item)]
    if isinstance(value, list | tuple):
        return [n for item in value for n in _numbers(item)]
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else []


@settings(max_examples=300, deadline=None)
@given(stats=steps, earlier=st.lists(steps, max_size=2), index=st.integers(0, LAST))
def test_every_number_of_the_evidence_fits_a_task_hand_off(stats, earlier, index):
    # A float of 2**64 or more comes back from PostgreSQL's JSON as an integer the Airflow task
    # runner cannot carry; overwhelming evidence (thousands of labels, a 20-point gap) is the
    # usual way to reach one.
    verdict = analyze_step(CANARY, index, stats, elapsed_seconds=HOUR, earlier_steps=earlier)
    for number in _numbers(verdict.evidence.as_dict()):
        assert np.isfinite(number) and abs(number) <= MAX_E_VALUE


def test_overwhelming_evidence_still_decides_and_reports_the_capped_e_value() -> None:
    pairs = PairedStats(
        labeled=6000, challenger_correct=5400, champion_correct=3000, both_correct=2900
    )
    stats = StepStats(champion=healthy(6000, 3000), challenger=healthy(6000, 5400), paired=pairs)
    verdict = analyze_step(CANARY, LAST, stats, elapsed_seconds=HOUR)
    assert verdict.action == "promote"
    assert verdict.evidence.promote_e_value == MAX_E_VALUE
