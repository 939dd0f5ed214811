"""The reference profile of a training window: computed at training, kept as an MLflow artifact of
the version's run, read back by the monitor so drift never needs the training rows again."""

from __future__ import annotations

import pandas as pd

from policies.schema import FeatureColumns
from promotion.drift import ReferenceProfile, build_profile

PROFILE_ARTIFACT = "monitoring/reference_profile.json"


def profile_of(frame: pd.DataFrame, features: FeatureColumns) -> ReferenceProfile:
    """The reference profile of the policy's features in a window of rows."""
    columns = {name: frame[name].to_numpy() for name in features.all}
    return build_profile(columns, features.numeric, features.categorical)


def log_profile(frame: pd.DataFrame, features: FeatureColumns) -> ReferenceProfile:
    """Compute the profile of the training rows and log it to the active MLflow run."""
    import mlflow

    profile = profile_of(frame, features)
    mlflow.log_dict(profile.to_dict(), PROFILE_ARTIFACT)
    return profile


def load_profile(run_id: str | None) -> ReferenceProfile | None:
    """The profile logged with a version's training run; None for a version trained before
    profiles were kept (or without a run)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    try:
        data = mlflow.artifacts.load_dict(f"runs:/{run_id}/{PROFILE_ARTIFACT}")
    except (MlflowException, OSError):
        # MLflow reports a missing artifact as either, depending on the artifact store.
        return None
    return ReferenceProfile.from_dict(data)
