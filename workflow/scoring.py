"""One model's predictions on a frame, shaped per task, whatever produced the model.

The evaluation core, the rollback preflight and training all score through here, so a scikit-learn
pipeline of this project and a model registered from a notebook are scored the same way. A model
with `predict_proba` (a scikit-learn classifier) gives its probabilities; any other model (an MLflow
pyfunc model, logged without the scikit-learn flavor) is read from what its `predict` returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# How far a row of class probabilities may sum from 1 (float rounding in a model's output).
_SUM_TOLERANCE = 1e-3


class ScoringError(ValueError):
    """A model's output does not fit the task (its shape, its values); the message says what was
    expected and what came back."""


@dataclass(frozen=True)
class Scored:
    """A model's answers on some rows: `values` shaped as `predictions` returns them and, for
    `multiclass`, the class each probability column stands for."""

    values: np.ndarray
    classes: tuple | None = None


def class_labels(model: Any) -> list:
    """The classes a classifier's probability columns stand for, in column order: its `classes_`,
    else the column names of a pyfunc model's output signature."""
    classes = getattr(model, "classes_", None)
    if classes is not None:
        return list(np.asarray(classes).tolist())
    names = _output_names(model)
    if names is None:
        raise ValueError(f"{type(model).__name__} has no classes_: not a fitted classifier")
    return names


def predictions(model: Any, frame: pd.DataFrame, task: str) -> np.ndarray:
    """The model's answer for each row of `frame`: for `binary` the positive-class probability
    (1-D), for `multiclass` the class probabilities (n × k, in `class_labels` order), for
    `regression` the predicted value (1-D float). ScoringError when the output does not fit."""
    return scored(model, frame, task).values


def scored(model: Any, frame: pd.DataFrame, task: str) -> Scored:
    """`predictions` with the class of each probability column (multiclass), checked to fit the
    task: one answer per row, no NaN, probabilities in [0, 1]."""
    if task not in ("binary", "multiclass", "regression"):
        raise ValueError(f"unknown task {task!r}; use binary, multiclass or regression")
    if task != "regression" and hasattr(model, "predict_proba"):
        output: Any = model.predict_proba(frame)
        names = class_labels(model) if task == "multiclass" else None
    else:
        output = model.predict(frame)
        names = None
    columns = [str(c) for c in output.columns] if isinstance(output, pd.DataFrame) else None
    try:
        values = np.asarray(output, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ScoringError(f"a {task} model answers numbers; its output is not: {error}") from None
    if values.ndim == 2 and values.shape[1] == 1 and task != "multiclass":
        values = values[:, 0]
    if len(values) != len(frame):
        raise ScoringError(f"{len(values)} answers for {len(frame)} rows")
    missing = int(np.isnan(values).sum())
    if missing:
        raise ScoringError(f"the model answered NaN for {missing} value(s) of {values.size}")
    if task == "regression":
        if values.ndim != 1:
            raise ScoringError(f"a regression model answers one value per row, got {values.shape}")
        return Scored(values)
    if task == "binary":
        return Scored(_positive_probability(values))
    return Scored(*_class_probabilities(values, columns or names or _output_names(model)))


def _positive_probability(values: np.ndarray) -> np.ndarray:
    if values.ndim == 2 and values.shape[1] == 2:
        values = values[:, 1]
    elif values.ndim != 1:
        raise ScoringError(
            "a binary model answers two probability columns or one probability per row, "
            f"got shape {values.shape}"
        )
    if values.size and (values.min() < 0 or values.max() > 1):
        raise ScoringError(
            "a binary model answers the positive-class probability, in [0, 1]; got values in "
            f"[{values.min():g}, {values.max():g}] (a score or a class label is not a probability)"
        )
    return values


def _class_probabilities(values: np.ndarray, names: list | None) -> tuple[np.ndarray, tuple]:
    if values.ndim != 2 or values.shape[1] < 2:
        raise ScoringError(
            f"a multiclass model answers one probability column per class, got shape {values.shape}"
        )
    if values.size and (values.min() < 0 or values.max() > 1):
        raise ScoringError("a multiclass model answers class probabilities, in [0, 1]; got others")
    off = np.abs(values.sum(axis=1) - 1)
    if values.size and off.max() > _SUM_TOLERANCE:
        raise ScoringError(
            f"a multiclass model's probabilities of a row sum to 1; {int((off > _SUM_TOLERANCE).sum())} "
            "row(s) do not"
        )
    classes = list(range(values.shape[1])) if names is None else list(names)
    if len(classes) != values.shape[1]:
        raise ScoringError(f"{values.shape[1]} probability columns for {len(classes)} classes")
    return values, tuple(classes)


def _output_names(model: Any) -> list | None:
    """The column names of a pyfunc model's output signature, None when it has none."""
    metadata = getattr(model, "metadata", None)
    schema = metadata.get_output_schema() if metadata is not None else None
    if schema is None or not schema.has_input_names():
        return None
    return list(schema.input_names())
