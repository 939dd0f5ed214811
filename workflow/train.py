"""Task bodies of train_<model>: extract a window, validate it, train, log and register."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import pandas as pd
from airflow.sdk import ObjectStoragePath

import registry
from policies.schema import LOWER_IS_BETTER, Policy
from promotion.records import CHALLENGER
from registry.moves import current_ledger
from registry.validation_records import ValidationRecord, record_validation
from workflow import modeling
from workflow.runs import RunContext, code_version, run_storage
from workflow.sources import describe_url, read_window, resolve_url, windows_for
from workflow.validation import DataValidationError, window_problems

EXTRACT_FILE = "training_window.parquet"
VALIDATION_SHARE = 0.2  # the newest 20% of the training window scores the fit
VERDICT_TAG, REASON_TAG = "promotion.verdict", "promotion.reason"
REJECTED_AT_TRAINING = "rejected_at_training"


@dataclass(frozen=True)
class TrainingWindow:
    """What extract_window hands to the next tasks over XCom: where the extracted rows are in
    shared storage (a URL any worker can open) and which window of which source they are."""

    data_url: str
    rows: int
    source: str
    selection: str
    window_start: str
    window_end: str
    holdout_start: str
    holdout_end: str

    def to_xcom(self) -> dict:
        """The JSON-able form a task returns."""
        return asdict(self)

    @classmethod
    def from_xcom(cls, value: dict) -> TrainingWindow:
        """The record from what `to_xcom` returned."""
        return cls(**value)

    def read(self) -> pd.DataFrame:
        """The extracted rows, from shared storage."""
        with ObjectStoragePath(self.data_url).open("rb") as file:
            return pd.read_parquet(file)


@dataclass(frozen=True)
class Candidate:
    """What train_candidate hands to register_candidate over XCom: the version it registered."""

    model: str
    version: int
    run_id: str | None

    def to_xcom(self) -> dict:
        """The JSON-able form a task returns."""
        return asdict(self)

    @classmethod
    def from_xcom(cls, value: dict) -> Candidate:
        """The record from what `to_xcom` returned."""
        return cls(**value)


def extract(policy: Policy, as_of: datetime, storage_root: str, run: RunContext) -> TrainingWindow:
    """Read the training window from the source into the run's folder of shared storage."""
    url = resolve_url(policy.source)
    training, holdout = windows_for(as_of, policy.source)
    frame = read_window(url, policy.source, training)
    path = run_storage(storage_root, run) / EXTRACT_FILE
    with path.open("wb") as file:
        frame.to_parquet(file, index=False)
    return TrainingWindow(
        data_url=str(path),
        rows=len(frame),
        source=describe_url(url),
        selection=policy.source.table or "query",
        window_start=training.start.isoformat(),
        window_end=training.end.isoformat(),
        holdout_start=holdout.start.isoformat(),
        holdout_end=holdout.end.isoformat(),
    )


def validate(policy: Policy, window: TrainingWindow, run: RunContext) -> TrainingWindow:
    """Fail with every problem of the extracted window, before anything is trained or registered.

    Every validated window is recorded in the ledger database, passed or failed, with its checks.
    """
    frame = window.read()
    problems = window_problems(frame, policy.source, policy.validation, policy.task)
    record_validation(
        current_ledger().url,
        ValidationRecord(
            model_name=policy.model_name,
            validated_at=datetime.now(UTC).isoformat(timespec="seconds"),
            window_start=window.window_start,
            window_end=window.window_end,
            rows=len(frame),
            passed=not problems,
            failed_checks=tuple(problems),
            run_id=run.run_id,
        ),
    )
    if problems:
        where = (
            f"training window {window.window_start} → {window.window_end} of {policy.model_name}"
        )
        raise DataValidationError(where, problems)
    return window


class TrainingRejected(ValueError):
    """The candidate missed the policy's training-quality gate: registered, never challenger."""


def gate_verdict(policy: Policy, validation_score: float) -> str | None:
    """Why the validation score misses `model.validation_gate` (None: it passes or no gate)."""
    gate, metric = policy.model.validation_gate, policy.promotion.metric
    if gate is None:
        return None
    missed = validation_score > gate if metric in LOWER_IS_BETTER else validation_score < gate
    if not missed:
        return None
    bound = "at most" if metric in LOWER_IS_BETTER else "at least"
    return (
        f"validation {metric} {validation_score:.4f} misses model.validation_gate: {bound} {gate:g}"
    )


def train_and_register(
    policy: Policy,
    window: TrainingWindow,
    run: RunContext,
    artifact_root: str | None = None,
    trigger: dict[str, str] | None = None,
) -> Candidate:
    """Train the pipeline (after the policy's tuning, if any), log it to MLflow with its dataset,
    register it as a new version; the heavy half of a training run (`name_challenger` then moves
    the alias). A version that misses the training-quality gate is registered and recorded as
    rejected, so the run's reason and its numbers stay on it.

    A retried task finds the version its earlier attempt registered (by its lineage run id) and
    only completes what is missing, so a retry never registers the same training twice.
    """
    name = policy.model_name
    existing = registry.find_version_by_tag(name, "lineage.airflow_run_id", run.run_id)
    if existing is None:
        existing = _train_log_register(policy, window, run, artifact_root, trigger or {})
    if existing.tags.get(VERDICT_TAG) == REJECTED_AT_TRAINING:
        score_tag = f"train.validation_{policy.promotion.metric}"
        registry.record_transition(
            name,
            existing.version,
            "rejected",
            actor=run.actor,
            reason=existing.tags.get(REASON_TAG, "rejected at training"),
            evidence={
                score_tag.removeprefix("train."): existing.tags.get(score_tag),
                "validation_gate": policy.model.validation_gate,
            },
        )
    return Candidate(model=name, version=existing.version, run_id=existing.run_id)


def _train_log_register(
    policy: Policy,
    window: TrainingWindow,
    run: RunContext,
    artifact_root: str | None,
    trigger: dict[str, str],
) -> registry.VersionInfo:
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from workflow.profile import log_profile

    name, task, metric = policy.model_name, policy.task, policy.promotion.metric
    frame = window.read()
    features, target = policy.source.features.all, policy.source.target
    fit, check = split_for_validation(frame)
    seed = policy.model.seed

    _use_experiment(name, artifact_root)
    with mlflow.start_run(
        run_name=f"train {window.window_start[:10]}..{window.window_end[:10]}"
    ) as mlrun:
        mlflow.set_tags({"airflow.dag_id": run.dag_id, "airflow.run_id": run.run_id, **trigger})
        log_profile(frame, policy.source.features)
        hyperparameters = dict(policy.model.hyperparameters)
        tuning_tags: dict[str, str] = {}
        if policy.tuning is not None:
            from workflow.tuning import tune

            tuned = tune(policy, fit[features], fit[target])
            hyperparameters.update(tuned.best_params)
            tuning_tags = tuned.tags(metric)
            mlflow.set_tags(tuning_tags)
        pipeline = modeling.build_pipeline(
            policy.model, policy.source.features, seed, hyperparameters
        )
        pipeline.fit(fit[features], fit[target])
        used = modeling.parameters_used(policy.model, seed, hyperparameters)
        validation_score = modeling.validation_score(
            pipeline, check[features], check[target], metric, task
        )
        rejection = gate_verdict(policy, validation_score)
        lineage = {
            "lineage.task": task,
            "lineage.estimator": policy.model.import_path,
            "lineage.params": json.dumps(used, sort_keys=True),
            "lineage.seed": str(seed),
        }
        mlflow.log_params(
            {
                **{key.removeprefix("lineage."): value for key, value in lineage.items()},
                **used,
                "window_start": window.window_start,
                "window_end": window.window_end,
                "rows": window.rows,
            }
        )
        mlflow.log_metric(f"validation_{metric}", validation_score)
        dataset = window_dataset(
            frame,
            window.source,
            window.selection,
            policy.source.time_column,
            window.window_start,
            window.window_end,
            target,
        )
        mlflow.log_input(dataset, context="training")
        example = fit[features].head(5)
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(example, signature_output(pipeline, example, task)),
            input_example=example,
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
            skops_trusted_types=modeling.untrusted_types(pipeline, policy.model.trusted_types),
            pip_requirements=modeling.pip_requirements(pipeline),
        )
    tags = {
        "lineage.source": window.source,
        "lineage.selection": window.selection,
        "lineage.window_start": window.window_start,
        "lineage.window_end": window.window_end,
        "lineage.holdout_start": window.holdout_start,
        "lineage.holdout_end": window.holdout_end,
        "lineage.rows": str(window.rows),
        "lineage.dataset_digest": dataset.digest,
        "lineage.code_version": code_version(),
        "lineage.airflow_dag_id": run.dag_id,
        "lineage.airflow_run_id": run.run_id,
        "lineage.triggered_by": run.triggered_by,
        **lineage,
        **trigger,
        **tuning_tags,
        f"train.validation_{metric}": f"{validation_score:.6f}",
    }
    if rejection is not None:
        tags |= {VERDICT_TAG: REJECTED_AT_TRAINING, REASON_TAG: rejection}
    registry.ensure_registered_model(name, policy.description)
    return registry.register_version(
        name,
        info.model_uri,
        run_id=mlrun.info.run_id,
        tags=tags,
        description=(
            f"Candidate trained by `{run.dag_id}` on {window.rows} rows "
            f"[{window.window_start}, {window.window_end})."
            + (f" Rejected at training: {rejection}." if rejection else "")
        ),
    )


def signature_output(model: object, example: pd.DataFrame, task: str) -> pd.DataFrame | object:
    """What the logged model's signature says it answers: the positive-class probability
    (binary), one probability column per class, named by the class (multiclass), or the value
    (regression)."""
    answer = modeling.predictions(model, example, task)
    if task == "multiclass":
        return pd.DataFrame(answer, columns=[str(c) for c in modeling.class_labels(model)])
    return answer


def name_challenger(policy: Policy, candidate: Candidate, run: RunContext) -> dict:
    """Point `challenger` at the trained version: the training run's one alias move. A version
    rejected at training is never named; the task fails with the gate's reason."""
    version = registry.get_version(candidate.model, candidate.version)
    if version.tags.get(VERDICT_TAG) == REJECTED_AT_TRAINING:
        raise TrainingRejected(
            f"{candidate.model} v{version.version} is not challenger: "
            f"{version.tags.get(REASON_TAG, 'rejected at training')}"
        )
    metric = policy.promotion.metric
    registry.move_alias(
        candidate.model,
        CHALLENGER,
        version.version,
        kind="candidate",
        actor=run.actor,
        reason=f"new candidate trained on [{version.tags['lineage.window_start']}, {version.tags['lineage.window_end']})",
        evidence={f"validation_{metric}": version.tags.get(f"train.validation_{metric}")},
    )
    return candidate.to_xcom()


def split_for_validation(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows a candidate is fitted on, and the newest VALIDATION_SHARE of the window that
    scores the fit (training and reproducing a version split alike)."""
    cut = int(len(frame) * (1 - VALIDATION_SHARE))
    return frame.iloc[:cut], frame.iloc[cut:]


def window_dataset(
    frame: pd.DataFrame,
    source: str,
    selection: str,
    time_column: str,
    start: str,
    end: str,
    target: str,
):
    """The MLflow dataset of an extracted window; its digest is the version's
    `lineage.dataset_digest`, so a re-extraction is compared by the same computation."""
    import mlflow

    from workflow.lineage import SqlWindowSource

    return mlflow.data.from_pandas(
        frame,
        source=SqlWindowSource(source, selection, time_column, start, end),
        name=f"{selection}[{start[:10]}..{end[:10]})",
        targets=target,
    )


def _use_experiment(name: str, artifact_root: str | None) -> None:
    """Select the model's experiment, creating it under `artifact_root` when one is configured."""
    import mlflow

    if mlflow.get_experiment_by_name(name) is None:
        location = f"{artifact_root.rstrip('/')}/{name}" if artifact_root else None
        mlflow.create_experiment(name, artifact_location=location)
    mlflow.set_experiment(name)
