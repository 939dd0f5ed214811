"""Helpers of the gateway's integration tests: tiny trained models, registration, requests."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

# The API token the test gateways accept, and the header that carries it.
API_TOKEN = "gateway-tests-api-token"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@dataclass(frozen=True)
class Store:
    """The MLflow store and the logged models' URIs (by kind) that tests register under names."""

    uri: str
    root: Path
    models: dict[str, tuple[str, str]]  # kind -> (model_uri, run_id)


def training_frame(
    rows: int, seed: int, extra_region: bool = False
) -> tuple[pd.DataFrame, np.ndarray]:
    """Synthetic churn-like rows: two numeric features and a categorical one."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "sessions_7d": rng.gamma(2.0, 3.0, rows),
            "days_since_signup": rng.integers(1, 1000, rows),
            "plan": rng.choice(["free", "pro", "team"], rows),
        }
    )
    if extra_region:
        frame["region"] = rng.choice(["eu", "us"], rows)
    logit = 1.0 - 0.3 * frame["sessions_7d"] + 0.8 * (frame["plan"] == "free")
    labels = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame, labels.to_numpy()


def _pipeline(kind: str, columns: list[str]):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    categorical = [c for c in columns if c in ("plan", "region")]
    numeric = [c for c in columns if c not in categorical]
    preprocess = ColumnTransformer(
        [
            ("numeric", "passthrough", numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    if kind == "lightgbm":
        from lightgbm import LGBMClassifier

        estimator = LGBMClassifier(n_estimators=30, num_leaves=7, verbose=-1, random_state=0)
    else:
        estimator = LogisticRegression(C=1.0 if kind == "logistic" else 0.01, max_iter=500)
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def log_pipeline(kind: str, experiment_id: str, extra_region: bool = False) -> tuple[str, str]:
    """Train and log one pipeline the way the workflow does (skops, signature, example)."""
    import mlflow
    import skops.io
    from mlflow.models import infer_signature

    frame, labels = training_frame(600, seed=len(kind), extra_region=extra_region)
    pipeline = _pipeline(kind, list(frame.columns)).fit(frame, labels)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=infer_signature(frame, pipeline.predict_proba(frame)[:, 1]),
            input_example=frame.head(3),
            serialization_format="skops",
            skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)),
        )
    return info.model_uri, run.info.run_id


def use_store(store: Store) -> None:
    """Make the gateway tests' store the current MLflow store of this process. A module fixture
    needs it: it runs before the per-test fixture that does the same, and another test module
    of this process may have made another store current."""
    import os

    import mlflow

    os.environ["MLFLOW_TRACKING_URI"] = store.uri
    mlflow.set_tracking_uri(store.uri)


def register(
    store: Store, model_name: str, aliases: dict[str, str], *, tracking_uri: str | None = None
) -> dict[str, int]:
    """Register logged models (by kind) as versions of `model_name` and point aliases at them,
    in the store itself or through `tracking_uri` (a tracking server over it), made current.

    `aliases` maps alias -> kind; returns alias -> version.
    """
    import os

    import mlflow

    import registry

    use_store(store)
    if tracking_uri is not None:
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
        mlflow.set_tracking_uri(tracking_uri)

    registry.ensure_registered_model(model_name)
    versions = {}
    for alias, kind in aliases.items():
        model_uri, run_id = store.models[kind]
        info = registry.register_version(
            model_name, model_uri, run_id=run_id, tags={}, description=""
        )
        versions[alias] = info.version
        if not alias.startswith("_"):
            registry.move_alias(
                model_name, alias, info.version, kind="promote", actor="test", reason="setup"
            )
    return versions


@dataclass
class Gateway:
    """A gateway process on loopback."""

    url: str
    process: subprocess.Popen
    output: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def status(self, model_name: str) -> dict:
        return httpx.get(f"{self.url}/models/{model_name}", timeout=10).json()

    def terminate(self, timeout_s: float = 60) -> int:
        """SIGTERM, as a process manager stops it; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll until `condition` holds; returns the seconds it took, fails the test after timeout."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            pytest.fail(f"{what}: not within {timeout_s} s")
        time.sleep(0.05)
    return time.monotonic() - started


def row(seed: int) -> dict:
    """One request row (dataframe_records) drawn from the training distribution."""
    frame, _ = training_frame(1, seed)
    return {"dataframe_records": frame.to_dict("records")}
