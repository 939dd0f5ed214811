"""How fast the canary analysis reverts a worse challenger, and how often it reverts an equal one.

Simulated labeled streams: champion accuracy 0.90, challenger 0.90, 0.88 or 0.85. The verdict is
read after every batch of challenger labels. Three tests side by side:

- the rollout's one-sided mSPRT (promotion.rollout, with the default RolloutConfig);
- Wald's SPRT for the true effect on the challenger's stream alone, the champion's accuracy known:
  H0: p = 0.90 against H1: p = challenger accuracy, alpha = beta = 0.05. Its expected sample number
  under H1 is Wald's [(1 - beta) log((1 - beta)/alpha) + beta log(beta/(1 - alpha))] / KL(p1 || p0);
  it knows the effect in advance, which no rollout does: a reference point, not a rival;
- a fixed-window check in the style of Flagger's canary analysis: every N challenger labels compare
  the window's accuracy with the champion's over the same period, a check fails when the challenger
  is more than t below, revert after K failed checks. t is tuned on separate runs so the false-revert
  rate does not exceed the mSPRT's; the (N, K) with the fastest median detection at 0.85 is shown,
  an after-the-fact choice that favours the baseline.

Run: .venv/bin/python bench/canary_detection.py
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace

import numpy as np

from promotion.rollout import (
    ArmStats,
    RolloutConfig,
    StepStats,
    analyze_step,
    log_e_value,
    pooled_difference,
)

CHAMPION = 0.90
CHALLENGERS = (0.90, 0.88, 0.85)
ALPHA = BETA = 0.05
BATCH = 10  # challenger labels per look
HORIZON = 5000  # challenger labels per simulated canary
RUNS = 2000
WINDOWS = (50, 100, 150, 200, 250, 300, 400, 500)
FAILED_CHECKS = (1, 2, 3, 5)
CONFIG = RolloutConfig()


@dataclass(frozen=True)
class Streams:
    """Cumulative labeled counts per look, one row per simulated canary."""

    champion_labeled: np.ndarray
    champion_correct: np.ndarray
    challenger_labeled: np.ndarray
    challenger_correct: np.ndarray
    champion_batches: np.ndarray
    challenger_batches: np.ndarray


def simulate(challenger: float, share: float, seed: int, runs: int = RUNS) -> Streams:
    """Labeled outcomes of both arms, BATCH challenger labels per look at the given share."""
    rng = np.random.default_rng(seed)
    looks = HORIZON // BATCH
    champion_batch = round(BATCH * (1 - share) / share)
    a = rng.binomial(champion_batch, CHAMPION, (runs, looks))
    b = rng.binomial(BATCH, challenger, (runs, looks))
    steps = np.arange(1, looks + 1)
    return Streams(
        champion_labeled=champion_batch * steps,
        champion_correct=np.cumsum(a, axis=1),
        challenger_labeled=BATCH * steps,
        challenger_correct=np.cumsum(b, axis=1),
        champion_batches=a,
        challenger_batches=b,
    )


def first_hit(hits: np.ndarray, labels_per_hit: int) -> np.ndarray:
    """Challenger labels at the first True of each row; inf where there is none."""
    any_hit = hits.any(axis=1)
    return np.where(any_hit, (hits.argmax(axis=1) + 1) * labels_per_hit, np.inf)


def msprt_revert_at(streams: Streams, config: RolloutConfig) -> np.ndarray:
    """Challenger labels until the rollout's test says revert; inf if it never does."""
    estimate, variance = pooled_difference(
        streams.champion_labeled,
        streams.champion_correct,
        streams.challenger_labeled,
        streams.challenger_correct,
    )
    hits = log_e_value(estimate, variance, config.expected_effect) >= math.log(1 / config.alpha)
    return first_hit(hits, BATCH)


def check_matches_analyze_step(streams: Streams, config: RolloutConfig) -> None:
    """The vectorised path must give the same verdicts as analyze_step itself."""
    endless = replace(config, min_labeled_per_step=10**9, max_step_seconds=1e12)
    fast = msprt_revert_at(streams, config)
    for run in range(20):
        slow = math.inf
        for look in range(streams.challenger_correct.shape[1]):
            stats = StepStats(
                champion=ArmStats(
                    int(streams.champion_labeled[look]), int(streams.champion_correct[run, look])
                ),
                challenger=ArmStats(
                    int(streams.challenger_labeled[look]),
                    int(streams.challenger_correct[run, look]),
                ),
            )
            if analyze_step(endless, 0, stats, 0.0).action == "revert":
                slow = (look + 1) * BATCH
                break
        assert slow == fast[run], (run, slow, fast[run])


def wald_expected_sample_number(p0: float, p1: float, alpha: float, beta: float) -> float:
    """Wald's approximation of the SPRT's expected sample number under H1: p = p1."""
    upper = math.log((1 - beta) / alpha)
    lower = math.log(beta / (1 - alpha))
    kl = p1 * math.log(p1 / p0) + (1 - p1) * math.log((1 - p1) / (1 - p0))
    return ((1 - beta) * upper + beta * lower) / kl


def wald_revert_at(streams: Streams, p0: float, p1: float) -> np.ndarray:
    """Labels until Wald's SPRT accepts H1 (reverts), checked per batch; inf if it accepts H0."""
    step_correct = math.log(p1 / p0)
    step_wrong = math.log((1 - p1) / (1 - p0))
    wrong = streams.challenger_labeled - streams.challenger_correct
    llr = streams.challenger_correct * step_correct + wrong * step_wrong
    upper = llr >= math.log((1 - BETA) / ALPHA)
    lower = llr <= math.log(BETA / (1 - ALPHA))
    first_upper = np.where(upper.any(axis=1), upper.argmax(axis=1), np.iinfo(np.int64).max)
    first_lower = np.where(lower.any(axis=1), lower.argmax(axis=1), np.iinfo(np.int64).max)
    reverts = first_upper < first_lower
    return np.where(reverts, (first_upper + 1) * BATCH, np.inf)


def window_differences(streams: Streams, window: int) -> np.ndarray:
    """Challenger minus champion accuracy per window of `window` challenger labels."""
    per_window = window // BATCH
    runs, looks = streams.challenger_batches.shape
    used = looks // per_window * per_window
    shape = (runs, looks // per_window, per_window)
    b = streams.challenger_batches[:, :used].reshape(shape).sum(axis=2) / window
    champion_window = streams.champion_labeled[0] * per_window
    a = streams.champion_batches[:, :used].reshape(shape).sum(axis=2) / champion_window
    return b - a


def fixed_window_threshold(null: Streams, window: int, checks: int, target: float) -> float:
    """The smallest t at which `checks` failed checks happen in at most a `target` share of equal
    canaries (window accuracies are discrete, so the share can fall a little short of it)."""
    kth_worst = np.sort(window_differences(null, window), axis=1)[:, checks - 1]
    allowed = int(target * len(kth_worst))
    return -float(np.sort(kth_worst)[allowed])


def fixed_window_revert_at(streams: Streams, window: int, checks: int, t: float) -> np.ndarray:
    """Challenger labels until the K-th failed window check; inf if it never comes."""
    failed = np.cumsum(window_differences(streams, window) < -t, axis=1) >= checks
    return first_hit(failed, window)


def median_labels(revert_at: np.ndarray) -> float:
    """Median over all runs; runs never reverted count as infinitely late."""
    return float(np.median(revert_at))


def fmt(labels: float) -> str:
    """A label count for the tables."""
    return f"> {HORIZON}" if math.isinf(labels) else f"{labels:.0f}"


def compare(share: float, seed: int) -> dict[str, float]:
    """Print the three tests side by side at one challenger traffic share."""
    print(f"\n## Challenger share {share:.0%} (champion gets {1 - share:.0%} of labels)\n")
    streams = {p: simulate(p, share, seed + i) for i, p in enumerate(CHALLENGERS)}
    check_matches_analyze_step(streams[0.85], CONFIG)
    msprt = {p: msprt_revert_at(s, CONFIG) for p, s in streams.items()}
    target = float(np.isfinite(msprt[CHAMPION]).mean())

    calibration = simulate(CHAMPION, share, seed + 100, runs=2 * RUNS)
    best = None
    grid_rows = []
    for window in WINDOWS:
        for checks in FAILED_CHECKS:
            if HORIZON // window < checks:
                continue
            t = fixed_window_threshold(calibration, window, checks, target)
            at = {p: fixed_window_revert_at(s, window, checks, t) for p, s in streams.items()}
            grid_rows.append((window, checks, t, at))
            if best is None or median_labels(at[0.85]) < median_labels(best[3][0.85]):
                best = (window, checks, t, at)
    assert best is not None
    window, checks, t, fixed = best

    print(
        "| challenger accuracy | mSPRT revert rate | mSPRT median labels to revert "
        "| Wald SPRT E[N] (formula) | Wald SPRT median (simulated) "
        f"| fixed window N={window}, K={checks}, t={t:.3f}: revert rate | fixed window median |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for p in CHALLENGERS:
        if p == CHAMPION:
            wald, wald_sim = "alpha = 0.05 by design", "-"
        else:
            wald = f"{wald_expected_sample_number(CHAMPION, p, ALPHA, BETA):.0f}"
            wald_sim = fmt(median_labels(wald_revert_at(streams[p], CHAMPION, p)))
        print(
            f"| {p:.2f} | {np.isfinite(msprt[p]).mean():.3f} | {fmt(median_labels(msprt[p]))} "
            f"| {wald} | {wald_sim} | {np.isfinite(fixed[p]).mean():.3f} "
            f"| {fmt(median_labels(fixed[p]))} |"
        )

    print("\nFixed-window grid (t tuned to the mSPRT's false-revert rate on separate runs):\n")
    print("| N | K | t | false-revert rate | median at 0.88 | median at 0.85 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for w, k, tt, at in grid_rows:
        print(
            f"| {w} | {k} | {tt:.3f} | {np.isfinite(at[CHAMPION]).mean():.3f} "
            f"| {fmt(median_labels(at[0.88]))} | {fmt(median_labels(at[0.85]))} |"
        )
    sprt = wald_expected_sample_number(CHAMPION, 0.85, ALPHA, BETA)
    ours = median_labels(msprt[0.85])
    baseline = median_labels(fixed[0.85])
    several = min(grid_rows, key=lambda row: (row[1] < 2, median_labels(row[3][0.85])))
    several_median = median_labels(several[3][0.85])
    wald_median = median_labels(wald_revert_at(streams[0.85], CHAMPION, 0.85))
    print(
        f"\nGoals at 0.85: mSPRT median / Wald E[N] = {ours:.0f} / {sprt:.0f} = {ours / sprt:.2f} "
        f"(goal ≤ 1.5); mSPRT / best fixed window = {ours:.0f} / {baseline:.0f} = "
        f"{ours / baseline:.2f} (goal ≤ 0.5); false reverts {target:.3f} (goal ≤ 0.05)."
    )
    print(
        f"For scale: Wald's SPRT (simulated median) / best fixed window = {wald_median:.0f} / "
        f"{baseline:.0f} = {wald_median / baseline:.2f}; mSPRT / best fixed window with K ≥ 2 "
        f"(N={several[0]}, K={several[1]}) = {ours:.0f} / {several_median:.0f} = "
        f"{ours / several_median:.2f}"
    )
    return {"false_revert": target, "revert_ratio_vs_fixed": ours / baseline}


def mixing_sensitivity(share: float, seed: int) -> None:
    """Print how the mixture scale trades detection of small against large drops."""
    print(f"\n## Mixture scale (expected_effect) at {share:.0%} share\n")
    print("| expected_effect | false-revert rate | median at 0.88 | median at 0.85 |")
    print("| --- | --- | --- | --- |")
    streams = {p: simulate(p, share, seed + i, runs=1000) for i, p in enumerate(CHALLENGERS)}
    for effect in (0.01, 0.02, 0.03, 0.05, 0.08):
        config = replace(CONFIG, expected_effect=effect)
        at = {p: msprt_revert_at(s, config) for p, s in streams.items()}
        print(
            f"| {effect:.2f} | {np.isfinite(at[CHAMPION]).mean():.3f} "
            f"| {fmt(median_labels(at[0.88]))} | {fmt(median_labels(at[0.85]))} |"
        )


def stepped_rollout(runs: int, seed: int) -> dict[float, float]:
    """The whole default rollout through analyze_step: steps, minimum labels, earlier evidence."""
    print(
        f"\n## Whole rollout through analyze_step: steps {list(CONFIG.traffic_steps)}, "
        f"{CONFIG.min_labeled_per_step} labels per arm per step, a look every {BATCH} "
        "challenger labels\n"
    )
    print(
        "| challenger accuracy | reverted | promoted "
        "| median challenger labels to the verdict | reverted in step 1 / 2 / 3 |"
    )
    print("| --- | --- | --- | --- | --- |")
    rng = np.random.default_rng(seed)
    promoted_share: dict[float, float] = {}
    for p in CHALLENGERS:
        outcomes, labels, revert_steps = [], [], [0] * len(CONFIG.traffic_steps)
        for _ in range(runs):
            earlier: list[StepStats] = []
            used = 0
            verdict = None
            for index, share in enumerate(CONFIG.traffic_steps):
                champion_batch = round(BATCH * (1 - share) / share)
                a = ArmStats()
                b = ArmStats()
                while True:
                    a = ArmStats(
                        a.labeled + champion_batch,
                        a.correct + int(rng.binomial(champion_batch, CHAMPION)),
                    )
                    b = ArmStats(b.labeled + BATCH, b.correct + int(rng.binomial(BATCH, p)))
                    used += BATCH
                    stats = StepStats(champion=a, challenger=b)
                    verdict = analyze_step(CONFIG, index, stats, 0.0, earlier_steps=earlier)
                    if verdict.action != "wait":
                        break
                if verdict.action == "revert":
                    revert_steps[index] += 1
                if verdict.action != "step_up":
                    break
                earlier.append(stats)
            assert verdict is not None
            outcomes.append(verdict.action)
            labels.append(used)
        reverted = outcomes.count("revert") / runs
        promoted = outcomes.count("promote") / runs
        promoted_share[p] = promoted
        per_step = " / ".join(f"{n / runs:.3f}" for n in revert_steps)
        print(
            f"| {p:.2f} | {reverted:.3f} | {promoted:.3f} | {np.median(labels):.0f} | {per_step} |"
        )
    return promoted_share


def main() -> None:
    """Run every table; a few seconds on two cores."""
    started = time.perf_counter()
    print("# Canary detection benchmark")
    print(
        f"\nchampion accuracy {CHAMPION}; {RUNS} simulated canaries per row; a look every {BATCH} "
        f"challenger labels up to {HORIZON}; mSPRT with alpha={CONFIG.alpha}, "
        f"expected_effect={CONFIG.expected_effect} (one-sided: challenger worse)"
    )
    small = compare(0.05, seed=1)
    large = compare(0.50, seed=2)
    mixing_sensitivity(0.05, seed=3)
    promoted = stepped_rollout(runs=400, seed=4)
    print(f"\n(ran in {time.perf_counter() - started:.0f} s)")
    headline = {
        "equal_promoted": promoted[0.90],
        "worse2_promoted": promoted[0.88],
        "worse5_promoted": promoted[0.85],
        "false_revert": max(small["false_revert"], large["false_revert"]),
        "revert_ratio_vs_fixed_5pct": small["revert_ratio_vs_fixed"],
        "revert_ratio_vs_fixed_50pct": large["revert_ratio_vs_fixed"],
    }
    print("RESULT " + json.dumps({k: round(v, 4) for k, v in headline.items()}))


if __name__ == "__main__":
    main()
