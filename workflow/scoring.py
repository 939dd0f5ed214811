"""One model's predictions on a frame, shaped per task, whatever produced the model.

The evaluation core, the rollback preflight and training all score through here, so a scikit-learn
pipeline of this project and a model registered from a notebook are scored the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def class_labels(model: Any) -> list:
    """The classes a classifier's probability columns stand for, in column order."""
    classes = getattr(model, "classes_", None)
    if classes is None:
        raise ValueError(f"{type(model).__name__} has no classes_: not a fitted classifier")
    return list(np.asarray(classes).tolist())


def predictions(model: Any, frame: pd.DataFrame, task: str) -> np.ndarray:
    """The model's answer for each row of `frame`: for `binary` the positive-class probability
    (1-D), for `multiclass` the class probabilities (n × k, in `class_labels` order), for
    `regression` the predicted value (1-D float)."""
    if task == "regression":
        return np.asarray(model.predict(frame), dtype=np.float64).reshape(-1)
    probabilities = np.asarray(model.predict_proba(frame), dtype=np.float64)
    if task == "binary":
        if probabilities.ndim != 2 or probabilities.shape[1] != 2:
            raise ValueError(
                f"a binary classifier gives two probability columns, got shape {probabilities.shape}"
            )
        return probabilities[:, 1]
    if task == "multiclass":
        return probabilities
    raise ValueError(f"unknown task {task!r}; use binary, multiclass or regression")
