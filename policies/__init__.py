"""Per-model promotion policies: YAML files, their typed schema and the loader."""

from policies.loader import (
    POLICIES_DIR,
    PolicyError,
    load_policies,
    load_policy,
    load_valid_policies,
    policy_files,
)
from policies.schema import Policy

__all__ = [
    "POLICIES_DIR",
    "Policy",
    "PolicyError",
    "load_policies",
    "load_policy",
    "load_valid_policies",
    "policy_files",
]
