"""Which version answers a request: the canary split, decided from a hash of the request key."""

from __future__ import annotations

import hashlib
from typing import Literal

Role = Literal["champion", "canary", "shadow"]

_BUCKETS = 2**64


def bucket(model_name: str, key: str) -> float:
    """A uniform number in [0, 1) fixed by (model, key), so one key always lands in one place.

    The model name is mixed in so a user who is in the canary of one model is not therefore in the
    canary of every model.
    """
    digest = hashlib.blake2b(f"{model_name}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _BUCKETS


def choose_role(model_name: str, key: str, canary_share: float, canary_loaded: bool) -> Role:
    """`canary` for the keys whose bucket falls under the share, `champion` otherwise.

    Raising the share only moves keys from the champion to the canary, never back, so a sticky
    user sees at most one switch during a rollout.
    """
    if not canary_loaded or canary_share <= 0:
        return "champion"
    return "canary" if bucket(model_name, key) < canary_share else "champion"
