"""Load and validate policy files; light enough for DAG files to import at parse time."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import ValidationError

from policies.schema import Policy

POLICIES_DIR = Path(__file__).resolve().parent

# A validator's message that starts by naming the field it refused, e.g. "promotion.metric: …".
_NAMED_FIELD = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*): ")

# libyaml's loader parses about ten times faster; the DAG processor reads every policy per parse.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file and every bad field."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = str(path)
        self.problems = problems
        super().__init__("\n".join(f"{self.path}: {problem}" for problem in problems))


def describe_validation_error(
    error: ValidationError,
    unknown_field: str = "unknown field (check the spelling against policies/README.md)",
) -> list[str]:
    """One `field.path: what is wrong` line per problem pydantic found, in the order found."""
    problems = []
    for item in error.errors():
        parts = [str(part) for part in item["loc"]]
        message = item["msg"].removeprefix("Value error, ")
        named = _NAMED_FIELD.match(message) if item["type"] == "value_error" else None
        if named:
            parts.append(named.group(1))
            message = message[named.end() :]
        if item["type"] == "extra_forbidden":
            message = unknown_field
        where = ".".join(parts) or "(top level)"
        problems.append(f"{where}: {message}")
    return problems


def load_policy(path: Path | str) -> Policy:
    """Read one policy file into a typed Policy, or raise PolicyError listing every problem."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(), Loader=_YAML_LOADER)  # noqa: S506 (a safe loader)
    except OSError as exc:
        raise PolicyError(path, [f"cannot read: {exc.strerror}"]) from exc
    except yaml.YAMLError as exc:
        raise PolicyError(path, [f"not valid YAML: {exc}"]) from exc
    if not isinstance(raw, dict):
        raise PolicyError(path, ["expected a mapping of fields at the top level"])
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(path, describe_validation_error(exc)) from exc
    if policy.model_name != path.stem:
        raise PolicyError(
            path, [f"model_name: {policy.model_name!r} must match the file name {path.stem!r}"]
        )
    return policy


def policy_path(model_name: str, directory: Path | str | None = None) -> Path:
    """The file a model's policy is read from (its name is the model's, by `load_policy`)."""
    return Path(directory or POLICIES_DIR) / f"{model_name}.yaml"


def policy_files(directory: Path | str | None = None) -> list[Path]:
    """The policy files of a directory (default: the shipped policies/), in a stable order."""
    return sorted(Path(directory or POLICIES_DIR).glob("*.yaml"))


def load_policies(directory: Path | str | None = None) -> list[Policy]:
    """Load every policy of a directory; raise one PolicyError naming every invalid file and field."""
    policies, errors = load_valid_policies(directory)
    if errors:
        raise PolicyError(directory or POLICIES_DIR, [str(error) for error in errors])
    return policies


def load_valid_policies(
    directory: Path | str = POLICIES_DIR,
) -> tuple[list[Policy], list[PolicyError]]:
    """Split a directory's policies into the valid ones and the errors of the others.

    DAG generation uses this so that one broken file does not take the other models' DAGs down.
    """
    policies: list[Policy] = []
    errors: list[PolicyError] = []
    folder = Path(directory or POLICIES_DIR)
    if not folder.is_dir():
        return [], [PolicyError(folder, ["no such directory of policy files"])]
    # A policy under another extension would otherwise be skipped without a word.
    for path in sorted(folder.glob("*.yml")):
        errors.append(PolicyError(path, ["policy files end in .yaml; rename it to be read"]))
    for path in policy_files(directory):
        try:
            policies.append(load_policy(path))
        except PolicyError as error:
            errors.append(error)
    return policies, errors
