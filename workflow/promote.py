"""Task bodies of promote_<model>: evaluate both aliases on the same holdout, decide, act."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import registry
from policies.schema import Policy
from promotion.evaluation import (
    CalibrationGuardrail,
    EvaluationConfig,
    EvaluationResult,
    ModelFacts,
    SliceGuardrail,
    evaluate_challenger,
    evaluate_first_champion,
)
from promotion.records import CHALLENGER, CHAMPION
from registry.evaluation import artifact_size_bytes, input_schema, record_evaluation
from registry.retry import is_transient
from workflow import scoring
from workflow.champion_summary import publish_champion_summary
from workflow.params import require_version
from workflow.runs import RunContext
from workflow.sources import Window, read_window, resolve_url, windows_for
from workflow.validation import window_problems


class CannotEvaluate(ValueError):
    """The challenger could not be evaluated; it is tagged with why and no alias moved."""


@dataclass(frozen=True)
class Candidates:
    """What find_candidates hands to evaluate over XCom: the versions of both roles."""

    model: str
    challenger: int | None
    champion: int | None

    def to_xcom(self) -> dict:
        """The JSON-able form a task returns."""
        return asdict(self)

    @classmethod
    def from_xcom(cls, value: Mapping) -> Candidates:
        """The record from what `to_xcom` returned."""
        return cls(**value)


@dataclass(frozen=True)
class Evaluation:
    """What evaluate hands on over XCom (to the verdict, the approval, the promotion or the
    rollout): the versions compared, on which holdout, the verdict and the run with its report.
    `faulty` is the role whose model could not be loaded or scored, if any."""

    model: str
    challenger: int
    champion: int | None
    eval_run_id: str
    experiment_id: str
    holdout: str
    result: EvaluationResult
    holdout_origin: str = "lineage"
    faulty: str | None = None

    def evidence(self) -> dict:
        """The numbers an alias move made on this evaluation records as its evidence."""
        return _evidence(self.result, self.eval_run_id)

    def to_xcom(self) -> dict:
        """The JSON-able form a task returns (the result as its JSON dict)."""
        value = {item.name: getattr(self, item.name) for item in fields(self)}
        return {**value, "result": self.result.to_json_dict()}

    @classmethod
    def from_xcom(cls, value: Mapping) -> Evaluation:
        """The record from what `to_xcom` returned."""
        return cls(**{**value, "result": EvaluationResult.from_json_dict(value["result"])})


@dataclass(frozen=True)
class Promoted:
    """What promote_challenger hands on over XCom: the new champion, the one it replaced, and
    whether this run moved the alias (False: a retry found it moved)."""

    champion: int
    previous: int | None
    moved: bool

    def to_xcom(self) -> dict:
        """The JSON-able form a task returns."""
        return asdict(self)

    @classmethod
    def from_xcom(cls, value: Mapping) -> Promoted:
        """The record from what `to_xcom` returned."""
        return cls(**value)


def evaluation_config(policy: Policy, classes: tuple[str, ...] = ()) -> EvaluationConfig:
    """The evaluation settings of a policy, as the pure evaluation core takes them; `classes`
    names the probability columns of a multiclass evaluation."""
    rules = policy.promotion
    return EvaluationConfig(
        metric=rules.metric,
        mode=rules.mode,
        min_improvement=rules.min_improvement,
        margin=rules.margin,
        confidence=rules.confidence,
        resamples=rules.resamples,
        seed=rules.seed,
        slices=tuple(
            SliceGuardrail(
                column=rule.column,
                kind=rule.kind,
                max_regression=rule.max_regression,
                bins=tuple(rule.bins),
                min_rows=rule.min_rows,
                allow_insufficient=rule.allow_insufficient,
            )
            for rule in rules.slices
        ),
        calibration=None
        if rules.calibration is None
        else CalibrationGuardrail(
            rules.calibration.measure, rules.calibration.max_worsening, rules.calibration.bins
        ),
        max_latency_ms_per_row=rules.max_latency_ms_per_row,
        max_size_bytes=rules.max_size_bytes,
        task=policy.task,
        classes=classes,
    )


def find_candidates(policy: Policy, requested_version: int | None, run: RunContext) -> Candidates:
    """The challenger to evaluate (the given version, else the `challenger` alias) and the champion.

    A `challenger` alias set outside the workflow (a version registered from a notebook and
    aliased by hand) is taken up: the move is recorded as this run's, so the version's lifecycle
    is recorded from `candidate` on and its alias can be cleared like any other.
    """
    name = policy.model_name
    if requested_version is not None:
        challenger: int | None = require_version(name, requested_version).version
    else:
        challenger = registry.get_alias_version(name, CHALLENGER)
    champion = registry.get_alias_version(name, CHAMPION)
    if requested_version is None and challenger is not None and challenger != champion:
        _take_up_challenger(name, challenger, run)
    return Candidates(name, challenger, champion)


def _take_up_challenger(name: str, version: int, run: RunContext) -> None:
    history = registry.alias_history(name, CHALLENGER)
    if history and history[-1].to_version == version:
        return
    # Anyone may alias `challenger` (that is how a model from elsewhere asks to be evaluated), so
    # a hand-set challenger is recorded over the ledger's last move (the drift itself is kept)
    # instead of being refused as an alias moved outside the workflow.
    registry.move_alias(
        name,
        CHALLENGER,
        version,
        kind="candidate",
        actor=run.actor,
        reason=f"v{version} was aliased challenger outside the workflow; taken up for evaluation",
        force=bool(history),
    )


@dataclass(frozen=True)
class Holdout:
    """The rows a challenger is evaluated on, and why these."""

    window: Window
    origin: str  # "lineage": the challenger's own holdout; "policy": the policy's most recent
    why: str

    def tags(self) -> dict[str, str]:
        """The `eval.holdout*` tags that say on the version which rows were used and why."""
        return {
            "eval.holdout_start": self.window.start.isoformat(),
            "eval.holdout_end": self.window.end.isoformat(),
            "eval.holdout_origin": self.origin,
            "eval.holdout_reason": self.why,
        }


def holdout_for(policy: Policy, version: int, tags: dict[str, str], now: datetime) -> Holdout:
    """The challenger's own holdout (its `lineage.holdout_start/end`, rows no model of this
    workflow trained on), else the policy's most recent holdout window ending at `now`: a version
    registered from outside carries no lineage, and the freshest rows are the fairest test."""
    start, end = tags.get("lineage.holdout_start"), tags.get("lineage.holdout_end")
    if start and end:
        try:
            window = Window(datetime.fromisoformat(start), datetime.fromisoformat(end))
        except ValueError:
            problem = f"its lineage.holdout_start/end ({start!r}, {end!r}) are not ISO timestamps"
        else:
            return Holdout(window, "lineage", f"v{version}'s own holdout (lineage.holdout_*)")
    else:
        problem = "it has no lineage.holdout_start/end tags (registered outside the workflow)"
    _, window = windows_for(now, policy.source)
    why = (
        f"the policy's most recent holdout ({policy.source.holdout_days} days to "
        f"{now.isoformat()}): {problem}"
    )
    return Holdout(window, "policy", why)


@dataclass(frozen=True)
class _LoadedVersion:
    """A version's model with the facts its guardrails need, read once per evaluation."""

    model: Any
    size_bytes: int
    input_schema: tuple[tuple[str, str], ...] | None


def _load_versions(
    name: str, versions: dict[str, int | None]
) -> tuple[dict[str, _LoadedVersion], tuple[str, str] | None]:
    """Each role's version loaded once; and the first role whose artifacts cannot be read, with
    why (None when all can be).

    Only errors a retry cannot cure count: a transient one (a storage hiccup) is raised, so the
    task's retries try again.
    """
    loaded: dict[str, _LoadedVersion] = {}
    for role, version in versions.items():
        if version is None:
            continue
        try:
            loaded[role] = _LoadedVersion(
                registry.load_model(name, version),
                artifact_size_bytes(name, version),
                input_schema(name, version),
            )
        except Exception as error:  # missing files, a corrupt or foreign pickle, a bad MLmodel
            if is_transient(error):
                raise
            reason = f"{type(error).__name__}: {error}"
            return loaded, (role, f"{role} v{version}'s artifacts cannot be read: {reason}")
    return loaded, None


class _CannotScore(Exception):
    """A loaded model cannot answer the holdout as the task needs; the message says why."""


def _scored(
    loaded: _LoadedVersion, frame: pd.DataFrame, policy: Policy
) -> tuple[scoring.Scored, ModelFacts]:
    """A model's answers on the holdout, given the columns its input signature names (the policy's
    features without a signature), and the facts its guardrails need."""
    if loaded.input_schema is not None and all(column for column, _ in loaded.input_schema):
        columns = [column for column, _ in loaded.input_schema]
    else:
        columns = list(policy.source.features.all)
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise _CannotScore(f"input column(s) missing from the holdout: {', '.join(missing)}")
    started = time.perf_counter()
    try:
        answers = scoring.scored(loaded.model, frame[columns], policy.task)
    except Exception as error:  # the model's own code failed, or its output does not fit
        if is_transient(error):
            raise
        raise _CannotScore(f"{type(error).__name__}: {error}") from error
    per_row_ms = (time.perf_counter() - started) * 1000 / max(len(frame), 1)
    facts = ModelFacts(
        latency_ms_per_row=per_row_ms,
        size_bytes=loaded.size_bytes,
        input_schema=loaded.input_schema,
    )
    return answers, facts


def _score_versions(
    loaded: dict[str, _LoadedVersion], versions: dict[str, int | None], frame, policy: Policy
) -> tuple[dict[str, tuple[scoring.Scored, ModelFacts]], tuple[str, str] | None]:
    """Each loaded role's answers; and the first role that cannot be scored, with why."""
    answers = {}
    for role, version in versions.items():
        if role not in loaded:
            continue
        try:
            answers[role] = _scored(loaded[role], frame, policy)
        except _CannotScore as error:
            return answers, (role, f"{role} v{version} cannot be scored ({policy.task}): {error}")
    return answers, None


def encode_classes(
    labels: np.ndarray, answers: list[scoring.Scored]
) -> tuple[np.ndarray, list[np.ndarray], tuple[str, ...]]:
    """Multiclass labels as integer indices over the union of every model's classes (and any
    label no model knows), and each model's probabilities aligned to those columns: a class a
    model lacks gets probability 0. Classes are matched by their text, so 2 and "2" agree."""
    classes: list[str] = []
    for answer in answers:
        classes += [str(c) for c in answer.classes or () if str(c) not in classes]
    classes += sorted({str(label) for label in labels} - set(classes))
    column = {name: index for index, name in enumerate(classes)}
    codes = np.array([column[str(label)] for label in labels], dtype=np.int64)
    aligned = []
    for answer in answers:
        values = np.zeros((len(labels), len(classes)))
        for index, name in enumerate(answer.classes or ()):
            values[:, column[str(name)]] = answer.values[:, index]
        aligned.append(values)
    return codes, aligned, tuple(classes)


def evaluate(policy: Policy, candidates: Candidates, run: RunContext, now: datetime) -> Evaluation:
    """Score champion and challenger on the challenger's holdout window (fresh rows neither saw;
    the policy's most recent one, ending `now`, for a version without lineage), decide with the
    paired evaluation, and leave the evidence where a reviewer looks: an MLflow run with the
    report, and the version's tags and description."""
    name, challenger, champion = candidates.model, candidates.challenger, candidates.champion
    if challenger is None:
        raise ValueError(f"{name} has no challenger to evaluate")
    holdout = holdout_for(policy, challenger, registry.get_version(name, challenger).tags, now)
    frame = read_window(resolve_url(policy.source), policy.source, holdout.window)
    problems = window_problems(frame, policy.source, policy.validation, policy.task)
    labels = champion_p = challenger_p = None
    versions = {CHALLENGER: challenger, CHAMPION: champion}
    faulty: tuple[str, str] | None = None
    answers: dict[str, tuple[scoring.Scored, ModelFacts]] = {}
    if not problems:
        loaded, faulty = _load_versions(name, versions)
        if faulty is None:
            answers, faulty = _score_versions(loaded, versions, frame, policy)
            labels = frame[policy.source.target].to_numpy()
    classes: tuple[str, ...] = ()
    if answers and faulty is None and policy.task == "multiclass":
        roles = list(answers)
        labels, aligned, classes = encode_classes(labels, [answers[r][0] for r in roles])
        answers = {
            role: (scoring.Scored(values, classes), answers[role][1])
            for role, values in zip(roles, aligned, strict=True)
        }
    config = evaluation_config(policy, classes)
    base = {
        "metric": config.metric,
        "mode": config.mode,
        "required_lower_bound": config.required_lower_bound,
        "confidence": config.confidence,
        "rows": len(frame),
    }
    where = f"holdout {holdout.window.describe()}"
    if problems:
        result = EvaluationResult(
            "cannot_evaluate", tuple(f"{where}: {p}" for p in problems), **base
        )
    elif faulty is not None:
        result = EvaluationResult("cannot_evaluate", (f"{faulty[1]} on {where}",), **base)
    else:
        challenger_p, challenger_facts = answers[CHALLENGER][0].values, answers[CHALLENGER][1]
        if champion is None:
            result = evaluate_first_champion(
                config, labels=labels, challenger=challenger_p, challenger_facts=challenger_facts
            )
        else:
            champion_p, champion_facts = answers[CHAMPION][0].values, answers[CHAMPION][1]
            result = evaluate_challenger(
                config,
                labels=labels,
                champion=champion_p,
                challenger=challenger_p,
                slices={rule.column: frame[rule.column].to_numpy() for rule in config.slices},
                champion_facts=champion_facts,
                challenger_facts=challenger_facts,
            )
    run_id = _log_evaluation_run(
        name, candidates, result, run, holdout, labels, champion_p, challenger_p
    )
    from promotion.report import evaluation_tags, markdown_summary

    experiment_id = _experiment_id(run_id)
    summary = markdown_summary(result, run_link=f"#/experiments/{experiment_id}/runs/{run_id}")
    record_evaluation(
        name,
        challenger,
        {
            **evaluation_tags(result),
            **holdout.tags(),
            "eval.run_id": run_id,
            "eval.champion_version": str(champion or ""),
        },
        f"{summary}\n\nHoldout {holdout.window.describe()}: {holdout.why}.",
    )
    return Evaluation(
        model=name,
        challenger=challenger,
        champion=champion,
        eval_run_id=run_id,
        experiment_id=experiment_id,
        holdout=holdout.window.describe(),
        result=result,
        holdout_origin=holdout.origin,
        faulty=None if faulty is None else faulty[0],
    )


def _experiment_id(run_id: str) -> str:
    import mlflow

    return mlflow.get_run(run_id).info.experiment_id


def _log_evaluation_run(
    name: str,
    candidates: Candidates,
    result: EvaluationResult,
    run: RunContext,
    holdout: Holdout,
    labels: np.ndarray | None,
    champion: np.ndarray | None,
    challenger: np.ndarray | None,
) -> str:
    import mlflow

    from promotion.report import render_report

    versus = f"v{candidates.champion}" if candidates.champion else "no champion"
    mlflow.set_experiment(name)
    with mlflow.start_run(run_name=f"evaluate v{candidates.challenger} vs {versus}") as mlrun:
        mlflow.set_tags(
            {
                "eval.model": name,
                "eval.challenger_version": str(candidates.challenger),
                "eval.champion_version": str(candidates.champion or ""),
                "eval.verdict": result.verdict,
                "airflow.dag_id": run.dag_id,
                "airflow.run_id": run.run_id,
                **holdout.tags(),
            }
        )
        mlflow.log_params(
            {
                "metric": result.metric,
                "mode": result.mode,
                "confidence": result.confidence,
                "resamples": result.resamples,
                "seed": result.seed,
                "required_lower_bound": result.required_lower_bound,
            }
        )
        numbers = {
            "challenger_score": result.challenger_score,
            "champion_score": result.champion_score,
            "improvement": result.improvement,
            "ci_low": result.ci_low,
            "ci_high": result.ci_high,
            "p_value": result.p_value,
            "holdout_rows": float(result.rows),
        }
        mlflow.log_metrics({key: value for key, value in numbers.items() if value is not None})
        mlflow.log_dict(result.to_json_dict(), "evaluation.json")
        if challenger is not None and labels is not None:
            with tempfile.TemporaryDirectory() as scratch:
                report = render_report(
                    result,
                    labels=labels,
                    champion=champion,
                    challenger=challenger,
                    out_dir=Path(scratch),
                    title=f"{name}: v{candidates.challenger} vs {versus} on holdout "
                    f"{holdout.window.describe()} ({holdout.origin})",
                )
                (Path(scratch) / "report.html").write_text(report.html)
                mlflow.log_artifacts(scratch, artifact_path="evaluation")
        return mlrun.info.run_id


class NotPromoted(Exception):
    """The challenger stops here (rejected, or its approval did not come); nothing moved."""


def _evidence(result: EvaluationResult, eval_run_id: str) -> dict:
    return {
        "metric": result.metric,
        "challenger_score": result.challenger_score,
        "champion_score": result.champion_score,
        "improvement": result.improvement,
        "ci_low": result.ci_low,
        "ci_high": result.ci_high,
        "holdout_rows": result.rows,
        "eval_run_id": eval_run_id,
    }


def evidence_of(evaluation: Mapping, result: EvaluationResult) -> dict:
    """`Evaluation.evidence` of an evaluation in its XCom form, as workflow.rollout passes it."""
    return _evidence(result, evaluation["eval_run_id"])


def conclude_evaluation(policy: Policy, evaluation: Evaluation, run: RunContext) -> Evaluation:
    """Tag the verdict on the challenger. A rejected challenger loses its alias (NotPromoted); one
    that could not be evaluated fails the run (CannotEvaluate), and loses its alias when its own
    model could not be loaded or scored; a winner goes on."""
    name, challenger, result = evaluation.model, evaluation.challenger, evaluation.result
    reason = "; ".join(result.reasons)
    registry.set_version_tags(
        name,
        challenger,
        {
            "promotion.verdict": result.verdict,
            "promotion.reason": reason,
            "promotion.decided_by": run.actor,
        },
    )
    if result.verdict == "cannot_evaluate":
        if evaluation.faulty == CHALLENGER:
            clear_challenger(name, challenger, "reject", run, f"cannot be evaluated: {reason}", {})
        raise CannotEvaluate(f"v{challenger} of {name} cannot be evaluated: {reason}")
    evidence = evaluation.evidence()
    if result.verdict == "reject":
        clear_challenger(name, challenger, "reject", run, f"rejected: {reason}", evidence)
        raise NotPromoted(f"v{challenger} of {name} rejected: {reason}")
    registry.record_transition(
        name, challenger, "evaluated", actor=run.actor, reason=reason, evidence=evidence
    )
    return evaluation


def promote_evaluated(
    policy: Policy, evaluation: Evaluation, run: RunContext, approval: dict | None = None
) -> Promoted:
    """Move `champion` to the evaluated challenger and clear `challenger`.

    Refuses (NotPromoted) when `champion` moved since the evaluation: the verdict compared
    against a champion that no longer serves, so it must be evaluated again.
    """
    name, challenger = evaluation.model, evaluation.challenger
    evidence = evaluation.evidence()
    reason = with_approval("; ".join(evaluation.result.reasons), evidence, approval)
    try:
        # Compare-and-set under the registry's per-model lock: the verdict compared against
        # the champion of the evaluation, so a champion that moved since voids it.
        moved = registry.move_alias(
            name,
            CHAMPION,
            challenger,
            kind="promote",
            actor=run.actor,
            reason=reason,
            evidence=evidence,
            expected_from=evaluation.champion,
        )
    except registry.AliasMovedSinceDecision as moved_on:
        raise NotPromoted(
            f"{moved_on}; promote again to evaluate it against the current champion"
        ) from moved_on
    clear_challenger(name, challenger, "promote", run, "promoted to champion", evidence)
    publish_champion_summary(name)
    return Promoted(champion=challenger, previous=evaluation.champion, moved=moved is not None)


def promote_challenger(
    policy: Policy, evaluation: Mapping, run: RunContext, approval: dict | None = None
) -> dict:
    """`promote_evaluated` on an evaluation in its XCom form, returning the XCom form of
    `Promoted`: what workflow.rollout calls, and merges into its own answer."""
    return promote_evaluated(policy, Evaluation.from_xcom(evaluation), run, approval).to_xcom()


def with_approval(reason: str, evidence: dict, approval: dict | None) -> str:
    """Add who approved (if anyone had to) to a move's evidence and reason."""
    if approval is None:
        return reason
    evidence["approved_by"] = ",".join(approval["by"])
    return f"{reason}; approved by {', '.join(approval['by'])}"


def clear_challenger(
    name: str, version: int, kind: str, run: RunContext, reason: str, evidence: dict
) -> None:
    if registry.get_alias_version(name, CHALLENGER) == version:
        registry.move_alias(
            name, CHALLENGER, None, kind=kind, actor=run.actor, reason=reason, evidence=evidence
        )  # type: ignore[arg-type]
