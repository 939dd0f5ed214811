"""Whether an MLflow tracking URI names a store that exists, checked before anything opens it.

MLflow creates a store wherever a local path or a SQLite URI points, so a misspelt one gives an
empty registry in which every model waits for a champion forever. Services check first.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import sqlalchemy as sa

from registry.settings import masked

# Tracking URIs without a scheme that name a hosted service, not a path.
_HOSTED = frozenset({"databricks", "databricks-uc", "uc"})


def missing_store(uri: str) -> str | None:
    """Why `uri` names no existing store (a local directory or SQLite file not there), or None.

    Servers and databases (http://, postgresql://) are not probed here: the services follow
    them through outages, and the registry's own errors name them.
    """
    scheme = urlparse(uri).scheme
    if uri in _HOSTED:
        return None
    if scheme in ("", "file"):
        path = Path(url2pathname(urlparse(uri).path) if scheme == "file" else uri)
        if not path.is_dir():
            return f"{masked(uri)} is a local path, and no MLflow store exists at {path.resolve()}"
    elif scheme.split("+")[0] == "sqlite":
        database = sa.make_url(uri).database or ""
        if database.startswith("file:"):
            database = urlparse(database).path
        if not database or database == ":memory:" or not Path(database).is_file():
            where = Path(database).resolve() if database else "(no file named)"
            return f"{masked(uri)} names no existing SQLite file: {where}"
    return None
