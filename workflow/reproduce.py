"""Retrain a registered version from its recorded lineage and check that it comes out the same.

`python -m workflow.reproduce <model> <version>` re-extracts the version's training window from
the policy's source, re-fits the pipeline with the recorded estimator parameters and seed, and
compares the dataset digest and the predictions on the version's holdout with the registered
ones. It exits 0 when both are equal, 1 when either differs, 2 when the version cannot be
reproduced at all (no lineage, no policy, a source that cannot be read).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

import registry
from policies.loader import load_valid_policies
from policies.schema import Policy
from workflow import modeling, scoring
from workflow.runs import code_version
from workflow.sources import Window, describe_url, read_window, resolve_url
from workflow.train import split_for_validation, window_dataset

# Predictions of the re-fit may differ from the registered model's by float rounding only.
PREDICTION_TOLERANCE = 1e-9
_REQUIRED = (
    "lineage.window_start",
    "lineage.window_end",
    "lineage.holdout_start",
    "lineage.holdout_end",
    "lineage.dataset_digest",
)


class CannotReproduce(ValueError):
    """The version lacks what a retraining needs (its lineage, its policy, its source)."""


@dataclass(frozen=True)
class Recipe:
    """What a version was trained from, read from its `lineage.*` tags; `assumed` lists what was
    not recorded and so was taken from the policy (versions trained before it was recorded)."""

    window: Window
    holdout: Window
    source: str
    selection: str
    digest: str
    code_version: str
    task: str
    estimator: str
    params: dict
    seed: int
    assumed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reproduction:
    """How a retraining compares with the registered version."""

    model: str
    version: int
    recorded_digest: str
    digest: str
    holdout_rows: int
    max_difference: float
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def same_data(self) -> bool:
        return self.digest == self.recorded_digest

    @property
    def same_predictions(self) -> bool:
        return self.max_difference <= PREDICTION_TOLERANCE

    @property
    def reproduced(self) -> bool:
        """Same dataset and same predictions: the version is what its lineage says."""
        return self.same_data and self.same_predictions

    def describe(self) -> str:
        """The report printed by the command, one finding a line."""
        verdict = "reproduced" if self.reproduced else "NOT reproduced"
        lines = [
            f"{self.model} v{self.version}: {verdict}",
            f"- dataset digest: recorded {self.recorded_digest}, re-extracted {self.digest}: "
            + ("equal" if self.same_data else "DIFFERENT (the source rows of the window changed)"),
            f"- predictions on {self.holdout_rows} holdout rows: largest difference "
            f"{self.max_difference:.3g}: "
            + ("equal" if self.same_predictions else f"DIFFERENT (> {PREDICTION_TOLERANCE:g})"),
        ]
        return "\n".join(lines + [f"- warning: {warning}" for warning in self.warnings])


def recipe_of(policy: Policy, tags: dict[str, str]) -> Recipe:
    """A version's training recipe from its lineage tags; the estimator parameters, task and seed
    fall back to the policy's model section and seed 0 when the version predates those tags."""
    missing = [key for key in _REQUIRED if not tags.get(key)]
    if missing:
        raise CannotReproduce(
            f"no lineage to retrain from: {', '.join(missing)} not tagged (a version registered "
            "outside the workflow cannot be reproduced)"
        )
    assumed = [
        key
        for key in ("lineage.task", "lineage.estimator", "lineage.params", "lineage.seed")
        if key not in tags
    ]

    def window(prefix: str) -> Window:
        return Window(
            datetime.fromisoformat(tags[f"lineage.{prefix}_start"]),
            datetime.fromisoformat(tags[f"lineage.{prefix}_end"]),
        )

    return Recipe(
        window=window("window"),
        holdout=window("holdout"),
        source=tags.get("lineage.source", ""),
        selection=tags.get("lineage.selection", ""),
        digest=tags["lineage.dataset_digest"],
        code_version=tags.get("lineage.code_version", ""),
        task=tags.get("lineage.task", policy.task),
        estimator=tags.get("lineage.estimator", ""),
        params=json.loads(tags["lineage.params"])
        if "lineage.params" in tags
        else dict(policy.model.hyperparameters),
        seed=int(tags.get("lineage.seed", 0)),
        assumed=tuple(assumed),
    )


def reproduce(policy: Policy, version: int) -> Reproduction:
    """Retrain `version` of the policy's model from its lineage and compare it with the registered
    version: the re-extracted window's dataset digest, and both models' predictions on the
    version's holdout window."""
    name, source = policy.model_name, policy.source
    found = registry.find_version(name, version)
    if found is None:
        raise CannotReproduce(f"{name} has no version {version} in the registry")
    recipe = recipe_of(policy, found.tags)
    url = resolve_url(source)
    warnings = _warnings(policy, recipe, describe_url(url))
    frame = read_window(url, source, recipe.window)
    start, end = recipe.window.start.isoformat(), recipe.window.end.isoformat()
    digest = window_dataset(
        frame, recipe.source, recipe.selection, source.time_column, start, end, source.target
    ).digest
    features = source.features.all
    fit, _ = split_for_validation(frame)
    spec = policy.model.model_copy(update={"hyperparameters": recipe.params})
    refit = modeling.build_pipeline(spec, source.features, recipe.seed)
    refit.fit(fit[features], fit[source.target])
    holdout = read_window(url, source, recipe.holdout)[features]
    registered = registry.load_model(name, version)
    difference = _largest_difference(
        scoring.predictions(registered, holdout, recipe.task),
        scoring.predictions(refit, holdout, recipe.task),
    )
    return Reproduction(
        model=name,
        version=version,
        recorded_digest=recipe.digest,
        digest=digest,
        holdout_rows=len(holdout),
        max_difference=difference,
        warnings=tuple(warnings),
    )


def _warnings(policy: Policy, recipe: Recipe, url: str) -> list[str]:
    warnings = []
    current = code_version()
    if recipe.code_version and current != recipe.code_version:
        warnings.append(
            f"the code is {current}, the version was trained by {recipe.code_version}: a "
            "difference may come from the code, not the data"
        )
    if recipe.source and recipe.source != url:
        warnings.append(f"the policy's source is {url}, the version was trained on {recipe.source}")
    selection = policy.source.table or "query"
    if recipe.selection and recipe.selection != selection:
        warnings.append(
            f"the policy selects {selection}, the version was trained on {recipe.selection}"
        )
    if recipe.assumed:
        warnings.append(
            "not recorded on the version, so taken from the policy's model section (the seed "
            f"as 0, the default before it was recorded): {', '.join(recipe.assumed)}"
        )
    return warnings


def _largest_difference(recorded: np.ndarray, refit: np.ndarray) -> float:
    if recorded.shape != refit.shape:
        return float("inf")
    if recorded.size == 0:
        return 0.0
    return float(np.max(np.abs(recorded - refit)))


def find_policy(model_name: str, directory: str | None = None) -> Policy:
    """The policy of `model_name` in the policies directory (PROMOTION_POLICIES_DIR or the
    shipped one)."""
    policies, _ = load_valid_policies(directory or os.environ.get("PROMOTION_POLICIES_DIR") or None)
    for policy in policies:
        if policy.model_name == model_name:
            return policy
    known = ", ".join(sorted(p.model_name for p in policies)) or "none"
    raise CannotReproduce(f"no valid policy for model {model_name!r} (policies: {known})")


def main(argv: list[str] | None = None) -> int:
    """Reproduce one version and print the comparison; 0 reproduced, 1 not, 2 cannot tell."""
    parser = argparse.ArgumentParser(
        prog="python -m workflow.reproduce",
        description="Retrain a registered version from its lineage and compare it.",
    )
    parser.add_argument("model", help="registered model name (the policy's model_name)")
    parser.add_argument("version", type=int, help="version number to reproduce")
    parser.add_argument("--policies", help="policies directory (default: PROMOTION_POLICIES_DIR)")
    args = parser.parse_args(argv)
    try:
        result = reproduce(find_policy(args.model, args.policies), args.version)
    except (CannotReproduce, ValueError) as error:
        print(f"{args.model} v{args.version} cannot be reproduced: {error}", file=sys.stderr)
        return 2
    print(result.describe())
    return 0 if result.reproduced else 1


if __name__ == "__main__":
    raise SystemExit(main())
