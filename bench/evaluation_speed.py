"""Time and memory of a full champion–challenger evaluation next to MLflow's own evaluation.

Two small models are trained on synthetic churn-like rows: a LogisticRegression (champion) and a
LightGBM classifier (challenger). On the same holdout:

- ours: `evaluate_challenger` on both models' probabilities (roc_auc with `resamples=1000`, which
  at this size takes the analytic DeLong interval instead of resampling, see
  `promotion/intervals.py`; DeLong's test, all six metrics for the report, two slice guardrails,
  ECE guardrail), then the same work again stage by stage, and the interval through the paired
  bootstrap that the analytic path replaces (timed apart, not in ours);
- MLflow: `mlflow.models.evaluate(model_type="classifier", evaluators="default")` on each logged
  model (SHAP off; the default classifier evaluator always draws its ROC, PR, lift, calibration
  and confusion-matrix plots, MLflow 3.17 has no switch for them), then
  `mlflow.validate_evaluation_results` with a roc_auc `MetricThreshold`. MLflow's figure
  includes predicting with both models (predict and predict_proba); ours starts from
  probabilities, so the time both models take to predict is printed on its own line.

Each side runs in its own Python process so that its peak memory (VmHWM) is its own; the table
also shows how far the peak rose above the process's memory just before the timed step (data
loaded, libraries imported).

Run: .venv/bin/python bench/evaluation_speed.py [--rows 1000000] [--baseline-rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FEATURES = [f"f{i}" for i in range(6)] + ["region", "tenure"]
REGIONS = np.array(["north", "south", "east", "west"])
TRAIN_ROWS = 50_000


def make_rows(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Features (6 numeric, a region code, tenure in days) and a label with interactions that a
    linear model misses and trees find."""
    numeric = rng.normal(size=(rows, 6))
    region = rng.integers(0, 4, rows)
    tenure = rng.exponential(200.0, rows)
    logit = (
        numeric @ np.array([0.8, -0.6, 0.5, 0.3, 0.0, 0.0])
        + 0.9 * np.sin(2 * numeric[:, 0])
        + 0.7 * numeric[:, 1] * numeric[:, 2]
        + np.array([0.0, 0.3, -0.2, 0.1])[region]
        - 0.002 * tenure
        - 0.6
    )
    labels = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    return np.column_stack([numeric, region, tenure]), labels


def memory_mb(field: str) -> float:
    """A line of /proc/self/status in MB: VmHWM is this process's peak resident memory, VmRSS
    its current one. ru_maxrss is not used: Linux carries it over from the forking parent."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not found in /proc/self/status (Linux only)")


def run_ours(data: Path) -> dict:
    from promotion.evaluation import (
        CalibrationGuardrail,
        EvaluationConfig,
        SliceGuardrail,
        evaluate_challenger,
    )

    arrays = np.load(data / "holdout.npz")
    labels, champion, challenger = arrays["labels"], arrays["champion"], arrays["challenger"]
    slices = {
        "region": REGIONS[arrays["features"][:, 6].astype(int)],
        "tenure": arrays["features"][:, 7],
    }
    config = EvaluationConfig(
        metric="roc_auc",
        min_improvement=0.005,
        resamples=1000,
        seed=7,
        slices=(
            SliceGuardrail("region", "categorical", max_regression=0.01),
            SliceGuardrail("tenure", "numeric", max_regression=0.01, bins=(30.0, 180.0)),
        ),
        calibration=CalibrationGuardrail("ece", max_worsening=0.02),
    )
    before = memory_mb("VmRSS")
    started, cpu_started = time.perf_counter(), time.process_time()
    result = evaluate_challenger(
        config,
        labels=labels,
        champion=champion,
        challenger=challenger,
        slices=slices,
    )
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    peak, growth = memory_mb("VmHWM"), memory_mb("VmHWM") - before
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_rss_mb": peak,
        "peak_growth_mb": growth,
        "outcome": f"{result.verdict}, Δ roc_auc {result.improvement:+.4f} "
        f"[{result.ci_low:+.4f}, {result.ci_high:+.4f}] ({result.interval}), DeLong p "
        + ("< 1e-300" if result.p_value == 0 else f"{result.p_value:.2g}"),
        "stages": stage_seconds(config, labels, champion, challenger, slices),
    }


def stage_seconds(config, labels, champion, challenger, slices) -> dict:
    """The evaluation again, stage by stage through its building blocks, each timed, then the
    whole call once more: what it takes beyond the stages is the input checks and assembling
    the result (under load, also the noise between the two passes).
    Last, the interval through the paired bootstrap, the path the analytic one replaces at this
    size (not part of the timed call)."""
    from promotion import evaluation
    from promotion.intervals import improvement_interval
    from promotion.metrics import auc_components, delong_test

    stages: dict[str, float] = {}

    def timed(name, work):
        started = time.perf_counter()
        value = work()
        stages[name] = time.perf_counter() - started
        return value

    aucs = timed(
        "AUC sorts (2 models)",
        lambda: (auc_components(labels, champion), auc_components(labels, challenger)),
    )
    metrics = timed(
        "all metrics (2 models)",
        lambda: [
            evaluation._all_metrics("binary", labels, model, components)
            for model, components in zip((champion, challenger), aucs, strict=True)
        ],
    )
    improvement = metrics[1]["roc_auc"] - metrics[0]["roc_auc"]
    common = {"improvement": improvement, "confidence": 0.95, "resamples": 1000, "seed": 7}
    timed(
        "interval",
        lambda: improvement_interval(
            "binary", "roc_auc", labels, champion, challenger, **common, aucs=aucs
        ),
    )
    timed("DeLong p-value", lambda: delong_test(labels, champion, challenger, aucs))
    timed(
        "slice guardrails",
        lambda: evaluation._slice_guardrails(config, labels, champion, challenger, slices, aucs),
    )
    timed(
        "calibration guardrail",
        lambda: evaluation._calibration_guardrail(config.calibration, labels, champion, challenger),
    )
    timed(
        "whole call, again",
        lambda: evaluation.evaluate_challenger(
            config, labels=labels, champion=champion, challenger=challenger, slices=slices
        ),
    )
    parts = sum(value for name, value in stages.items() if name != "whole call, again")
    stages["checks and the rest (whole call again − stages)"] = max(
        0.0, stages["whole call, again"] - parts
    )
    timed(
        "not used: interval by paired bootstrap",
        lambda: improvement_interval(
            "binary", "roc_auc", labels, champion, challenger, **common, choice="bootstrap"
        ),
    )
    return stages


def run_mlflow(data: Path, rows: int) -> dict:
    import logging
    import warnings

    import mlflow
    import pandas as pd
    from mlflow.models import MetricThreshold
    from mlflow.models.evaluation.validation import ModelValidationFailedException

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    setup = json.loads((data / "mlflow.json").read_text())
    mlflow.set_tracking_uri(setup["tracking_uri"])
    mlflow.set_experiment(experiment_id=setup["experiment_id"])
    arrays = np.load(data / "holdout.npz")
    frame = pd.DataFrame(arrays["features"][:rows], columns=FEATURES)
    frame["label"] = arrays["labels"][:rows]
    before = memory_mb("VmRSS")
    started, cpu_started = time.perf_counter(), time.process_time()
    results = {}
    with mlflow.start_run():
        for role in ("champion", "challenger"):
            results[role] = mlflow.models.evaluate(
                model=setup[role],
                data=frame,
                targets="label",
                model_type="classifier",
                evaluators="default",
                evaluator_config={"log_model_explainability": False},
            )
    try:
        mlflow.validate_evaluation_results(
            {"roc_auc": MetricThreshold(min_absolute_change=0.005, greater_is_better=True)},
            results["challenger"],
            results["champion"],
        )
        outcome = "validation passed"
    except ModelValidationFailedException:
        outcome = "validation failed"
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    champion_auc = results["champion"].metrics["roc_auc"]
    challenger_auc = results["challenger"].metrics["roc_auc"]
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_rss_mb": memory_mb("VmHWM"),
        "peak_growth_mb": memory_mb("VmHWM") - before,
        "outcome": f"{outcome}, roc_auc {challenger_auc:.4f} vs {champion_auc:.4f}, no interval",
    }


def prepare(data: Path, rows: int) -> float:
    """Train both models, log them to a temporary MLflow store and save the holdout with both
    models' probabilities. Returns the seconds both models took to predict the holdout."""
    import logging
    import warnings

    import lightgbm
    import mlflow
    import pandas as pd
    import skops.io
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(2024)
    train_x, train_y = make_rows(rng, TRAIN_ROWS)
    holdout_x, holdout_y = make_rows(rng, rows)
    train = pd.DataFrame(train_x, columns=FEATURES)
    holdout = pd.DataFrame(holdout_x, columns=FEATURES)
    champion = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(train, train_y)
    challenger = lightgbm.LGBMClassifier(n_estimators=200, num_leaves=31, verbose=-1)
    challenger.fit(train, train_y)

    started = time.perf_counter()
    champion_probs = champion.predict_proba(holdout)[:, 1]
    challenger_probs = challenger.predict_proba(holdout)[:, 1]
    predict_seconds = time.perf_counter() - started
    np.savez(
        data / "holdout.npz",
        features=holdout_x,
        labels=holdout_y,
        champion=champion_probs,
        challenger=challenger_probs,
    )

    mlflow.set_tracking_uri(f"sqlite:///{data / 'mlflow.db'}")
    experiment_id = mlflow.create_experiment(
        "evaluation-speed", artifact_location=(data / "artifacts").as_uri()
    )
    mlflow.set_experiment(experiment_id=experiment_id)
    uris = {}
    with mlflow.start_run():
        for role, model in (("champion", champion), ("challenger", challenger)):
            # MLflow 3.17 saves scikit-learn models with skops, which must be told to trust
            # LightGBM's classes; the sklearn flavour is what gives the evaluator predict_proba.
            trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
            uris[role] = mlflow.sklearn.log_model(
                model, name=role, input_example=train.head(5), skops_trusted_types=trusted
            ).model_uri
    setup = {"tracking_uri": mlflow.get_tracking_uri(), "experiment_id": experiment_id, **uris}
    (data / "mlflow.json").write_text(json.dumps(setup))
    return predict_seconds


def in_subprocess(*args: str) -> dict:
    completed = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="holdout rows")
    parser.add_argument(
        "--baseline-rows", type=int, default=None, help="rows for MLflow (default: --rows)"
    )
    parser.add_argument("--side", choices=["ours", "mlflow"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "ours":
        print(json.dumps(run_ours(args.data)))
        return
    if args.side == "mlflow":
        print(json.dumps(run_mlflow(args.data, args.baseline_rows)))
        return

    rows = args.rows
    baseline_rows = min(args.baseline_rows or rows, rows)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        predict_seconds = prepare(data, rows)
        ours = in_subprocess("--side", "ours", "--data", tmp)
        baseline = in_subprocess(
            "--side", "mlflow", "--data", tmp, "--baseline-rows", str(baseline_rows)
        )

    scale = rows / baseline_rows
    scaled = baseline["seconds"] * scale
    print(f"Holdout: {rows:,} rows; both models predict it in {predict_seconds:.1f} s.")
    print(f"Load average (1 min) before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f}.")
    print()
    print(
        "| evaluation | rows | wall s | CPU s | peak RSS (MB) | peak above RSS at start (MB) "
        "| outcome |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    named = {"ours: evaluate_challenger": ours, "MLflow evaluate ×2 + validate": baseline}
    for name, side in named.items():
        side_rows = baseline_rows if side is baseline else rows
        print(
            f"| {name} | {side_rows:,} | {side['seconds']:.1f} | {side['cpu_seconds']:.1f} | "
            f"{side['peak_rss_mb']:.0f} | {side['peak_growth_mb']:.0f} | {side['outcome']} |"
        )
    if scale != 1:
        print(
            f"| MLflow, scaled linearly to {rows:,} (estimate, not measured) | {rows:,} | "
            f"{scaled:.1f} | {baseline['cpu_seconds'] * scale:.1f} | - | - | - |"
        )
    best = ours["seconds"]
    print()
    print(
        f"Speed ratio, MLflow / ours (wall): {scaled / best:.1f}× "
        f"({'MLflow time scaled linearly' if scale != 1 else 'both measured'}); "
        f"{(scaled - predict_seconds) / best:.1f}× after taking one predict_proba pass per "
        f"model ({predict_seconds:.1f} s) off MLflow's time (MLflow also calls predict)."
    )
    cpu_ratio = baseline["cpu_seconds"] * scale / ours["cpu_seconds"]
    print(
        f"CPU seconds, MLflow / ours: {cpu_ratio:.1f}× (steadier than wall time when other work "
        "shares the cores; MLflow uses both cores, ours one)."
    )
    headline = {
        "speedup_vs_mlflow": round(scaled / best, 2),
        "cpu_speedup_vs_mlflow": round(cpu_ratio, 2),
        "rows": rows,
        "ours_seconds": round(best, 2),
        "ours_peak_mb": round(ours["peak_rss_mb"]),
        "mlflow_peak_mb": round(baseline["peak_rss_mb"]),
    }
    print()
    print("| stage of ours (a second pass, stage by stage) | wall s | share of the timed call |")
    print("| --- | --- | --- |")
    for stage, stage_time in ours["stages"].items():
        share = "-" if stage.startswith(("not used", "whole")) else f"{stage_time / best:.0%}"
        print(f"| {stage} | {stage_time:.2f} | {share} |")
    headline["stages_seconds"] = {name: round(value, 3) for name, value in ours["stages"].items()}
    print("RESULT " + json.dumps(headline))


if __name__ == "__main__":
    main()
