"""The compact reference an Approve / Reject button carries back to the endpoint.

The reference names the model, the challenger version and the request id. It needs no signature
of its own: Slack signs the whole interactivity request, and the endpoint checks the reference
against the stored request, so a button from another model, version or an older request is
refused rather than trusted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "apr1"
_PATTERN = re.compile(
    rf"^{PREFIX}:(?P<model>[A-Za-z][A-Za-z0-9_]{{0,62}}):(?P<version>[1-9][0-9]{{0,9}})"
    r":(?P<request_id>[0-9a-f]{32})$"
)


class MalformedReference(ValueError):
    """A button value that is not a reference this service wrote."""


@dataclass(frozen=True)
class ButtonRef:
    """Which pending request a button answers."""

    model: str
    version: int
    request_id: str

    def encode(self) -> str:
        """The button `value`: `apr1:<model>:<version>:<request id>`."""
        value = f"{PREFIX}:{self.model}:{self.version}:{self.request_id}"
        if not _PATTERN.fullmatch(value):
            raise MalformedReference(f"cannot encode {self!r}: model, version or id out of range")
        return value

    @classmethod
    def decode(cls, value: str) -> ButtonRef:
        """Parse a button `value`; raises MalformedReference for anything else."""
        match = _PATTERN.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise MalformedReference("button value is not an approval reference")
        return cls(match["model"], int(match["version"]), match["request_id"])
