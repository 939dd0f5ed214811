"""Helpers shared by several test modules."""

from __future__ import annotations

from pathlib import Path

import yaml

from policies.loader import POLICIES_DIR


def write_policy(directory: Path, name: str, **changes: object) -> Path:
    """Write a copy of the demo policy named `name`; `a__b=value` sets field a.b (None removes it)."""
    data = yaml.safe_load((POLICIES_DIR / "user_churn.yaml").read_text())
    data["model_name"] = name
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = data
        for parent in parents:
            node = node[parent]
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
