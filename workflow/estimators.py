"""The estimator a policy's `model` section names, built and checked against its parameters.

This imports the estimator's library (scikit-learn, LightGBM, the user's factory module), so it
runs in a task (`check_policy` of train_<model>) or in `python -m policies check`, never while DAG
files are parsed. Every problem comes back as a `field.path: what is wrong` line.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from policies.loader import PolicyError
from policies.schema import FeatureColumns, ModelSpec, Policy, Tuning

# Parameters that seed an estimator's randomness; one given by the policy is left alone.
SEED_PARAMETERS = ("random_state", "seed", "random_seed")
SAMPLE_ROWS = 60


class ModelSpecError(ValueError):
    """The policy's `model` (or `tuning`) section cannot build the estimator it describes."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def field_of(spec: ModelSpec) -> str:
    """The policy field that names the estimator: model.flavor, model.estimator or model.factory."""
    if spec.flavor is not None:
        return "model.flavor"
    return "model.estimator" if spec.estimator is not None else "model.factory"


def resolve(path: str) -> Any:
    """The object an import path names: `package.module.Name` or `package.module:function`."""
    module_name, _, attribute = path.rpartition(":") if ":" in path else path.rpartition(".")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ImportError(f"module {module_name!r} has no {attribute!r}") from None


def base_estimator(spec: ModelSpec) -> Any:
    """A fresh, unfitted estimator (or the factory's pipeline) with its default parameters."""
    return resolve(spec.import_path)()


def is_full_pipeline(estimator: Any) -> bool:
    """Whether a factory returned a whole scikit-learn Pipeline, which is then used as it is
    (it does its own preprocessing of the raw feature columns)."""
    from sklearn.pipeline import Pipeline

    return isinstance(estimator, Pipeline)


def is_lightgbm(estimator: Any) -> bool:
    """Whether the estimator is one of LightGBM's scikit-learn estimators."""
    return type(estimator).__module__.startswith("lightgbm.")


def parameter_names(estimator: Any) -> set[str]:
    """Every hyperparameter name the estimator takes. LightGBM also takes its native parameters
    and their aliases as keywords, and only warns at fit about one it does not know, so a
    misspelt one would otherwise train with the default in silence."""
    names = set(estimator.get_params(deep=True))
    if is_lightgbm(estimator):
        from lightgbm.basic import _ConfigAliases

        native = _ConfigAliases._get_all_param_aliases()
        names |= set(native) | {alias for aliases in native.values() for alias in aliases}
    return names


def parameters_used(
    estimator: Any, hyperparameters: Mapping[str, Any], seed: int
) -> dict[str, Any]:
    """The hyperparameters the estimator is given: the policy's (or the tuned ones), plus the
    seed wherever the estimator takes one the policy left unset, LightGBM kept quiet and
    scikit-learn's ensembles on one core (so a version trains alike on any machine)."""
    params = dict(hyperparameters)
    defaults = estimator.get_params(deep=True)
    if not set(params) & set(SEED_PARAMETERS):
        for name, value in defaults.items():
            if (name == "random_state" or name.endswith("__random_state")) and value is None:
                params.setdefault(name, seed)
    if is_lightgbm(estimator):
        if not {"verbose", "verbosity"} & set(params):
            params["verbose"] = -1
    elif type(estimator).__module__.startswith("sklearn.ensemble") and "n_jobs" in defaults:
        params.setdefault("n_jobs", 1)
    return params


def make_estimator(
    spec: ModelSpec, hyperparameters: Mapping[str, Any] | None = None, seed: int | None = None
) -> tuple[Any, dict[str, Any]]:
    """The unfitted estimator of `spec` with `hyperparameters` (default: the policy's) and the
    parameters it was actually given; raises ModelSpecError for a name it does not take."""
    estimator = base_estimator(spec)
    given = dict(spec.hyperparameters if hyperparameters is None else hyperparameters)
    problems = unknown_names(spec, estimator, given, "model.hyperparameters")
    if problems:
        raise ModelSpecError(problems)
    params = parameters_used(estimator, given, spec.seed if seed is None else seed)
    estimator.set_params(**params)
    return estimator, params


def unknown_names(
    spec: ModelSpec, estimator: Any, names: Mapping[str, Any] | list[str], where: str
) -> list[str]:
    """One problem per name the estimator does not take, with the likeliest meant name."""
    known = parameter_names(estimator)
    problems = []
    for name in names:
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"{where}.{name}: not a parameter of {spec.import_path}{hint}")
    return problems


def spec_problems(
    spec: ModelSpec, features: FeatureColumns, tuning: Tuning | None = None
) -> list[str]:
    """Every problem of a model section (and its tuning): an import path that does not resolve
    to an estimator for the task, hyperparameter names it does not take, values it refuses
    (scikit-learn's parameter constraints where the estimator has them, else a fit on a small
    synthetic sample, which is how LightGBM reports e.g. `num_leaves: -3`)."""
    where = field_of(spec)
    try:
        target = resolve(spec.import_path)
    except (ImportError, ValueError) as error:
        return [f"{where}: cannot import {spec.import_path!r}: {error}"]
    if spec.factory is not None:
        if not callable(target):
            return [f"{where}: {spec.factory!r} is not callable"]
        try:
            estimator = target()
        except Exception as error:  # the user's code: any failure is the policy's problem
            return [f"{where}: calling {spec.factory} failed: {type(error).__name__}: {error}"]
    elif not isinstance(target, type):
        return [f"{where}: {spec.import_path!r} is not a class"]
    else:
        try:
            estimator = target()
        except Exception as error:
            return [f"{where}: {spec.import_path}() failed: {type(error).__name__}: {error}"]
    problems = _kind_problems(spec, estimator, where)
    if problems:
        return problems
    problems += unknown_names(spec, estimator, spec.hyperparameters, "model.hyperparameters")
    if tuning is not None:
        problems += unknown_names(spec, estimator, list(tuning.search_space), "tuning.search_space")
    known = parameter_names(estimator)
    candidates = [
        (f"model.hyperparameters.{name}", name, value)
        for name, value in spec.hyperparameters.items()
        if name in known
    ]
    if tuning is not None:
        for name, search in tuning.search_space.items():
            if name in known:
                values = (
                    search.choices if search.type == "categorical" else [search.low, search.high]
                )
                candidates += [(f"tuning.search_space.{name}", name, value) for value in values]
    return problems + _value_problems(spec, estimator, features, candidates, together=not problems)


def policy_problems(policy: Policy) -> list[str]:
    """Every problem of a policy's model and tuning sections (see `spec_problems`)."""
    return spec_problems(policy.model, policy.source.features, policy.tuning)


def check_policy(policy: Policy, path: Path | str) -> str:
    """Raise PolicyError naming the file and each bad field of the model and tuning sections;
    what was checked, when all is well."""
    problems = policy_problems(policy)
    if problems:
        raise PolicyError(path, problems)
    tuned = f", {len(policy.tuning.search_space)} tuned" if policy.tuning else ""
    return (
        f"{path}: {policy.model.import_path} takes the {len(policy.model.hyperparameters)} "
        f"hyperparameters{tuned} of {policy.model_name}'s policy"
    )


def _kind_problems(spec: ModelSpec, estimator: Any, where: str) -> list[str]:
    from sklearn.base import is_classifier
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    path = spec.import_path
    if not (hasattr(estimator, "get_params") and hasattr(estimator, "fit")):
        return [f"{where}: {path} is not a scikit-learn estimator (it needs get_params and fit)"]
    if spec.factory is not None:
        try:
            check_is_fitted(estimator)
            return [f"{where}: {path} returned a fitted estimator; return an unfitted one"]
        except (NotFittedError, TypeError):
            pass
    if spec.task == "regression":
        if is_classifier(estimator):
            return [f"{where}: {path} is a classifier; a regression task needs a regressor"]
        if not hasattr(estimator, "predict"):
            return [f"{where}: {path} has no predict"]
    elif not hasattr(estimator, "predict_proba"):
        return [
            f"{where}: {path} gives no class probabilities (predict_proba); "
            f"a {spec.task} task needs them"
        ]
    return []


def _value_problems(
    spec: ModelSpec,
    estimator: Any,
    features: FeatureColumns,
    candidates: list[tuple[str, str, Any]],
    together: bool,
) -> list[str]:
    """Problems of hyperparameter values: by the owning estimator's scikit-learn constraints
    when it declares them, else by fitting the pipeline with that one value on a small sample;
    then (`together`) one fit with every fixed value at once."""
    problems = []
    fit_checked = []
    for field, name, value in candidates:
        constraints, leaf = _constraints(estimator, name)
        if constraints is not None and leaf in constraints:
            message = _constraint_problem(constraints, leaf, value, type(estimator).__name__)
            if message:
                problems.append(f"{field}: {message}")
        else:
            fit_checked.append((field, name, value))
    if is_full_pipeline(estimator):
        # A factory's own pipeline may need data shaped as only its author knows; fitting it on
        # a synthetic sample could refuse a sound policy, so its values are not fitted here.
        return problems
    for field, name, value in fit_checked:
        refusal = _fit_refusal(spec, features, {name: value})
        if refusal:
            problems.append(f"{field}: {value!r} refused: {refusal}")
    if together and not problems:
        refusal = _fit_refusal(spec, features, dict(spec.hyperparameters))
        if refusal:
            problems.append(f"model.hyperparameters: fitting a small sample failed: {refusal}")
    return problems


def _constraints(estimator: Any, name: str) -> tuple[dict | None, str]:
    """The scikit-learn parameter constraints of the estimator owning `name` (a pipeline's
    `step__param` belongs to its step), and the name within that estimator."""
    owner_path, _, leaf = name.rpartition("__")
    owner = estimator.get_params(deep=True).get(owner_path) if owner_path else estimator
    return getattr(type(owner), "_parameter_constraints", None), leaf


def _constraint_problem(constraints: dict, name: str, value: Any, caller: str) -> str | None:
    from sklearn.utils._param_validation import (
        InvalidParameterError,
        validate_parameter_constraints,
    )

    try:
        validate_parameter_constraints(constraints, {name: value}, caller_name=caller)
    except InvalidParameterError as error:
        return str(error).replace(f"The {name!r} parameter of {caller} ", "")
    return None


def _fit_refusal(
    spec: ModelSpec, features: FeatureColumns, hyperparameters: dict[str, Any]
) -> str | None:
    """Why the pipeline with these hyperparameters cannot fit a small synthetic sample, if so."""
    from workflow.modeling import build_pipeline

    frame, target = synthetic_sample(features, spec.task)
    try:
        pipeline = build_pipeline(spec, features, spec.seed, hyperparameters)
        with contextlib.redirect_stdout(io.StringIO()):
            pipeline.fit(frame, target)
    except Exception as error:  # whatever the estimator raises is its refusal
        return _short(error)
    return None


def _short(error: Exception) -> str:
    """An estimator's error without the C++ source location LightGBM appends."""
    message = re.sub(r"\s+at \S+, line \d+\s*\.?", "", str(error)).strip()
    return f"{type(error).__name__}: {message.splitlines()[0] if message else ''}"


def synthetic_sample(features: FeatureColumns, task: str, rows: int = SAMPLE_ROWS):
    """A small frame of the policy's feature columns (numbers, text categories with a missing
    value) and a target of the task, to try an estimator's hyperparameters on."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            **{name: rng.uniform(1, 10, rows) for name in features.numeric},
            **{
                name: pd.Series(rng.choice(["a", "b", "c"], rows), dtype=object)
                for name in features.categorical
            },
        }
    )
    for name in features.categorical:
        frame.loc[0, name] = None
    index = np.arange(rows)
    if task == "regression":
        target = pd.Series(rng.normal(size=rows))
    elif task == "multiclass":
        target = pd.Series(index % 3)
    else:
        target = pd.Series(index % 2)
    return frame, target
