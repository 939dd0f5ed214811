"""Hyperparameter search with Optuna over a policy's `tuning.search_space`.

Each trial is scored by k-fold cross-validation on the training split with the policy's
promotion metric (the validation split stays unseen, so the version's validation score is not
chosen by the search) and logged as an MLflow run nested under the training run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from policies.schema import LOWER_IS_BETTER, Policy
from workflow import modeling

log = logging.getLogger(__name__)


class TrialFailed(Exception):
    """A trial's hyperparameters could not be fitted; the study records it failed and goes on."""


class NoTrialCompleted(RuntimeError):
    """Every trial of the study failed or was pruned, so there are no best parameters."""


@dataclass(frozen=True)
class TuningResult:
    """The outcome of a study: the best parameters found and how they were found."""

    best_params: dict[str, Any]
    best_value: float
    best_trial: int
    completed: int
    pruned: int
    failed: int

    def tags(self, metric: str) -> dict[str, str]:
        """The `tuning.*` tags recorded on the training run and the version."""
        return {
            "tuning.metric": f"cv_{metric}",
            "tuning.best_value": f"{self.best_value:.6f}",
            "tuning.best_trial": str(self.best_trial),
            "tuning.trials": str(self.completed),
            "tuning.pruned": str(self.pruned),
            "tuning.failed": str(self.failed),
        }


def folds(
    labels: pd.Series, task: str, count: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded k-fold splits of the training rows; stratified by class for classification when
    every class has enough rows."""
    from sklearn.model_selection import KFold, StratifiedKFold

    positions = np.arange(len(labels))
    if task != "regression" and labels.value_counts().min() >= count:
        splitter = StratifiedKFold(n_splits=count, shuffle=True, random_state=seed)
        return list(splitter.split(positions, labels.astype(str)))
    return list(KFold(n_splits=count, shuffle=True, random_state=seed).split(positions))


def tune(policy: Policy, frame: pd.DataFrame, labels: pd.Series) -> TuningResult:
    """Search the policy's space on `frame` (the training split); every trial a nested MLflow
    run under the active one with its parameters and cross-validated metric. Seeded sampler,
    trials one after another, so the same data and seed give the same search."""
    import mlflow
    import optuna

    tuning, metric, task = policy.tuning, policy.promotion.metric, policy.task
    assert tuning is not None
    splits = folds(labels.reset_index(drop=True), task, tuning.folds, tuning.seed)
    frame, labels = frame.reset_index(drop=True), labels.reset_index(drop=True)
    features = policy.source.features

    def objective(trial: optuna.Trial) -> float:
        params = {name: _suggest(trial, name, space) for name, space in tuning.search_space.items()}
        with mlflow.start_run(run_name=f"trial {trial.number}", nested=True):
            mlflow.set_tag("tuning.trial", str(trial.number))
            mlflow.log_params(params)
            scores: list[float] = []
            for step, (fit_rows, check_rows) in enumerate(splits):
                try:
                    pipeline = modeling.build_pipeline(
                        policy.model,
                        features,
                        hyperparameters={**policy.model.hyperparameters, **params},
                    )
                    pipeline.fit(frame.iloc[fit_rows], labels.iloc[fit_rows])
                    scores.append(
                        modeling.validation_score(
                            pipeline, frame.iloc[check_rows], labels.iloc[check_rows], metric, task
                        )
                    )
                except Exception as error:  # the estimator's refusal of these values
                    mlflow.set_tag("tuning.state", "failed")
                    mlflow.set_tag("tuning.error", str(error)[:500])
                    raise TrialFailed(str(error)) from error
                value = float(np.mean(scores))
                mlflow.log_metric(f"cv_{metric}", value, step=step)
                trial.report(value, step)
                if trial.should_prune():
                    mlflow.set_tag("tuning.state", "pruned")
                    raise optuna.TrialPruned(f"pruned after fold {step + 1}")
            mlflow.set_tag("tuning.state", "complete")
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize" if metric in LOWER_IS_BETTER else "maximize",
        sampler=optuna.samplers.TPESampler(seed=tuning.seed),
        pruner=(
            optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
            if tuning.pruning
            else optuna.pruners.NopPruner()
        ),
    )
    study.optimize(
        objective,
        n_trials=tuning.trials,
        timeout=None if tuning.timeout_minutes is None else tuning.timeout_minutes * 60,
        catch=(TrialFailed,),
    )
    states = [trial.state for trial in study.trials]
    completed = states.count(optuna.trial.TrialState.COMPLETE)
    if not completed:
        raise NoTrialCompleted(
            f"tuning of {policy.model_name}: none of {len(states)} trials completed "
            "(see the nested runs' tuning.error)"
        )
    log.info("tuning: best %s %.6f with %s", metric, study.best_value, study.best_params)
    return TuningResult(
        best_params=dict(study.best_params),
        best_value=float(study.best_value),
        best_trial=study.best_trial.number,
        completed=completed,
        pruned=states.count(optuna.trial.TrialState.PRUNED),
        failed=states.count(optuna.trial.TrialState.FAIL),
    )


def _suggest(trial: Any, name: str, space: Any) -> Any:
    if space.type == "int":
        return trial.suggest_int(name, space.low, space.high, step=space.step, log=space.log)
    if space.type == "float":
        return trial.suggest_float(name, space.low, space.high, log=space.log)
    return trial.suggest_categorical(name, space.choices)
