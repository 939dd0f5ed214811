"""Whether the stores a service is configured with exist and open, checked once at start-up so a
bad setting is one line naming it, not a traceback or a silent wait.

MLflow creates a store wherever a local path or a SQLite URI points, so a misspelt one gives an
empty registry in which every model waits for a champion forever.
"""

from __future__ import annotations

from collections.abc import Callable
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


def database_problem(url: str, create_engine: Callable[[str], sa.Engine]) -> str | None:
    """Why the SQL database at `url` cannot be opened, in one line (password masked); None when
    it can. `create_engine` builds the engine as the service will (driver, pool options)."""
    shown = masked(url)
    try:
        engine = create_engine(url)
    except sa.exc.NoSuchModuleError:
        return f"{shown}: unknown database type {url.split(':', 1)[0]!r}"
    except sa.exc.ArgumentError:
        return f"{shown}: not a database URL (e.g. sqlite:///file.db, postgresql://user@host/db)"
    except ImportError as error:
        return f"{shown}: the database driver is not installed ({error})"
    database = engine.url.database or ""
    try:
        if engine.url.get_backend_name() == "sqlite" and database not in ("", ":memory:"):
            folder = Path(database).expanduser().resolve().parent
            if not folder.is_dir():
                return f"{shown}: cannot create the file: directory {folder} does not exist"
        with engine.connect():
            return None
    except sa.exc.DBAPIError as error:
        return f"{shown}: cannot open: {' '.join(str(error.orig).split())}"
    finally:
        engine.dispose()
