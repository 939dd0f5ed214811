"""Helpers shared by several test modules."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
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


POSTGRES_ENV = "PROMOTION_TEST_POSTGRES_URL"


def postgres_base_url() -> str:
    """The PostgreSQL server of the PostgreSQL variants. Unset, they are skipped on a developer's
    machine (the variant is opt-in) but fail under CI, which must run them."""
    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{POSTGRES_ENV} is not set: CI must run the PostgreSQL variants")
        pytest.skip(f"{POSTGRES_ENV} is not set; it enables the PostgreSQL variant (CI sets it)")
    return url


@contextmanager
def temporary_postgres_database(base_url: str, prefix: str = "promotion_test") -> Iterator[str]:
    """A new database with a unique name on the server of `base_url`; its URL, dropped after
    (its connections ended first)."""
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
