"""Retry transient registry and database errors with exponential backoff."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import requests
import sqlalchemy.exc
import tenacity
from mlflow.exceptions import MlflowException
from mlflow.protos import databricks_pb2

T = TypeVar("T")

_TRANSIENT_MLFLOW_CODES = {
    databricks_pb2.ErrorCode.Name(code)
    for code in (
        databricks_pb2.INTERNAL_ERROR,
        databricks_pb2.TEMPORARILY_UNAVAILABLE,
        databricks_pb2.REQUEST_LIMIT_EXCEEDED,
        databricks_pb2.DEADLINE_EXCEEDED,
    )
}

# Driver messages of failures that pass: a busy SQLite file, a dropped or refused connection.
_TRANSIENT_DB_HINTS = (
    "database is locked",
    "could not connect",
    "connection refused",
    "server closed the connection",
    "connection reset",
    "terminating connection",
    "timeout",
)


def is_transient(error: BaseException) -> bool:
    """True for errors a retry can cure: connection drops, 5xx and locked or lost databases."""
    if isinstance(error, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return True
    if isinstance(error, sqlalchemy.exc.DBAPIError):
        message = str(error.orig).lower()
        return error.connection_invalidated or any(hint in message for hint in _TRANSIENT_DB_HINTS)
    if isinstance(error, MlflowException):
        return error.error_code in _TRANSIENT_MLFLOW_CODES
    return False


def retry_transient(
    attempts: int = 5, first_wait: float = 0.5, max_wait: float = 8.0
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorate a call so transient errors are retried, waiting 0.5 s, 1 s, 2 s, … between tries."""
    return tenacity.retry(
        retry=tenacity.retry_if_exception(is_transient),
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_exponential(multiplier=first_wait, max=max_wait),
        reraise=True,
    )
