"""Plain records shared by the decisions and the registry edge."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

CHAMPION = "champion"
CHALLENGER = "challenger"
CANARY = "canary"
SHADOW = "shadow"

MoveKind = Literal["candidate", "promote", "reject", "revert", "rollback"]


@dataclass(frozen=True)
class AliasMove:
    """One recorded move of an alias: which version it left, which it reached, who and why."""

    sequence: int
    alias: str
    from_version: int | None
    to_version: int | None
    kind: MoveKind
    at: str
    actor: str
    reason: str
    evidence: dict[str, float | int | str | None] = field(default_factory=dict)

    def to_json_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json_dict(cls, data: dict) -> AliasMove:
        return cls(
            sequence=int(data["sequence"]),
            alias=str(data["alias"]),
            from_version=_optional_int(data.get("from_version")),
            to_version=_optional_int(data.get("to_version")),
            kind=data["kind"],
            at=str(data["at"]),
            actor=str(data.get("actor", "")),
            reason=str(data.get("reason", "")),
            evidence=dict(data.get("evidence") or {}),
        )


def _optional_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[arg-type]
