"""What the MLflow UI shows about a model: a version's current state atop its description, and the
alias history as a Markdown table in the registered model's description.

Plain text in, plain text out: the registry edge reads the ledger and the aliases, calls these, and
writes the result, so the pages never contradict the aliases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from promotion.lifecycle import State, StateChange
from promotion.records import CHAMPION, AliasMove

STATE_PREFIX = "**State: "
EVALUATION_PREFIX = "**Evaluation"
SECTION_BREAK = "\n\n---\n\n"
HISTORY_HEADING = "### Alias history"
# MLflow stores descriptions in VARCHAR(5000) columns; PostgreSQL refuses anything longer.
MAX_DESCRIPTION_CHARS = 5000
_REASON_CHARS = 160
_WHY_CHARS = 90
_SKIPPED_EVIDENCE = frozenset({"eval_run_id"})


def when(at: str) -> str:
    """An ISO-8601 timestamp as a reader wants it: `2026-02-01 08:30 UTC`."""
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        return at
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def state_line(
    change: StateChange | None,
    version: int,
    aliases: Mapping[str, int],
    move: AliasMove | None = None,
) -> str:
    """The first paragraph of a version's description: its state, since when, by whom and why,
    and the aliases it holds now, from its last recorded transition (and the alias move that
    caused it, whose reason is the one a person gave) and the model's aliases."""
    held = sorted(alias for alias, at in aliases.items() if at == version)
    holds = f"Aliases now: {', '.join(f'`{a}`' for a in held)}." if held else "Holds no alias."
    if change is None:
        return (
            f"{STATE_PREFIX}unrecorded** (nothing in the alias history about v{version}). {holds}"
        )
    champion = aliases.get(CHAMPION)
    now = f"champion is now v{champion}" if champion is not None else "no version is champion now"
    reason = move.reason if move is not None else change.reason
    stamp, by, why = when(change.at), f"`{change.actor}`", _short(reason, _REASON_CHARS)
    state = change.to_state
    if state is State.CHAMPION and change.cause == "promote":
        head = f"champion** since {stamp}, promoted by {by}"
    elif state is State.CHAMPION:
        head = f"champion** again since {stamp}, put back by a {change.cause} by {by}: {why}"
    elif state is State.ROLLED_BACK:
        how = "" if change.cause == "rollback" else f" (a {change.cause})"
        head = f"rolled back** on {stamp} by {by}{how}: {why}; {now}"
    elif state is State.RETIRED:
        head = f"retired** on {stamp}, superseded by a promotion by {by}; {now}"
    elif state is State.CANDIDATE:
        head = f"candidate** since {stamp}, registered by {by}; not evaluated yet"
    elif state is State.EVALUATED:
        head = f"evaluated** since {stamp}: passed its evaluation ({by}), not yet promoted"
    elif state in (State.CANARY, State.SHADOW):
        head = f"{state}** since {stamp}, in a rollout started by {by}; {now}"
    else:
        head = f"{state}** on {stamp} by {by}: {why}"
    return f"{STATE_PREFIX}{head}. {holds}"


def version_description(
    current: str, *, state: str | None = None, evaluation: str | None = None
) -> str:
    """A version's description with its state line and/or evaluation summary replaced, keeping
    the other parts (the training note last)."""
    old_state, old_evaluation, note = _version_parts(current)
    parts = [state or old_state, evaluation or old_evaluation, note]
    text = SECTION_BREAK.join(part for part in parts if part)
    if len(text) <= MAX_DESCRIPTION_CHARS:
        return text
    # The evaluation summary gives way (its full text is in the evaluation run's report).
    summary = parts[1]
    keep = max(len(summary) - (len(text) - MAX_DESCRIPTION_CHARS) - 1, 0)
    parts[1] = summary[:keep].rstrip() + "…"
    return SECTION_BREAK.join(part for part in parts if part)[:MAX_DESCRIPTION_CHARS]


def _version_parts(description: str) -> tuple[str, str, str]:
    sections = [s for s in description.split(SECTION_BREAK) if s.strip()] if description else []
    state = sections.pop(0) if sections and sections[0].startswith(STATE_PREFIX) else ""
    evaluation = ""
    if sections and sections[0].startswith(EVALUATION_PREFIX):
        evaluation = sections.pop(0)
    return state, evaluation, SECTION_BREAK.join(sections)


def history_table(moves: Sequence[AliasMove], max_chars: int) -> str:
    """The alias history as a compact Markdown table, newest first, cut to fit in `max_chars`
    with a last line saying how many older moves the table leaves out."""
    header = [
        HISTORY_HEADING,
        "",
        "| when | alias | from → to | kind | who | why | numbers |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    if not moves:
        return "\n".join([*header[:2], "No alias has moved yet."])
    lines, size = list(header), sum(len(line) + 1 for line in header)
    newest_first = sorted(moves, key=lambda move: move.sequence, reverse=True)
    for shown, move in enumerate(newest_first):
        row = _history_row(move)
        left = len(newest_first) - shown
        footer = f"\n\n{left} older move(s) are in the `alias_move.*` tags and the ledger."
        if size + len(row) + 1 + len(footer) > max_chars:
            return "\n".join(lines) + footer
        lines.append(row)
        size += len(row) + 1
    return "\n".join(lines)


def _history_row(move: AliasMove) -> str:
    cells = [
        when(move.at),
        f"`{move.alias}`",
        f"{_version(move.from_version)} → {_version(move.to_version)}",
        move.kind,
        move.actor,
        _short(move.reason, _WHY_CHARS),
        ", ".join(
            f"{key} {_rounded(value)}"
            for key, value in move.evidence.items()
            if value not in (None, "") and key not in _SKIPPED_EVIDENCE
        ),
    ]
    return "| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"


def model_description(current: str, moves: Sequence[AliasMove]) -> str:
    """The registered model's description with its alias-history table rewritten from `moves`,
    cut so that the whole fits in MLflow's description column."""
    base = current.split(HISTORY_HEADING)[0].rstrip().removesuffix("---").rstrip()
    if not base:
        return history_table(moves, MAX_DESCRIPTION_CHARS)
    room = MAX_DESCRIPTION_CHARS - len(base) - len(SECTION_BREAK)
    return f"{base}{SECTION_BREAK}{history_table(moves, room)}"


def _rounded(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return str(value)
    try:
        number = float(value)
    except ValueError:
        return str(value)
    if number.is_integer() and abs(number) < 1e15:
        return f"{int(number)}"
    return f"{number:.4g}"


def _version(version: int | None) -> str:
    return "—" if version is None else f"v{version}"


def _short(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
