"""Surfaces invalid policy files as an import error that names each file and field.

The DAGs of valid policies are built by model_promotion.py; a broken policy must not take them
down, yet must not go unnoticed either: Airflow lists this file's error in its UI.
"""

from __future__ import annotations

import os

from policies import PolicyError, load_valid_policies

_directory = os.environ.get("PROMOTION_POLICIES_DIR") or None
_, _errors = load_valid_policies(_directory)
if _errors:
    _where = f"PROMOTION_POLICIES_DIR={_directory}" if _directory else "policies"
    raise PolicyError(_where, [str(error) for error in _errors])
