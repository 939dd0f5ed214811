"""False triggers and detection delay of the performance trigger (promotion.triggers).

Simulated labeled streams of a champion promoted at accuracy 0.85, with the policy's
`triggers.performance` at max_drop 0.02 (bound 0.83), min_labeled 200, confidence 0.95, and a
lookback holding the newest W labels (W = 500 … 5,000). The monitor checks every 100 new labels.

- good: the champion stays as good as at promotion for 20,000 labels; a run that fires at any check
  is a false trigger;
- drop: after 2,000 good labels (a full lookback) its accuracy falls 5 points to 0.80; the delay is
  the labels after the drop until the first check that fires (runs that never fire in 20,000 labels
  are counted as not detected and shown).

Side by side on the same streams: the interval rule (fire when the whole Wilson interval is below
the bound), and a fixed-window point-estimate rule (fire when the accuracy of the last W labels is
below a cut), its cut tuned on the good runs so that it fires in exactly as many of them as the
interval rule does (in-sample tuning, and the window W with the fastest median is shown, both
choices favouring the baseline; RESULT reads that W, among those where the interval rule keeps
false triggers at or below 5%, for both rules). The interval rule is computed vectorised; a sample of checks is
replayed through `performance_signal` itself to show the two agree.

Run: .venv/bin/python bench/performance_trigger.py
"""

from __future__ import annotations

import json
import math

import numpy as np
from scipy import stats

from promotion.triggers import PerformanceRule, performance_signal

PROMOTED = 0.85
DROPPED = 0.80
RULE = PerformanceRule("accuracy", floor=None, max_drop=0.02, min_labeled=200, confidence=0.95)
CHECK_EVERY = 100
HORIZON = 20_000
WARM_UP = 2_000
RUNS = 1_000
WINDOWS = (500, 1_000, 2_000, 5_000)
REPLAYED = 300
FALSE_TRIGGER_GOAL = 0.05


def streams(rng: np.random.Generator, accuracy_after: float) -> np.ndarray:
    """Correct (1) / wrong (0) per label: WARM_UP labels at the promoted level, then HORIZON more."""
    before = rng.random((RUNS, WARM_UP)) < PROMOTED
    after = rng.random((RUNS, HORIZON)) < accuracy_after
    return np.concatenate([before, after], axis=1).astype(np.int32)


def checks() -> np.ndarray:
    """Label counts (from the stream's start) at which the monitor checks, after the warm-up."""
    return np.arange(WARM_UP + CHECK_EVERY, WARM_UP + HORIZON + 1, CHECK_EVERY)


def window_counts(correct: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per run and check: correct labels and labels in the newest `width` labels."""
    cumulative = np.concatenate([np.zeros((RUNS, 1), np.int64), np.cumsum(correct, axis=1)], axis=1)
    at = checks()
    start = np.maximum(at - width, 0)
    return cumulative[:, at] - cumulative[:, start], np.broadcast_to(at - start, (RUNS, at.size))


def interval_fires(correct: np.ndarray, lookback: int) -> np.ndarray:
    """The interval rule at every check: Wilson upper bound below the bound (vectorised)."""
    hits, n = window_counts(correct, lookback)
    z = stats.norm.ppf(0.5 + RULE.confidence / 2)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (np.minimum(1.0, centre + half) < PROMOTED - RULE.max_drop) & (n >= RULE.min_labeled)


def replay_agrees(
    correct: np.ndarray, fires: np.ndarray, lookback: int, rng: np.random.Generator
) -> float:
    """Share of sampled checks where `performance_signal` on the rows decides as the vector did."""
    at = checks()
    agree = 0
    for _ in range(REPLAYED):
        run, check = rng.integers(RUNS), rng.integers(at.size)
        rows = correct[run, max(0, at[check] - lookback) : at[check]]
        labels = np.ones(rows.size)
        signal = performance_signal(RULE, labels, np.where(rows == 1, 0.9, 0.1), PROMOTED)
        agree += signal.fired == bool(fires[run, check])
    return agree / REPLAYED


def first_fire(fires: np.ndarray) -> np.ndarray:
    """Labels after the warm-up at each run's first firing check; inf when it never fires."""
    fired = fires.any(axis=1)
    first = np.where(fired, fires.argmax(axis=1), 0)
    return np.where(fired, (checks()[first] - WARM_UP).astype(float), math.inf)


def summary(delays: np.ndarray) -> tuple[float, float]:
    """Median delay (inf when most runs never fire) and the share of runs detected."""
    return float(np.median(delays)), float(np.isfinite(delays).mean())


def main() -> None:
    rng = np.random.default_rng(11)
    good, drop = streams(rng, PROMOTED), streams(rng, DROPPED)
    rows = []
    for width in WINDOWS:
        good_fires, drop_fires = interval_fires(good, width), interval_fires(drop, width)
        false_runs = int(good_fires.any(axis=1).sum())
        ours_median, ours_detected = summary(first_fire(drop_fires))
        good_hits, good_n = window_counts(good, width)
        drop_hits, drop_n = window_counts(drop, width)
        lowest = np.sort((good_hits / good_n).min(axis=1))
        # The highest cut that fires in at most `false_runs` good runs (ties in the minima can make
        # it fewer): the (false_runs + 1)-th lowest minimum, compared strictly.
        cut = lowest[false_runs]
        baseline_false = float(((good_hits / good_n) < cut).any(axis=1).mean())
        median, detected = summary(first_fire((drop_hits / drop_n) < cut))
        agreement = replay_agrees(drop, drop_fires, width, rng)
        rows.append(
            (width, false_runs / RUNS, ours_median, ours_detected, cut, baseline_false, median,
             detected, agreement)
        )  # fmt: skip
    # RESULT reads the W where the baseline is fastest among those where ours meets the goal.
    best = min((row for row in rows if row[1] <= FALSE_TRIGGER_GOAL), key=lambda row: row[6])

    print(
        f"Performance trigger: promoted at {PROMOTED}, bound {PROMOTED - RULE.max_drop:.2f}, a drop "
        f"to {DROPPED}; checked every {CHECK_EVERY} labels, {RUNS} runs per case, horizon "
        f"{HORIZON} labels"
    )
    print(
        f"{'labels':>6s} | {'interval (ours)':^30s} | {'point estimate, tuned to the same rate':^44s}"
    )
    print(
        f"{'W':>6s} | {'false':>7s} {'median':>8s} {'detected':>9s} | {'cut':>7s} {'false':>7s} "
        f"{'median':>8s} {'detected':>9s} {'ratio':>7s}"
    )
    for width, false, ours, found, cut, base_false, base, base_found, _ in rows:
        print(
            f"{width:>6d} | {false:7.3f} {ours:8.0f} {found:9.3f} | {cut:7.4f} {base_false:7.3f} "
            f"{base:8.0f} {base_found:9.3f} {base / ours:7.2f}"
        )
    print("W: the interval rule's lookback and the point estimate's window, in labels")
    print("ratio: baseline median / ours (above 1: ours fires with fewer labels)")
    replayed = min(row[8] for row in rows)
    print(
        f"performance_signal agrees with the vectorised rule on {replayed:.1%} of replayed checks"
    )
    result = {
        "false_trigger": best[1],
        "median_labels_to_fire": best[2],
        "baseline_median_labels_to_fire": best[6],
        "window": best[0],
        "max_false_trigger": max(row[1] for row in rows),
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
