"""Where the promotion ledger lives: the one place the registry reads its setting."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

LEDGER_URL_ENV = "PROMOTION_LEDGER_URL"
_DATABASE_SCHEMES = ("sqlite", "postgresql")


class LedgerConfigError(ValueError):
    """The ledger's location is missing or not a database the ledger can lock."""


def ledger_url(tracking_uri: str, environ: Mapping[str, str] = os.environ) -> str:
    """The SQLAlchemy URL of the ledger: PROMOTION_LEDGER_URL, else the MLflow tracking database.

    A tracking URI that is itself a database URL (sqlite:/// or postgresql://) keeps the ledger
    next to the registry it records; a tracking server (http://…) needs PROMOTION_LEDGER_URL.
    """
    configured = environ.get(LEDGER_URL_ENV, "").strip()
    url = configured or tracking_uri
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme in _DATABASE_SCHEMES and "://" in url:
        return url
    if configured:
        raise LedgerConfigError(
            f"{LEDGER_URL_ENV}={masked(configured)!r}: must be a sqlite:/// or postgresql:// URL"
        )
    raise LedgerConfigError(
        f"{LEDGER_URL_ENV} is not set and the MLflow tracking URI {masked(tracking_uri)!r} is not a "
        "database URL; set it to the SQL database that keeps the alias history, e.g. "
        f"{LEDGER_URL_ENV}=postgresql://user@host:5432/mlflow"
    )


def masked(url: str) -> str:
    """A URL with its password replaced by ***, fit for messages and logs."""
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)
