"""Loaded model versions per role, kept in step with the registry's aliases.

Requests read one immutable `Arms` snapshot; the follower thread builds the next snapshot (loading
and warming any new version first) and swaps the reference in one assignment. A request that
started on the old snapshot finishes on it, so a switch drops nothing, and a version that fails to
load or warm never replaces the one being served.
"""

from __future__ import annotations

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
from gateway.config import ServedModel
from gateway.payload import Columns, conform
from registry.serving import InputColumn

logger = logging.getLogger(__name__)

# Versions kept loaded beyond those serving, so a rollback to a recent version switches at once.
KEEP_RECENT_VERSIONS = 3


@dataclass(frozen=True)
class LoadedVersion:
    """A model version ready to answer: the pipeline and what its input must look like."""

    model_name: str
    version: int
    model: Any
    columns: tuple[InputColumn, ...] | None
    feature_names: tuple[str, ...] | None

    def frame(self, columns: Columns) -> pd.DataFrame:
        """The request's columns as this version's input frame (raises SchemaMismatch)."""
        return conform(columns, self.columns, self.feature_names)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class for each row."""
        return np.asarray(self.model.predict_proba(frame))[:, 1]


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

    def load(self, model_name: str, version: int) -> LoadedVersion: ...


class RegistrySource:
    """`VersionSource` over `registry/`."""

    def aliases(self, model_name: str) -> dict[str, int]:
        from registry.serving import get_model_aliases

        return get_model_aliases(model_name, require_registered=True)

    def version_tags(self, model_name: str, version: int) -> dict[str, str]:
        import registry

        return registry.get_version(model_name, version).tags

    def load(self, model_name: str, version: int) -> LoadedVersion:
        import registry
        from registry.serving import get_serving_metadata

        model = registry.load_model(model_name, version)
        metadata = get_serving_metadata(model_name, version)
        names = getattr(model, "feature_names_in_", None)
        loaded = LoadedVersion(
            model_name=model_name,
            version=version,
            model=model,
            columns=metadata.columns,
            feature_names=None if names is None else tuple(str(name) for name in names),
        )
        warm(loaded, metadata.input_example)
        return loaded


def warm(loaded: LoadedVersion, example: pd.DataFrame | None) -> None:
    """Score a few rows through the request path so a version is proven (and its lazy state
    built) before it answers; raises when it cannot score or is not a binary classifier."""
    if example is not None:
        columns = Columns(values=example.to_dict("list"), n_rows=len(example))
    elif loaded.columns is not None:
        columns = Columns(values={c.name: [_placeholder(c.type)] for c in loaded.columns}, n_rows=1)
    else:
        raise ValueError("version has neither an input example nor a signature to warm it with")
    frame = loaded.frame(columns)
    for _ in range(3):
        probabilities = np.asarray(loaded.model.predict_proba(frame))
    if probabilities.ndim != 2 or probabilities.shape[1] != 2:
        raise ValueError(
            f"the gateway serves binary classifiers; predict_proba gave shape {probabilities.shape}"
        )
    if not np.isfinite(probabilities).all():
        raise ValueError("predict_proba returned non-finite probabilities on the input example")


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
            loaded = self._source.load(name, version)
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
