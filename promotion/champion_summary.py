"""Who is champion and where a default rollback would go: a small record written after every
champion move, and the text the rollback DAG's trigger form shows from it.

The form cannot ask the registry (DAG files parse without MLflow), so it shows the record as of
its writing; the rollback's plan reads the registry again before anything moves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from promotion.decisions import NothingToRollBack, rollback_target
from promotion.records import CHAMPION, AliasMove

VERSION_HELP = (
    "Version to make champion. Empty: the most recent former champion that was never rolled "
    "back from or reverted (a second rollback never flips back)."
)


@dataclass(frozen=True)
class ChampionSummary:
    """The champion of a model, since when, and the default rollback target with why and when it
    last held `champion` (or why there is none), as of `as_of` (ISO time of writing)."""

    model_name: str
    as_of: str
    champion: int | None
    champion_since: str | None
    target: int | None
    target_reason: str
    target_until: str | None

    def to_json_dict(self) -> dict:
        """The JSON-able form the summary file holds."""
        return asdict(self)

    @classmethod
    def from_json_dict(cls, data: dict) -> ChampionSummary:
        """The record from `to_json_dict`'s output; KeyError or ValueError when it is not one."""
        return cls(
            model_name=str(data["model_name"]),
            as_of=str(data["as_of"]),
            champion=_optional_int(data["champion"]),
            champion_since=_optional_str(data["champion_since"]),
            target=_optional_int(data["target"]),
            target_reason=str(data["target_reason"]),
            target_until=_optional_str(data["target_until"]),
        )


def champion_summary(
    model_name: str,
    history: Sequence[AliasMove],
    *,
    current_champion: int | None,
    as_of: str,
) -> ChampionSummary:
    """The summary of `champion`'s history: the target is the one a rollback with default params
    would plan (`rollback_target`), so the form and the plan cannot disagree on the rule."""
    moves = [move for move in history if move.alias == CHAMPION]
    since = next((m.at for m in reversed(moves) if m.to_version == current_champion), None)
    try:
        planned = rollback_target(moves, current_champion=current_champion)
    except NothingToRollBack as nothing:
        return ChampionSummary(model_name, as_of, current_champion, since, None, str(nothing), None)
    until = next((m.at for m in reversed(moves) if m.from_version == planned.to_version), None)
    return ChampionSummary(
        model_name, as_of, current_champion, since, planned.to_version, planned.reason, until
    )


def version_description(summary: ChampionSummary | None, unavailable: str = "") -> str:
    """The markdown under the rollback form's `version` field: the rule, then the champion and
    the default target with their times as of the summary, or why they are not shown."""
    if summary is None:
        return f"{VERSION_HELP}\n\n_Current champion and default target not shown: {unavailable}._"
    champion = (
        "none"
        if summary.champion is None
        else f"**v{summary.champion}**" + _since(" since", summary.champion_since)
    )
    target = (
        f"none: {summary.target_reason}"
        if summary.target is None
        else f"**v{summary.target}**"
        + _since(", champion until", summary.target_until)
        + f": {summary.target_reason}"
    )
    return (
        f"{VERSION_HELP}\n\n"
        f"- Current champion: {champion}\n"
        f"- Default target (this field empty): {target}\n\n"
        f"_As of {readable_time(summary.as_of)}, the last champion move the workflow recorded; "
        "the plan reads the registry again before anything moves._"
    )


def readable_time(moment: str) -> str:
    """An ISO time as `2026-06-30 12:00 UTC` (a time without an offset is UTC); the text itself
    when it is not an ISO time."""
    try:
        parsed = datetime.fromisoformat(moment)
    except ValueError:
        return moment
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return parsed.strftime("%Y-%m-%d %H:%M UTC")


def _since(prefix: str, moment: str | None) -> str:
    return "" if moment is None else f"{prefix} {readable_time(moment)}"


def _optional_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[arg-type]


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)
