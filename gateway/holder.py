"""Loaded model versions per role, kept in step with the registry's aliases.

Requests read one immutable `Arms` snapshot; the follower thread builds the next snapshot (loading
and warming any new version first) and swaps the reference in one assignment. A request that
started on the old snapshot finishes on it, so a switch drops nothing, and a version that fails to
load or warm never replaces the one being served.

A version answers per its task: the `lineage.task` tag training writes on it, else the served
model's configured task (`ServedModel.task`, also read from the model's policy), else `binary`.
A version whose tag names another task than the configured one is refused at load.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd

from gateway.arms import CANARY_SHARE_TAG, ROLES, canary_share, changes, next_attempt
from gateway.compiled import CompiledPipeline, ModelInput, compile_pipeline
from gateway.config import ServedModel
from gateway.payload import (
    Columns,
    check_types,
    conform,
    conform_values,
    typed_columns,
    typed_frame,
)
from registry.serving import InputColumn
from workflow.scoring import class_labels, predictions

TASK_TAG = "lineage.task"
TASKS = ("binary", "multiclass", "regression")

logger = logging.getLogger(__name__)

# Versions kept loaded beyond those serving, so a rollback to a recent version switches at once.
KEEP_RECENT_VERSIONS = 3


@dataclass(frozen=True)
class Answers:
    """A version's answers to the rows of a frame: what the caller gets (`predictions`, JSON per
    row) and what the log keeps (`scores`, and for multiclass the classes and probabilities)."""

    predictions: list
    scores: list[float]
    classes: list[str] | None = None
    probabilities: list[dict[str, float]] | None = None

    def rows(self, start: int, end: int) -> Answers:
        """The answers of rows [start, end)."""
        return Answers(
            self.predictions[start:end],
            self.scores[start:end],
            None if self.classes is None else self.classes[start:end],
            None if self.probabilities is None else self.probabilities[start:end],
        )


@dataclass(frozen=True)
class LoadedVersion:
    """A model version ready to answer: the pipeline, its task, and what its input must look
    like; `classes` are a classifier's classes in its probability columns' order."""

    model_name: str
    version: int
    model: Any
    columns: tuple[InputColumn, ...] | None
    feature_names: tuple[str, ...] | None
    task: str = "binary"
    classes: tuple = ()
    fast: CompiledPipeline | None = None
    scoring_path: str = "pipeline path"

    def frame(self, columns: Columns) -> pd.DataFrame:
        """The request's columns as this version's input frame (raises SchemaMismatch)."""
        return conform(columns, self.columns, self.feature_names)

    def inputs(self, columns: Columns) -> tuple[dict[str, list], ModelInput]:
        """The request's values of this version's columns (what the log keeps) and the input
        built from them for `answer` (raises SchemaMismatch)."""
        values = conform_values(columns, self.columns, self.feature_names)
        return values, self.model_input(values)

    def checked_values(self, columns: Columns) -> dict[str, list]:
        """The request's values of this version's columns, their types checked without building
        its input (raises SchemaMismatch): for requests scored later in one call."""
        values = conform_values(columns, self.columns, self.feature_names)
        check_types(values, self.columns)
        return values

    def model_input(self, values: dict[str, list]) -> ModelInput:
        """What `answer` scores, from `conform_values`' values (of one or several requests):
        the compiled path takes one typed array per column, which costs a fraction of a frame
        to build; the pipeline takes the frame."""
        if self.fast is not None and self.columns is not None:
            return typed_columns(values, self.columns)
        return typed_frame(values, self.columns)

    def answer(self, frame: ModelInput) -> Answers:
        """Each row's answer: the positive-class probability (binary), the value (regression), or
        the predicted class with every class's probability, by class name (multiclass)."""
        if self.fast is not None:
            values = self.fast.predict(frame)
        else:
            values = predictions(self.model, frame, self.task)
        if self.task != "multiclass":
            scores = values.tolist()
            return Answers(scores, scores)
        names = [str(c) for c in self.classes]
        best = values.argmax(axis=1)
        probabilities = [dict(zip(names, row.tolist(), strict=True)) for row in values]
        return Answers(
            predictions=[
                {"class": self.classes[i], "probabilities": p}
                for i, p in zip(best.tolist(), probabilities, strict=True)
            ],
            scores=values[np.arange(len(best)), best].tolist(),
            classes=[names[i] for i in best.tolist()],
            probabilities=probabilities,
        )


def version_task(tags: dict[str, str], configured: str | None) -> str:
    """The task a version answers for: its `lineage.task` tag, else the configured one, else
    binary; ValueError when the tag names an unknown task or another than the configured one."""
    tagged = tags.get(TASK_TAG) or None
    if tagged is not None and tagged not in TASKS:
        raise ValueError(f"{TASK_TAG} is {tagged!r}; the gateway serves {', '.join(TASKS)}")
    if tagged is not None and configured is not None and tagged != configured:
        raise ValueError(
            f"the version is tagged {TASK_TAG}={tagged} but the model is served as {configured}; "
            "serve it under a model of that task or fix the tag"
        )
    return tagged or configured or "binary"


@dataclass(frozen=True)
class Arms:
    """What answers a model's requests right now; replaced whole, never changed in place."""

    champion: LoadedVersion | None = None
    canary: LoadedVersion | None = None
    shadow: LoadedVersion | None = None
    canary_share: float = 0.0

    def version_of(self, role: str) -> int | None:
        loaded = getattr(self, role)
        return None if loaded is None else loaded.version


class VersionSource(Protocol):
    """Reads the registry: aliases, tags and versions (the gateway's only registry access)."""

    def aliases(self, model_name: str) -> dict[str, int]: ...

    def version_tags(self, model_name: str, version: int) -> dict[str, str]: ...

    def load(self, model_name: str, version: int, task: str | None = None) -> LoadedVersion:
        """Load and warm a version; `task` is the served model's configured task, if any."""
        ...


class RegistrySource:
    """`VersionSource` over `registry/`."""

    def aliases(self, model_name: str) -> dict[str, int]:
        from registry.serving import get_model_aliases

        return get_model_aliases(model_name, require_registered=True)

    def version_tags(self, model_name: str, version: int) -> dict[str, str]:
        import registry

        return registry.get_version(model_name, version).tags

    def load(self, model_name: str, version: int, task: str | None = None) -> LoadedVersion:
        import registry
        from registry.serving import get_serving_metadata

        tags = registry.get_version(model_name, version).tags
        model = registry.load_model(model_name, version)
        metadata = get_serving_metadata(model_name, version)
        loaded = loaded_version(model_name, version, model, metadata.columns, tags, task)
        warm(loaded, metadata.input_example)
        return with_fast_path(loaded, metadata.input_example)


def with_fast_path(loaded: LoadedVersion, example: pd.DataFrame | None) -> LoadedVersion:
    """The version with its compiled scoring path when one reproduces the pipeline's answers on
    the input example and probe rows; else as it is, its `scoring_path` saying why."""
    probes = loaded.frame(_warm_columns(loaded, example))
    compilation = compile_pipeline(
        loaded.model, loaded.task, probes, lambda rows: predictions(loaded.model, rows, loaded.task)
    )
    log = logger.info if compilation.compiled is not None else logger.warning
    log("%s v%s scores through the %s", loaded.model_name, loaded.version, compilation.note)
    return replace(loaded, fast=compilation.compiled, scoring_path=compilation.note)


def loaded_version(
    model_name: str,
    version: int,
    model: Any,
    columns: tuple[InputColumn, ...] | None,
    tags: dict[str, str],
    configured_task: str | None,
) -> LoadedVersion:
    """A loaded model as the gateway serves it: its task (`version_task`) and, for a
    classifier, its classes; ValueError when the model cannot serve that task."""
    task = version_task(tags, configured_task)
    names = getattr(model, "feature_names_in_", None)
    classes: tuple = ()
    if task == "regression":
        if hasattr(model, "classes_"):
            raise ValueError("the version is served as regression but the model is a classifier")
    else:
        classes = tuple(class_labels(model))
    return LoadedVersion(
        model_name=model_name,
        version=version,
        model=model,
        columns=columns,
        feature_names=None if names is None else tuple(str(name) for name in names),
        task=task,
        classes=classes,
    )


def warm(loaded: LoadedVersion, example: pd.DataFrame | None) -> None:
    """Score a few rows through the request path so a version is proven (and its lazy state
    built) before it answers; raises when it cannot score or its output does not have the shape
    of its task (two probability columns, one per class, or one value per row)."""
    frame = loaded.frame(_warm_columns(loaded, example))
    for _ in range(3):
        try:
            values = predictions(loaded.model, frame, loaded.task)
        except (AttributeError, TypeError, ValueError) as error:
            raise ValueError(f"served as {loaded.task}, the model cannot answer: {error}") from None
    check_answer_shape(loaded.task, values, len(frame), loaded.classes)


def _warm_columns(loaded: LoadedVersion, example: pd.DataFrame | None) -> Columns:
    if example is not None:
        return Columns(values=example.to_dict("list"), n_rows=len(example))
    if loaded.columns is not None:
        return Columns(values={c.name: [_placeholder(c.type)] for c in loaded.columns}, n_rows=1)
    raise ValueError("version has neither an input example nor a signature to warm it with")


def check_answer_shape(task: str, values: np.ndarray, rows: int, classes: Sequence) -> None:
    """Raise ValueError unless `values` is what a model of `task` answers for `rows` rows."""
    if task == "multiclass":
        expected: tuple[int, ...] = (rows, len(classes))
        if len(classes) < 2:
            raise ValueError(f"a multiclass classifier needs two classes or more, got {classes}")
    else:
        expected = (rows,)
    if values.shape != expected:
        raise ValueError(
            f"served as {task}, the model answered shape {values.shape} for {rows} rows, "
            f"expected {expected}"
        )
    if not np.isfinite(values).all():
        raise ValueError(f"served as {task}, the model answered non-finite values")


def _placeholder(kind: str) -> object:
    return {"string": "", "boolean": False}.get(kind, 0.0)


@dataclass
class ModelState:
    """The follower's view of one served model: its arms and what went wrong lately."""

    served: ServedModel
    arms: Arms = field(default_factory=Arms)
    refreshed_at: datetime | None = None
    registry_error: str | None = None
    load_errors: dict[int, str] = field(default_factory=dict)
    share_note: str | None = None


class AliasFollower:
    """Keeps every served model's arms in step with its aliases, polling and on demand."""

    def __init__(
        self,
        models: Sequence[ServedModel],
        source: VersionSource,
        *,
        refresh_interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._interval_s = refresh_interval_s
        self._clock = clock
        self._states = {model.name: ModelState(served=model) for model in models}
        self._loaded: dict[str, OrderedDict[int, LoadedVersion]] = {
            model.name: OrderedDict() for model in models
        }
        self._retry_at: dict[tuple[str, int], tuple[int, float]] = {}
        self._requested: set[str] = set()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def arms(self, model_name: str) -> Arms | None:
        """The current snapshot of a model, or None when the gateway does not serve it."""
        state = self._states.get(model_name)
        return None if state is None else state.arms

    def state(self, model_name: str) -> ModelState | None:
        """The follower's record of a model (for status endpoints)."""
        return self._states.get(model_name)

    @property
    def model_names(self) -> list[str]:
        return list(self._states)

    def start(self) -> None:
        """Start the thread that refreshes at once and then every refresh interval."""
        self._thread = threading.Thread(target=self._run, name="alias-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop refreshing (the current arms keep serving)."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def request_refresh(self, model_name: str | None = None) -> None:
        """Refresh a model (or all) soon, without waiting for the next poll: the webhook path."""
        with self._wake:
            self._requested.update([model_name] if model_name else self._states)
            self._wake.notify()

    def _run(self) -> None:
        next_poll = self._clock()
        while True:
            with self._wake:
                while not self._stopping and not self._requested and self._clock() < next_poll:
                    self._wake.wait(max(0.0, next_poll - self._clock()))
                if self._stopping:
                    return
                if self._requested:
                    names = [name for name in self._states if name in self._requested]
                else:
                    names = list(self._states)
                    next_poll = self._clock() + self._interval_s
                self._requested.clear()
            for name in names:
                self.refresh(name)

    def refresh(self, model_name: str) -> Arms:
        """Read the aliases of one model, load what changed, and swap in the new arms."""
        state = self._states[model_name]
        try:
            aliases = self._source.aliases(model_name)
        except Exception as error:  # the registry being down must not stop the follower
            state.registry_error = f"reading aliases failed: {error}"
            logger.warning("%s: %s", model_name, state.registry_error)
            return state.arms
        state.registry_error = None
        arms = state.arms
        updates: dict[str, LoadedVersion | None] = {}
        for change in changes({role: arms.version_of(role) for role in ROLES}, aliases):
            if change.wanted is None:
                updates[change.role] = None
                continue
            loaded = self._get_or_load(state, change.wanted)
            if loaded is not None:
                updates[change.role] = loaded
        arms = replace(arms, **updates)
        arms = replace(arms, canary_share=self._canary_share(state, arms))
        state.arms = arms
        state.refreshed_at = datetime.now(UTC)
        self._forget_unused(model_name, arms)
        return arms

    def _get_or_load(self, state: ModelState, version: int) -> LoadedVersion | None:
        name = state.served.name
        cache = self._loaded[name]
        if version in cache:
            cache.move_to_end(version)
            return cache[version]
        failures, retry_at = self._retry_at.get((name, version), (0, 0.0))
        if failures and self._clock() < retry_at:
            return None
        started = time.perf_counter()
        try:
            loaded = self._source.load(name, version, state.served.task)
        except Exception as error:  # any failure to load or warm keeps the serving version
            failures += 1
            self._retry_at[(name, version)] = (
                failures,
                next_attempt(failures, self._clock(), self._interval_s),
            )
            state.load_errors[version] = f"{type(error).__name__}: {error}"
            logger.error(
                "%s version %d failed to load; keeping the serving version: %s",
                name,
                version,
                error,
            )
            return None
        self._retry_at.pop((name, version), None)
        state.load_errors.pop(version, None)
        logger.info(
            "%s version %d loaded and warmed in %.2f s",
            name,
            version,
            time.perf_counter() - started,
        )
        cache[version] = loaded
        # A loaded model lives long: out of the cyclic collector's reach, its objects (and the
        # libraries' behind it) are not walked by every full collection. Measured on the
        # benchmark's pipeline: full collections of 216-281 ms without, 5-46 ms with.
        gc.freeze()
        return loaded

    def _canary_share(self, state: ModelState, arms: Arms) -> float:
        configured = state.served.canary_share
        if arms.canary is None:
            state.share_note = None
            return configured
        try:
            tags = self._source.version_tags(state.served.name, arms.canary.version)
        except Exception as error:  # keep the share in force rather than guess
            state.share_note = f"reading {CANARY_SHARE_TAG} failed: {error}"
            return state.arms.canary_share if state.arms.canary else configured
        share, state.share_note = canary_share(configured, tags.get(CANARY_SHARE_TAG))
        return share

    def _forget_unused(self, model_name: str, arms: Arms) -> None:
        cache = self._loaded[model_name]
        serving = {arms.version_of(role) for role in ROLES}
        idle = [version for version in cache if version not in serving]
        for version in idle[: max(0, len(idle) - KEEP_RECENT_VERSIONS)]:
            del cache[version]
