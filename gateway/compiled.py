"""A fast scoring path for the project's own pipelines: the fitted preprocessing and estimator
compiled at load into plain numpy (and LightGBM's booster), so a one-row request skips the
ColumnTransformer's per-call DataFrame machinery, which costs far more than the model itself.

Plain numpy rather than a model compiler (treelite, lleaves, ONNX Runtime): the preprocessing the
workflow fits (median imputation, one-hot encoding) is a few array operations, LightGBM's own
booster already predicts a row in tens of microseconds once it is handed an array, and a linear
model is one matrix product; a compiler would add a build step and a dependency for no gain here.

`compile_pipeline` returns the compiled path only when it gives the pipeline's own outputs on the
version's input example and on probe rows (every known category, an unknown one, missing values);
otherwise the pipeline keeps answering and the returned note says why.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

# A version's input: a frame, or one array of values per column name (the compiled path's).
ModelInput = pd.DataFrame | Mapping[str, np.ndarray]

# How far a compiled answer may be from the pipeline's (float rounding of a different order of
# the same operations).
TOLERANCE = 1e-9


class NotCompilable(ValueError):
    """The pipeline has a step the compiled path does not reproduce; the message names it."""


@dataclass(frozen=True)
class _Numeric:
    """Columns read as numbers; a missing value becomes its column's fill (nan when none)."""

    columns: tuple[str, ...]
    fill: np.ndarray

    def block(self, frame: ModelInput) -> np.ndarray:
        values = np.column_stack(
            [np.asarray(frame[name], dtype=np.float64) for name in self.columns]
        )
        missing = np.isnan(values)
        if missing.any():
            values = np.where(missing, self.fill, values)
        return values


@dataclass(frozen=True)
class _OneHot:
    """Columns one-hot encoded with the fitted categories; an unknown category is all zeros."""

    columns: tuple[str, ...]
    positions: tuple[dict[Any, int], ...]
    nan_positions: tuple[int | None, ...]
    width: int
    offsets: tuple[int, ...]

    def block(self, frame: ModelInput) -> np.ndarray:
        rows = len(frame[self.columns[0]])
        out = np.zeros((rows, self.width))
        for name, index, nan_at, offset in zip(
            self.columns, self.positions, self.nan_positions, self.offsets, strict=True
        ):
            for row, value in enumerate(frame[name].tolist()):
                # As scikit-learn encodes: NaN is a category of its own when it was seen in
                # training; None is a category only when None itself was (a dict key, here).
                position = nan_at if _is_nan(value) else index.get(value)
                if position is not None:
                    out[row, offset + position] = 1.0
        return out


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


@dataclass(frozen=True)
class CompiledPipeline:
    """The pipeline as array operations: its column blocks in the ColumnTransformer's output
    order, then the estimator's prediction function, shaped per task like `predictions`."""

    blocks: tuple[_Numeric | _OneHot, ...]
    estimator: Callable[[np.ndarray], np.ndarray]
    kind: str

    def predict(self, frame: ModelInput) -> np.ndarray:
        """The pipeline's answer for each row: positive-class probability, class probabilities
        or value, as `workflow.scoring.predictions` gives them; `frame` is the input frame or
        one array per column (`gateway.payload.typed_columns`), read alike."""
        matrix = np.hstack([block.block(frame) for block in self.blocks])
        return self.estimator(matrix)


@dataclass(frozen=True)
class Compilation:
    """The outcome of compiling a version: the compiled path, or None and why not."""

    compiled: CompiledPipeline | None
    note: str


def compile_pipeline(
    model: Any, task: str, probes: pd.DataFrame, reference: Callable[[pd.DataFrame], np.ndarray]
) -> Compilation:
    """Compile `model` and check it against `reference` (the pipeline's own scoring) on
    `probes` plus rows made from them to cover every category, an unknown one and missing values.
    """
    try:
        compiled = _compile(model, task)
    except NotCompilable as reason:
        return Compilation(None, f"pipeline path: {reason}")
    rows = probe_rows(probes, compiled)
    try:
        expected = np.asarray(reference(rows), dtype=np.float64)
        got = np.asarray(compiled.predict(rows), dtype=np.float64)
    except Exception as error:  # a probe the pipeline or the compiled path cannot score
        return Compilation(None, f"pipeline path: the compiled path could not be checked ({error})")
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=0, atol=TOLERANCE):
        worst = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else math.inf
        return Compilation(
            None,
            f"pipeline path: the compiled path differs from the pipeline on the probe rows "
            f"(largest difference {worst:.3g})",
        )
    return Compilation(
        compiled, f"compiled path ({compiled.kind}), checked on {len(rows)} probe rows"
    )


def probe_rows(probes: pd.DataFrame, compiled: CompiledPipeline) -> pd.DataFrame:
    """The probes and, for each one-hot column, rows with each known category, an unknown one
    and a missing one; and for each numeric column a row with it missing."""
    base = probes.iloc[[0]]
    extra = [probes]
    for block in compiled.blocks:
        if isinstance(block, _OneHot):
            for name, index in zip(block.columns, block.positions, strict=True):
                for value in [*index, "__unseen_category__", None, np.nan]:
                    row = base.copy()
                    row[name] = pd.Series([value], index=row.index, dtype=object)
                    extra.append(row)
        else:
            for name in block.columns:
                row = base.copy()
                row[name] = np.nan
                extra.append(row)
    frame = pd.concat(extra, ignore_index=True)
    for column in probes.columns:
        if probes[column].dtype != object and frame[column].dtype == object:
            frame[column] = frame[column].astype(probes[column].dtype, errors="ignore")
    return frame


def _compile(model: Any, task: str) -> CompiledPipeline:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if not isinstance(model, Pipeline) or len(model.steps) != 2:
        raise NotCompilable(f"{type(model).__name__} is not a preprocessing + estimator pipeline")
    preprocess, estimator = model.steps[0][1], model.steps[1][1]
    if not isinstance(preprocess, ColumnTransformer):
        raise NotCompilable(
            f"the first step is a {type(preprocess).__name__}, not a ColumnTransformer"
        )
    blocks = tuple(_block(name, step, columns) for name, step, columns in _fitted(preprocess))
    predict, kind = _estimator(estimator, task)
    return CompiledPipeline(blocks, predict, kind)


def _fitted(preprocess: Any) -> list[tuple[str, Any, Sequence[str]]]:
    parts = []
    for name, step, columns in preprocess.transformers_:
        if step == "drop" or len(columns) == 0:
            continue
        if not all(isinstance(column, str) for column in columns):
            raise NotCompilable(f"transformer {name!r} selects columns by position")
        parts.append((name, step, list(columns)))
    return parts


def _block(name: str, step: Any, columns: Sequence[str]) -> _Numeric | _OneHot:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    if step == "passthrough":
        return _Numeric(tuple(columns), np.full(len(columns), np.nan))
    if isinstance(step, SimpleImputer):
        if step.add_indicator or not np.issubdtype(np.asarray(step.statistics_).dtype, np.number):
            raise NotCompilable(f"transformer {name!r}: only numeric imputation is compiled")
        return _Numeric(tuple(columns), np.asarray(step.statistics_, dtype=np.float64))
    if isinstance(step, OneHotEncoder):
        if step.drop is not None or getattr(step, "_infrequent_enabled", False):
            raise NotCompilable(f"transformer {name!r}: one-hot with drop/infrequent categories")
        if step.handle_unknown not in ("ignore", "infrequent_if_exist"):
            raise NotCompilable(f"transformer {name!r}: handle_unknown={step.handle_unknown!r}")
        positions, nans, offsets, width = [], [], [], 0
        for categories in step.categories_:
            index: dict[Any, int] = {}
            nan_at = None
            for position, category in enumerate(categories.tolist()):
                if _is_nan(category):
                    nan_at = position
                else:
                    index[category] = position
            positions.append(index)
            nans.append(nan_at)
            offsets.append(width)
            width += len(categories)
        return _OneHot(tuple(columns), tuple(positions), tuple(nans), width, tuple(offsets))
    raise NotCompilable(f"transformer {name!r} is a {type(step).__name__}")


def _estimator(estimator: Any, task: str) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

    kind = type(estimator).__name__
    if kind in ("LGBMClassifier", "LGBMRegressor"):
        # The booster answers per task already: the positive-class probability, one column per
        # class in `classes_` order, or the value; the check at load confirms it.
        # One thread: the gateway runs a process per core, and a booster's own default (every
        # core, OpenMP) made a four-row call cost 250 µs of CPU instead of 25 on a busy machine.
        booster = estimator.booster_
        return partial(booster.predict, num_threads=1), "lightgbm booster"
    if isinstance(estimator, LogisticRegression) and task != "regression":
        coef = np.asarray(estimator.coef_, dtype=np.float64)
        intercept = np.asarray(estimator.intercept_, dtype=np.float64)
        if task == "binary":
            if coef.shape[0] != 1:
                raise NotCompilable(
                    "a binary logistic regression with more than one coefficient row"
                )
            return (lambda matrix: _sigmoid(matrix @ coef[0] + intercept[0])), "numpy logistic"
        if coef.shape[0] == 1:
            raise NotCompilable("a two-class logistic regression served as multiclass")
        return (lambda matrix: _softmax(matrix @ coef.T + intercept)), "numpy logistic"
    if isinstance(estimator, LinearRegression | Ridge) and task == "regression":
        coef = np.asarray(estimator.coef_, dtype=np.float64)
        intercept = float(np.asarray(estimator.intercept_, dtype=np.float64).reshape(-1)[0])
        if coef.ndim != 1:
            raise NotCompilable("a linear model with several targets")
        return (lambda matrix: matrix @ coef + intercept), "numpy linear"
    raise NotCompilable(f"the estimator {kind} has no compiled path")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _softmax(z: np.ndarray) -> np.ndarray:
    shifted = np.exp(z - z.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
