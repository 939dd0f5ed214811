"""A registry stand-in for unit tests: aliases, tags and tiny models held in memory."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd

from gateway.holder import LoadedVersion, loaded_version, warm
from registry.serving import InputColumn

COLUMNS = (InputColumn("x", "double", True), InputColumn("plan", "string", True))
EXAMPLE = pd.DataFrame({"x": [0.5], "plan": ["pro"]})


class ConstantModel:
    """Answers `score` for every row; fails when `fail_on_x` is given and seen."""

    classes_ = np.array([0, 1])

    def __init__(self, score: float, fail_on_x: float | None = None) -> None:
        self.score = score
        self.fail_on_x = fail_on_x

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        if self.fail_on_x is not None and (frame["x"] == self.fail_on_x).any():
            raise RuntimeError("shadow model exploded")
        return np.column_stack(
            [np.full(len(frame), 1 - self.score), np.full(len(frame), self.score)]
        )


class ClassesModel:
    """A multiclass classifier answering the same probabilities (one per class) for every row."""

    def __init__(self, classes: list, probabilities: list[float]) -> None:
        self.classes_ = np.array(classes)
        self.probabilities = probabilities

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.tile(self.probabilities, (len(frame), 1))


class LinearModel:
    """A regressor answering `slope * x + intercept`."""

    def __init__(self, slope: float, intercept: float = 0.0) -> None:
        self.slope, self.intercept = slope, intercept

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.slope * frame["x"].to_numpy(dtype=float) + self.intercept


class FakeSource:
    """`VersionSource` over dictionaries; `broken` versions raise on load."""

    def __init__(self) -> None:
        self.aliases_by_model: dict[str, dict[str, int]] = {}
        self.tags: dict[tuple[str, int], dict[str, str]] = {}
        self.models: dict[tuple[str, int], object] = {}
        self.broken: set[tuple[str, int]] = set()
        self.loads: list[tuple[str, int]] = []
        self.gate: threading.Event | None = None

    def add(self, name: str, version: int, model: object) -> None:
        self.models[(name, version)] = model

    def aliases(self, model_name: str) -> dict[str, int]:
        return dict(self.aliases_by_model.get(model_name, {}))

    def version_tags(self, model_name: str, version: int) -> dict[str, str]:
        return dict(self.tags.get((model_name, version), {}))

    def load(self, model_name: str, version: int, task: str | None = None) -> LoadedVersion:
        self.loads.append((model_name, version))
        if self.gate is not None:
            self.gate.wait(5)
        if (model_name, version) in self.broken:
            raise OSError(f"artifact of version {version} is missing")
        loaded = loaded_version(
            model_name,
            version,
            self.models[(model_name, version)],
            COLUMNS,
            self.version_tags(model_name, version),
            task,
        )
        warm(loaded, EXAMPLE)
        return loaded


def wait_until(condition, timeout_s: float = 5.0) -> None:
    """Poll `condition` until it holds; fail the test after `timeout_s`."""
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
