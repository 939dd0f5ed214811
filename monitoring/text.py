"""The monitoring view as terminal tables (rich), for `python -m monitoring status`."""

from __future__ import annotations

import io
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from monitoring.readings import number, parse_time, version_text
from monitoring.view import AliasState, ModelView, Overview, RunSummary

WIDTH = 160


def aliases_text(aliases: Sequence[AliasState]) -> str:
    """`champion v2, challenger v3, canary v4 (answers 25% of traffic)`, or `no aliases`."""
    if not aliases:
        return "no aliases"
    return ", ".join(
        f"{a.alias} v{a.version}" + (f" ({a.detail})" if a.detail else "") for a in aliases
    )


def _when(moment: object) -> str:
    return "–" if moment is None else f"{moment:%Y-%m-%d %H:%M}"


def _render(*tables: Table | str) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=WIDTH, no_color=True, highlight=False)
    for table in tables:
        console.print(table)
    return buffer.getvalue()


def _runs_table(runs: Sequence[RunSummary], note: str) -> Table | str:
    if not runs:
        return f"Last runs: {note or 'none yet'}"
    table = Table(title="Last runs", title_justify="left", show_lines=False)
    for column in ("DAG", "run", "state", "started", "outcome"):
        table.add_column(column, overflow="fold")
    for run in runs:
        table.add_row(run.dag_id, run.run_id, run.state, _when(run.started), run.outcome)
    return table


def overview_text(view: Overview) -> str:
    """One line per model: aliases, what is pending, live accuracy, validation, last check."""
    table = Table(title=f"Models at {_when(view.generated_at)} UTC", title_justify="left")
    for column in (
        "model",
        "aliases",
        "pending",
        "live metric 7d",
        "validation 30d",
        "last check",
        "last move",
        "last runs",
    ):
        table.add_column(column, overflow="fold")
    for model in view.models:
        accuracy = (
            f"{model.metric_name} {model.accuracy:.3f} "
            f"[{model.accuracy_low:.3f}, {model.accuracy_high:.3f}] n={model.labeled}"
            if model.accuracy is not None
            else "no labels"
        )
        validation = (
            f"{model.validations_passed}/{model.validations} passed"
            if model.validations
            else "none"
        )
        check = model.last_check
        check_text = f"{check.outcome}: {check.reason}" if check else "no checks yet"
        move = model.last_move
        move_text = f"{move.alias} {move.change} ({move.kind})" if move else "none"
        runs = "; ".join(f"{r.dag_id}: {r.outcome}" for r in model.last_runs) or "–"
        table.add_row(
            model.model_name,
            aliases_text(model.aliases),
            "; ".join(model.pending) or "nothing",
            accuracy,
            validation,
            check_text,
            move_text,
            runs,
        )
    notes = [f"Last runs: {view.runs_note}"] if view.runs_note else []
    return _render(table, *notes, *view.problems)


def model_text(view: ModelView) -> str:
    """The monitoring view of one model as text."""
    head = Table(
        title=f"{view.model_name} at {_when(view.generated_at)} UTC",
        title_justify="left",
        show_header=False,
    )
    head.add_column("what")
    head.add_column("value", overflow="fold")
    head.add_row("aliases", aliases_text(view.aliases))
    head.add_row("pending", "\n".join(view.pending) or "nothing")
    total = view.metric_total
    if total is not None:
        last = view.metric[-1]
        head.add_row(
            f"champion {view.metric_name}",
            f"{total.value:.3f} [{total.low:.3f}, {total.high:.3f}] on {total.labeled} labels "
            f"since {_when(view.since)}; newest bucket ({_when(last.start)}): {last.value:.3f} "
            f"on {last.labeled}",
        )
    else:
        head.add_row(f"champion {view.metric_name}", view.metric_note)
    floor = f"{view.floor:.4g} ({view.trigger_metric})" if view.floor is not None else "not set"
    head.add_row("performance floor", floor)
    validated = sum(p.validated for p in view.validation)
    passed = sum(p.passed for p in view.validation)
    head.add_row(
        "data validation",
        f"{passed}/{validated} windows passed since {_when(view.since)}"
        if validated
        else "no windows recorded",
    )
    check = view.last_check
    head.add_row(
        "last monitor check",
        f"{_when(parse_time(check.checked_at))} {check.outcome}: {check.reason}"
        if check
        else "no monitor checks yet",
    )
    drift = Table(title="Drift (newest check)", title_justify="left")
    for column in ("feature", "PSI", "p-value", "drifted"):
        drift.add_column(column)
    for feature, points in view.drift.items():
        newest = points[-1]
        drift.add_row(feature, number(newest.psi), number(newest.p_value), number(newest.drifted))
    timeline = Table(title="Alias timeline (newest first)", title_justify="left")
    for column in ("when", "alias", "from → to", "kind", "who", "why", "numbers"):
        timeline.add_column(column, overflow="fold")
    for row in view.timeline:
        timeline.add_row(
            _when(row.at), row.alias, row.change, row.kind, row.who, row.why, row.numbers
        )
    parts: list[Table | str] = [head]
    parts.append(drift if view.drift else "Drift: no drift measured yet")
    parts.append(_runs_table(view.runs, view.runs_note))
    parts.append(timeline if view.timeline else "Alias timeline: no moves recorded")
    if view.alias_drifts:
        drifts = Table(title="Aliases moved outside the workflow", title_justify="left")
        for column in ("noticed", "alias", "ledger says", "MLflow had", "noticed by", "that move"):
            drifts.add_column(column, overflow="fold")
        for d in view.alias_drifts:
            drifts.add_row(
                _when(parse_time(d.detected_at)),
                d.alias,
                version_text(d.ledger_version),
                version_text(d.registry_version),
                d.attempted_by,
                f"{d.attempted_move}: {'refused' if d.refused else 'forced over it'}",
            )
        parts.append(drifts)
    return _render(*parts)
