"""Checks of the params a DAG run is triggered with; a bad one fails the run at once, by name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import registry


class ParamError(ValueError):
    """A DAG param that cannot be used; the message names the param, the value and the fix."""


def parse_as_of(value: str | None, fallback: datetime) -> datetime:
    """The end of the data a run may use: an ISO date or timestamp (naive means UTC), else the
    run's own date; returned as naive UTC, as source timestamps are compared."""
    if value is None or not str(value).strip():
        moment = fallback
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError as error:
            raise ParamError(
                f"DAG param as_of: {value!r} is not an ISO date or timestamp "
                f"(e.g. 2026-03-15 or 2026-03-15T06:00:00+00:00): {error}"
            ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def require_version(model_name: str, version: int, param: str = "version") -> registry.VersionInfo:
    """The registered version a `version` param names; ParamError when it does not exist."""
    if version < 1:
        raise ParamError(f"DAG param {param}: versions are numbered from 1, got {version}")
    found = registry.find_version(model_name, version)
    if found is None:
        raise ParamError(
            f"DAG param {param}: {model_name} has no version {version} in the registry"
        )
    return found


def require_known_params(conf: Mapping[str, object] | None, accepted: Iterable[str]) -> None:
    """ParamError naming each key of a run's conf that is not a param of the DAG, with the
    accepted ones: a misspelt `version` must not leave the run on its defaults."""
    known = sorted(accepted)
    unknown = sorted(str(key) for key in (conf or {}) if key not in known)
    if unknown:
        raise ParamError(
            f"DAG run conf: unknown key(s) {', '.join(unknown)}; accepted: {', '.join(known)}. "
            "Nothing was done; trigger again with the accepted keys only"
        )
