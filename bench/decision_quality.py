"""How often each promotion rule promotes a challenger that is equal, worse or better.

Simulated champion–challenger pairs score the same holdout rows. Both models see a shared
per-row difficulty plus noise of their own, so, as with real model pairs, they make most of their
mistakes on the same rows: about three quarters of them with little own noise (a retrained model
of the same family), about half with more (a different family). For each holdout size and true accuracy gap the
script runs many holdouts and counts promotions under

- the old rule, `promotion.decisions.decide_promotion` with min_improvement 0: promote when the
  challenger's accuracy on the holdout is higher;
- the new rule, `promotion.evaluation.evaluate_challenger` (superiority, min_improvement 0,
  95% paired bootstrap interval): promote when the interval's lower bound is above 0.

Run: .venv/bin/python bench/decision_quality.py [--trials 1000] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from scipy import stats

from promotion.decisions import decide_promotion
from promotion.evaluation import EvaluationConfig, evaluate_challenger

CHAMPION_ACCURACY = 0.80
GAPS = {"equal": 0.0, "1 point worse": -0.01, "2 points better": 0.02}
ROWS = (500, 2_000, 10_000)
POSITIVE_RATE = 0.3
SHARED_SD = 1.0  # per-row difficulty both models see
# Each model's own noise: 0.35 makes the two models' margins correlate at 1 / (1 + 0.35²) = 0.89
# (retrained model of the same family); 0.8 at 0.61 (a different model family).
OWN_SDS = (0.35, 0.8)


def simulate(
    rng: np.random.Generator, rows: int, challenger_accuracy: float, own_sd: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and both models' probabilities on one holdout."""
    labels = (rng.random(rows) < POSITIVE_RATE).astype(np.int8)
    sign = 2.0 * labels - 1.0
    shared = rng.normal(0.0, SHARED_SD, rows)
    margins = [
        # The class separation that gives `accuracy` at the 0.5 threshold, plus both noises.
        np.hypot(SHARED_SD, own_sd) * stats.norm.ppf(accuracy)
        + shared
        + rng.normal(0.0, own_sd, rows)
        for accuracy in (CHAMPION_ACCURACY, challenger_accuracy)
    ]
    champion, challenger = (1.0 / (1.0 + np.exp(-sign * margin)) for margin in margins)
    return labels, champion, challenger


def shared_error_share(rng: np.random.Generator, own_sd: float) -> float:
    """Share of the champion's mistakes an equally accurate challenger also makes."""
    labels, champion, challenger = simulate(rng, 200_000, CHAMPION_ACCURACY, own_sd)
    champion_wrong = (champion > 0.5) != (labels == 1)
    challenger_wrong = (challenger > 0.5) != (labels == 1)
    return float(np.mean(challenger_wrong[champion_wrong]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=1000, help="holdouts per cell")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    args = parser.parse_args()

    rng = np.random.default_rng(20240601)
    print(
        f"Champion accuracy {CHAMPION_ACCURACY:.2f}, positive rate {POSITIVE_RATE:.2f}; "
        f"{args.trials} holdouts per cell, {args.resamples} bootstrap resamples, 95% interval."
    )
    started = time.perf_counter()
    table = []
    for own_sd in OWN_SDS:
        shared = shared_error_share(rng, own_sd)
        for rows in ROWS:
            for name, gap in GAPS.items():
                old, new, realised = _run_cell(rng, rows, gap, own_sd, args)
                table.append((shared, rows, name, realised, old, new))
    elapsed = time.perf_counter() - started

    print()
    print(
        "| shared mistakes | holdout rows | true challenger | mean observed gap | "
        "old rule: promoted | new rule: promoted | kind of promotion |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for shared, rows, name, gap, old, new in table:
        kind = "true (want high)" if GAPS[name] > 0 else "false (want ≤ 5%)"
        print(f"| {shared:.0%} | {rows:,} | {name} | {gap:+.4f} | {old:.1%} | {new:.1%} | {kind} |")
    se = np.sqrt(0.05 * 0.95 / args.trials)
    print()
    print(f"Monte Carlo standard error of a 5% rate: ±{se:.1%}. Took {elapsed:.0f} s.")
    false_rates, true_rates = [], []
    for shared in sorted({row[0] for row in table}, reverse=True):
        at_10k = {
            name: new for sh, rows, name, _, _, new in table if sh == shared and rows == 10_000
        }
        false_max = max(at_10k["equal"], at_10k["1 point worse"])
        false_rates.append(false_max)
        true_rates.append(at_10k["2 points better"])
        print(
            f"Goals at 10,000 rows, {shared:.0%} shared mistakes: equal-or-worse promoted ≤ 5%: "
            f"{false_max:.1%}; 2 points better promoted ≥ 80%: {at_10k['2 points better']:.1%}."
        )
    headline = {
        "false_promoted_10k": max(false_rates),
        "better2_promoted_10k": min(true_rates),
        "old_rule_equal_promoted_10k": max(
            old for _, rows, name, _, old, _ in table if rows == 10_000 and name == "equal"
        ),
    }
    print("RESULT " + json.dumps({k: round(v, 4) for k, v in headline.items()}))


def _run_cell(
    rng: np.random.Generator, rows: int, gap: float, own_sd: float, args: argparse.Namespace
) -> tuple[float, float, float]:
    """Promotion rates of both rules over `args.trials` holdouts, and the mean observed gap."""
    old = new = 0
    realised = []
    for trial in range(args.trials):
        labels, champion, challenger = simulate(rng, rows, CHAMPION_ACCURACY + gap, own_sd)
        config = EvaluationConfig(metric="accuracy", resamples=args.resamples, seed=trial)
        result = evaluate_challenger(
            config, labels=labels, champion=champion, challenger=challenger
        )
        verdict = decide_promotion(
            metric="accuracy",
            higher_is_better=True,
            min_improvement=0.0,
            challenger_score=result.challenger_score,
            champion_score=result.champion_score,
        )
        old += verdict.action == "promote"
        new += result.verdict == "promote"
        realised.append(result.improvement)
    return old / args.trials, new / args.trials, float(np.mean(realised))


if __name__ == "__main__":
    main()
