"""The view's HTML pages, rendered by Jinja2 templates (autoescaped) with matplotlib charts."""

from __future__ import annotations

from datetime import datetime
from functools import cache

from jinja2 import Environment, PackageLoader, select_autoescape

from monitoring import charts
from monitoring.readings import parse_time, version_text
from monitoring.text import aliases_text
from monitoring.view import ModelView, Overview


def _when(moment: datetime | None) -> str:
    return "–" if moment is None else f"{moment:%Y-%m-%d %H:%M}"


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("monitoring", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals.update(
        when=_when,
        when_text=lambda moment: _when(parse_time(moment)),
        aliases_text=aliases_text,
        version_text=version_text,
    )
    return environment


def overview_page(view: Overview, *, user: str) -> str:
    """The page listing every model."""
    return _environment().get_template("overview.html").render(view=view, user=user)


def model_page(view: ModelView, *, user: str) -> str:
    """The page of one model, with its charts rendered on the server."""
    rendered = {
        "metric": charts.champion_metric_chart(
            view.metric,
            view.timeline,
            since=view.since,
            until=view.generated_at,
            confidence=view.confidence,
            floor=view.floor,
            trigger_metric=view.trigger_metric,
            trigger_points=view.trigger_points,
            metric_name=view.metric_name,
        )
        if view.metric
        else "",
        "validation": charts.validation_chart(view.validation) if view.validation else "",
        "drift": charts.drift_chart(view.drift) if view.drift else "",
    }
    return (
        _environment()
        .get_template("model.html")
        .render(
            view=view,
            user=user,
            charts=rendered,
            validation_total=sum(p.validated for p in view.validation),
            validation_passed=sum(p.passed for p in view.validation),
        )
    )
