"""Checks an extracted window must pass before a model is trained or evaluated on it."""

from __future__ import annotations

import pandas as pd

from policies.schema import Source, Validation


class DataValidationError(ValueError):
    """The window failed one or more checks; the message lists each failure."""

    def __init__(self, where: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{where} failed validation:\n" + "\n".join(f"- {p}" for p in problems))


def window_problems(
    frame: pd.DataFrame, source: Source, validation: Validation, task: str = "binary"
) -> list[str]:
    """Every reason the window is unfit: missing columns, too few rows, too many missing values,
    a target that does not fit the task (binary: 0/1 labels; multiclass: classes of any type;
    regression: numbers), a single class or value."""
    problems: list[str] = []
    required = [source.time_column, source.target, *source.features.all]
    missing_columns = [column for column in required if column not in frame.columns]
    if missing_columns:
        problems.append(f"missing column(s): {', '.join(missing_columns)}")
    if len(frame) < validation.min_rows:
        problems.append(f"too few rows: {len(frame)} < validation.min_rows={validation.min_rows}")
    for column in source.features.all:
        if column not in frame.columns or frame.empty:
            continue
        share = float(frame[column].isna().mean())
        if share > validation.max_missing_share:
            problems.append(
                f"column {column!r}: {share:.1%} missing > "
                f"validation.max_missing_share={validation.max_missing_share:.1%}"
            )
    if source.target in frame.columns and not frame.empty:
        target = frame[source.target]
        if target.isna().any():
            problems.append(
                f"target {source.target!r}: {int(target.isna().sum())} missing label(s)"
            )
        problems += _target_problems(source.target, target.dropna(), task)
    for column in source.features.numeric:
        if column in frame.columns and not pd.api.types.is_numeric_dtype(frame[column]):
            problems.append(
                f"numeric feature {column!r} has non-numeric type {frame[column].dtype}"
            )
    return problems


def _target_problems(name: str, target: pd.Series, task: str) -> list[str]:
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(target) or pd.api.types.is_bool_dtype(target):
            return [f"target {name!r}: a regression target must be numeric, got {target.dtype}"]
        if target.nunique() < 2:
            return [f"target {name!r}: a single value ({target.iloc[0] if len(target) else '–'})"]
        return []
    classes = set(target.unique().tolist())
    if task == "binary" and not classes <= {0, 1}:
        return [
            f"target {name!r}: expected binary 0/1 labels, found {sorted(classes, key=str)[:5]}"
        ]
    if len(classes) < 2:
        return [f"target {name!r}: only one class present ({sorted(classes, key=str)})"]
    return []
