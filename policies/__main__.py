"""`python -m policies check [FILE or DIRECTORY ...]`: validate policy files as a training would.

Each file is loaded (its schema) and its model section checked against the estimator it names
(import path, hyperparameter names and values, tuning search space), which imports the
estimator's library; the DAG files only do the first half at parse time. Prints every problem,
exits 1 when any file has one. No argument: the policies shipped in policies/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from policies.loader import POLICIES_DIR, PolicyError, load_policy, policy_files


def check_files(paths: list[Path]) -> list[str]:
    """One line per problem of the given policy files (a directory stands for its .yaml files)."""
    from workflow.estimators import check_policy

    files = [f for p in paths for f in (policy_files(p) if p.is_dir() else [p])]
    lines = []
    for path in files:
        try:
            check_policy(load_policy(path), path)
        except PolicyError as error:
            lines.extend(str(error).splitlines())
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the command line; the exit status is 1 when any policy has a problem."""
    parser = argparse.ArgumentParser(prog="python -m policies", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate policy files and their estimators")
    check.add_argument("paths", nargs="*", type=Path, default=[POLICIES_DIR])
    args = parser.parse_args(argv)
    problems = check_files(args.paths)
    for line in problems:
        print(line)
    if not problems:
        print(f"ok: {', '.join(str(p) for p in args.paths)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
