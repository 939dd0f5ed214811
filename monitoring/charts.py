"""The view's charts, rendered on the server by matplotlib as SVG (text kept as text, so a reader
can search it and a browser test can read the numbers)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from monitoring.readings import DriftPoint, MetricPoint, RatePoint, TimelineRow  # noqa: E402

STYLE = {
    "svg.fonttype": "none",
    "svg.hashsalt": "monitoring",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
# Past this many bars their "passed/validated" labels would overlap; the page's table has them.
MAX_BAR_LABELS = 40
MOVE_COLOURS = {"promote": "#2a7d2a", "rollback": "#b03030", "revert": "#b06a00"}


def champion_metric_chart(
    points: Sequence[MetricPoint],
    moves: Sequence[TimelineRow],
    *,
    since: datetime,
    until: datetime,
    confidence: float,
    floor: float | None,
    trigger_metric: str | None,
    trigger_points: Sequence[object] = (),
    metric_name: str = "accuracy",
) -> str:
    """The champion's live metric (accuracy, or a regressor's error) with its interval band,
    champion moves marked, and the performance trigger's floor and readings when there are any."""
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(figsize=(9, 3.2))
        times = [p.start for p in points]
        axes.fill_between(
            times,
            [p.low for p in points],
            [p.high for p in points],
            step="post",
            alpha=0.25,
            color="#3b6fb6",
            label=f"{confidence:.0%} interval",
            gid="metric-band",
        )
        axes.step(
            times,
            [p.value for p in points],
            where="post",
            color="#3b6fb6",
            label=f"champion {metric_name} (prediction log)",
            gid="metric-line",
        )
        if trigger_points:
            axes.errorbar(
                [p.at for p in trigger_points],
                [p.value for p in trigger_points],
                yerr=[
                    [
                        p.value - (p.lower if p.lower is not None else p.value)
                        for p in trigger_points
                    ],
                    [
                        (p.upper if p.upper is not None else p.value) - p.value
                        for p in trigger_points
                    ],
                ],
                fmt="o",
                markersize=3,
                color="#6a3bb6",
                label=f"trigger {trigger_metric or 'metric'} (monitor checks)",
                gid="trigger-points",
            )
        if floor is not None:
            axes.axhline(floor, color="#b03030", linestyle="--", linewidth=1, gid="floor")
            axes.annotate(
                f"floor {floor:.4g}" + (f" ({trigger_metric})" if trigger_metric else ""),
                xy=(0, floor),
                xycoords=("axes fraction", "data"),
                xytext=(2, 3),
                textcoords="offset points",
                color="#b03030",
            )
        _mark_moves(axes, [m for m in moves if m.alias == "champion" and since <= m.at <= until])
        axes.set_xlim(since, until)
        axes.set_ylabel(metric_name)
        bounds = [floor] if floor is not None else []
        if metric_name == "accuracy":
            axes.set_ylim(_limits([p.low for p in points] + bounds), 1.0)
        else:  # an error: from 0 to a little above the highest bound
            axes.set_ylim(0.0, 1.1 * max([p.high for p in points] + bounds) or 1.0)
        axes.legend(loc="lower right", fontsize=8, frameon=False)
        return _svg(figure, axes)


def validation_chart(points: Sequence[RatePoint]) -> str:
    """The share of validated windows that passed, per time bucket, with the counts on the bars."""
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(figsize=(9, 2.4))
        times = [p.start for p in points]
        width = _bar_width(times)
        bars = axes.bar(
            times,
            [p.rate for p in points],
            width=width,
            align="edge",
            color=["#2a7d2a" if p.rate == 1 else "#b06a00" for p in points],
            gid="validation-bars",
        )
        if len(points) <= MAX_BAR_LABELS:
            axes.bar_label(bars, labels=[f"{p.passed}/{p.validated}" for p in points], fontsize=7)
        axes.set_ylim(0, 1.15)
        axes.set_ylabel("windows passed")
        return _svg(figure, axes)


def drift_chart(series: Mapping[str, Sequence[DriftPoint]]) -> str:
    """Each feature's PSI at every monitor check, drifted readings marked with a cross."""
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(figsize=(9, 2.8))
        for feature, points in series.items():
            measured = [p for p in points if p.psi is not None]
            (line,) = axes.plot(
                [p.at for p in measured],
                [p.psi for p in measured],
                linewidth=1,
                label=feature,
                gid=f"drift-{feature}",
            )
            drifted = [p for p in measured if p.drifted]
            axes.plot(
                [p.at for p in drifted],
                [p.psi for p in drifted],
                "x",
                color=line.get_color(),
                markersize=8,
            )
        axes.set_ylabel("PSI")
        axes.legend(loc="upper left", fontsize=8, frameon=False, ncol=4)
        return _svg(figure, axes)


def _mark_moves(axes: object, moves: Sequence[TimelineRow]) -> None:
    for move in moves:
        colour = MOVE_COLOURS.get(move.kind, "#555555")
        axes.axvline(move.at, color=colour, linewidth=1, linestyle=":", gid=f"move-{move.sequence}")
        axes.annotate(
            f"{move.change.split(' → ')[-1]} {move.kind}",
            xy=(move.at, 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=7,
            color=colour,
        )


def _limits(values: Sequence[float]) -> float:
    return max(0.0, min(values, default=0.5) - 0.05)


def _bar_width(times: Sequence[object]) -> float:
    if len(times) < 2:
        return 1.0
    return (
        0.9 * min((b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)) / 86400
    )


def _svg(figure: Figure, axes: object) -> str:
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(axes.xaxis.get_major_locator()))
    # Fixed margins: tight_layout measures every text and cost more than drawing the chart.
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.14, top=0.95)
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]
