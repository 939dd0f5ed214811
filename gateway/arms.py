"""Pure rules of alias following: which roles to reload, the canary share, when to retry a load."""

from __future__ import annotations

import math
from dataclasses import dataclass

from promotion.rollout_state import SHARE_TAG as CANARY_SHARE_TAG

ROLES = ("champion", "canary", "shadow")


@dataclass(frozen=True)
class Change:
    """One role whose alias no longer points where the gateway's loaded version is."""

    role: str
    loaded: int | None
    wanted: int | None


def changes(loaded: dict[str, int | None], aliases: dict[str, int]) -> list[Change]:
    """The roles to update so that what is loaded matches the registry's aliases."""
    return [
        Change(role=role, loaded=loaded.get(role), wanted=aliases.get(role))
        for role in ROLES
        if loaded.get(role) != aliases.get(role)
    ]


def canary_share(configured: float, tag_value: str | None) -> tuple[float, str | None]:
    """The share the canary answers: the version's tag when it is a valid share, else the config.

    Returns the share and, when the tag was unusable, the reason (to be logged and shown).
    """
    if tag_value is None:
        return configured, None
    try:
        share = float(tag_value)
    except ValueError:
        share = math.nan
    if not 0.0 <= share <= 1.0:
        return configured, (
            f"tag {CANARY_SHARE_TAG}={tag_value!r} is not a share between 0 and 1; "
            f"using the configured {configured}"
        )
    return share, None


def next_attempt(failures: int, now: float, interval_s: float, cap_s: float = 300.0) -> float:
    """When to try loading a version again after `failures` failed loads in a row.

    Backing off keeps a broken version (e.g. a missing artifact) from being downloaded on every
    poll, while a fixed one is still picked up within `cap_s`.
    """
    return now + min(cap_s, interval_s * 2 ** max(0, failures - 1))
