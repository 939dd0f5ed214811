"""Human-readable views of an evaluation: an HTML report with plots, a Markdown summary for the
model version's description, and the flat `eval.*` tags. Nothing here talks to MLflow; the
caller logs the files and sets the tags.

The report shows each task the way it is judged: binary models get ROC and calibration curves;
multiclass models confusion matrices, a per-class table and top-label calibration; regression
models predicted against actual values, their residuals and a residual summary.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from promotion.evaluation import EvaluationResult, GuardrailResult
from promotion.metrics import (
    class_counts,
    per_class_scores,
    predicted_class,
    reliability_bins,
    roc_auc,
    roc_curve,
    top_label,
)

ROC_PLOT = "roc_curve.png"
CALIBRATION_PLOT = "calibration.png"
CONFUSION_PLOT = "confusion_matrix.png"
PREDICTED_PLOT = "predicted_vs_actual.png"
RESIDUAL_PLOT = "residuals.png"
# The plot files each task's report writes, in the order they appear.
PLOTS: dict[str, tuple[str, ...]] = {
    "binary": (ROC_PLOT, CALIBRATION_PLOT),
    "multiclass": (CONFUSION_PLOT, CALIBRATION_PLOT),
    "regression": (PREDICTED_PLOT, RESIDUAL_PLOT),
}
# A million-row ROC curve has a million steps no eye can see; an evenly spaced subset is drawn.
_CURVE_POINTS = 1001
# Likewise a scatter of a million points is a blot: an evenly spaced subset of rows is drawn.
_SCATTER_POINTS = 5000
# Counts are written into the confusion matrix's cells only while they stay legible.
_ANNOTATED_CLASSES = 12
_TEST_NAMES = {"mcnemar_exact": "exact McNemar", "delong": "DeLong", "paired_t": "paired t-test"}


@dataclass(frozen=True)
class EvaluationReport:
    """The self-contained HTML report (plots embedded) and the plot files written next to it."""

    html: str
    plots: tuple[Path, ...]


def render_report(
    result: EvaluationResult,
    *,
    labels: np.ndarray,
    champion: np.ndarray | None,
    challenger: np.ndarray,
    out_dir: Path | str,
    title: str = "Champion–challenger evaluation",
) -> EvaluationReport:
    """Render `result` as HTML and write its task's plots (`PLOTS`) as PNGs into `out_dir`.

    Predictions are shaped as for the evaluation (`result.task`). The plots are also embedded in
    the HTML, so the report reads the same as a single artifact. A result that could not be
    evaluated gets no plots: its inputs are what was wrong. Without a champion (a model's first
    candidate) the plots and tables show the challenger alone.
    """
    plots: tuple[Path, ...] = ()
    sections: list[str] = []
    if result.verdict != "cannot_evaluate":
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        labels = np.asarray(labels)
        models = {"challenger": np.asarray(challenger)}
        if champion is not None:
            models = {"champion": np.asarray(champion), **models}
        if result.task == "multiclass":
            labels = labels.astype(np.intp)
            names = _class_names(result, models["challenger"].shape[1])
            plots = (
                _plot_confusion(labels, models, names, out / CONFUSION_PLOT),
                _plot_calibration(labels, models, out / CALIBRATION_PLOT, top_label_only=True),
            )
            sections = _per_class_table(labels, models, names)
        elif result.task == "regression":
            labels = labels.astype(np.float64)
            plots = (
                _plot_predicted(labels, models, out / PREDICTED_PLOT),
                _plot_residuals(labels, models, out / RESIDUAL_PLOT),
            )
            sections = _residual_table(labels, models)
        else:
            plots = (
                _plot_roc(labels, models, out / ROC_PLOT),
                _plot_calibration(labels, models, out / CALIBRATION_PLOT),
            )
    return EvaluationReport(_html(result, title, plots, sections), plots)


def markdown_summary(result: EvaluationResult, *, run_link: str | None = None) -> str:
    """A few lines for the model version's description: verdict, improvement with its interval,
    the guardrails that stopped it, and where the full report is."""
    lines = [f"**Evaluation: {result.verdict}** ({result.metric}, {result.mode.replace('_', '-')})"]
    if result.improvement is not None:
        lines += [
            "",
            f"- {result.metric}: challenger {result.challenger_score:.4f} vs champion "
            f"{result.champion_score:.4f} on {result.rows:,} holdout rows",
            f"- improvement {result.improvement:+.4f}, {result.confidence:.0%} CI "
            f"[{result.ci_low:+.4f}, {result.ci_high:+.4f}]; lower bound required "
            f"{result.requirement}" + _p_value_text(result, prefix="; "),
        ]
    elif result.challenger_score is not None:
        others = ", ".join(
            f"{name} {value:.4f}"
            for name, value in result.challenger_metrics.items()
            if name != result.metric
        )
        lines += [
            "",
            f"- {result.metric}: {result.challenger_score:.4f} on {result.rows:,} holdout rows, "
            "no champion to compare against",
            f"- other holdout metrics: {others}",
        ]
    failed = result.guardrails_with("fail")
    insufficient = result.guardrails_with("insufficient")
    lines.append(f"- failed guardrails: {', '.join(failed) if failed else 'none'}")
    if insufficient:
        lines.append(f"- insufficient data: {', '.join(insufficient)}")
    lines += ["", "Reasons:", *(f"- {reason}" for reason in result.reasons)]
    if run_link:
        lines += ["", f"[Full evaluation report]({run_link})"]
    return "\n".join(lines)


def evaluation_tags(result: EvaluationResult) -> dict[str, str]:
    """The `eval.*` tags of a model version: always the same keys, "" where a value is absent."""
    return {
        "eval.verdict": result.verdict,
        "eval.task": result.task,
        "eval.metric": result.metric,
        "eval.mode": result.mode,
        "eval.champion_score": _number(result.champion_score),
        "eval.challenger_score": _number(result.challenger_score),
        "eval.delta": _number(result.improvement),
        "eval.ci_low": _number(result.ci_low),
        "eval.ci_high": _number(result.ci_high),
        "eval.confidence": _number(result.confidence),
        "eval.required_lower_bound": _number(result.required_lower_bound),
        "eval.p_value": _number(result.p_value),
        "eval.test": result.test or "",
        "eval.rows": str(result.rows),
        "eval.resamples": str(result.resamples),
        "eval.interval": result.interval or "",
        "eval.seed": str(result.seed),
        "eval.failed_guardrails": ",".join(result.guardrails_with("fail")),
        "eval.insufficient_guardrails": ",".join(result.guardrails_with("insufficient")),
        "eval.skipped_guardrails": ",".join(result.guardrails_with("skipped")),
    }


def _interval_text(result: EvaluationResult) -> str:
    if result.interval == "delong":
        return "DeLong's paired variance, normal interval (large holdout, no resampling)"
    if result.interval == "normal":
        return "paired per-row variance, normal interval (large holdout, no resampling)"
    return f"paired bootstrap, {result.resamples} resamples, seed {result.seed}"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _p_value_text(result: EvaluationResult, prefix: str = "") -> str:
    if result.p_value is None or result.test is None:
        return ""
    # The normal tail underflows to exactly 0 for very large effects on many rows.
    value = "< 1e-300" if result.p_value == 0 else f"= {result.p_value:.3g}"
    return f"{prefix}{_TEST_NAMES.get(result.test, result.test)} p {value}"


def _figure():
    # The object-oriented API with an explicit Agg canvas: no pyplot, no global backend switch,
    # safe inside a worker process that never had a display.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _plot_roc(labels: np.ndarray, models: dict[str, np.ndarray], path: Path) -> Path:
    figure = _figure()
    axes = figure.add_subplot()
    for name, probs in models.items():
        fpr, tpr = roc_curve(labels, probs)
        keep = np.unique(np.linspace(0, fpr.size - 1, _CURVE_POINTS).round().astype(int))
        axes.plot(fpr[keep], tpr[keep], label=f"{name} (AUC {roc_auc(labels, probs):.4f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def _plot_calibration(
    labels: np.ndarray,
    models: dict[str, np.ndarray],
    path: Path,
    *,
    top_label_only: bool = False,
) -> Path:
    figure = _figure()
    axes = figure.add_subplot()
    for name, probs in models.items():
        right, confidence = top_label(labels, probs) if top_label_only else (labels, probs)
        table = reliability_bins(right, confidence)
        filled = table.counts > 0
        axes.plot(table.mean_predicted[filled], table.observed_rate[filled], marker="o", label=name)
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8, label="perfect")
    axes.set(
        xlabel="probability of the predicted class"
        if top_label_only
        else "mean predicted probability",
        ylabel="share predicted right" if top_label_only else "observed positive rate",
        title="Top-label calibration (10 bins)"
        if top_label_only
        else "Calibration (10 equal-width bins)",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def _class_names(result: EvaluationResult, classes: int) -> list[str]:
    if len(result.classes) == classes:
        return list(result.classes)
    return [str(index) for index in range(classes)]


def _plot_confusion(
    labels: np.ndarray, models: dict[str, np.ndarray], names: list[str], path: Path
) -> Path:
    k = len(names)
    figure = _figure()
    figure.set_size_inches(5.0 * len(models), 4.5)
    short = [name if len(name) <= 12 else name[:11] + "…" for name in names]
    for position, (model, probs) in enumerate(models.items(), start=1):
        axes = figure.add_subplot(1, len(models), position)
        counts = class_counts(labels, predicted_class(probs), k)
        # Shaded by the share of each true class, so rare classes are as visible as common ones.
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        if k <= _ANNOTATED_CLASSES:
            for row in range(k):
                for column in range(k):
                    axes.text(
                        column,
                        row,
                        f"{counts[row, column]:,}",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if shares[row, column] > 0.5 else "black",
                    )
        axes.set_xticks(
            range(k), short, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center"
        )
        axes.set_yticks(range(k), short)
        axes.set(xlabel="predicted class", ylabel="true class", title=f"{model}: confusion matrix")
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def _per_class_table(
    labels: np.ndarray, models: dict[str, np.ndarray], names: list[str]
) -> list[str]:
    e = html.escape
    scores = {model: per_class_scores(labels, probs) for model, probs in models.items()}
    header = "".join(
        f"<th>{e(model)} {measure}</th>"
        for model in models
        for measure in ("precision", "recall", "F1")
    )
    lines = [
        "<h2>Per class</h2><table>",
        f"<tr><th>class</th><th>holdout rows</th>{header}</tr>",
    ]
    support = next(iter(scores.values())).support
    for index, name in enumerate(names):
        cells = "".join(
            f"<td class='num'>{value[index]:.4f}</td>"
            for model in models
            for value in (scores[model].precision, scores[model].recall, scores[model].f1)
        )
        lines.append(
            f"<tr><td>{e(name)}</td><td class='num'>{int(support[index]):,}</td>{cells}</tr>"
        )
    lines.append("</table>")
    return lines


def _scatter_rows(rows: int) -> np.ndarray:
    return np.unique(np.linspace(0, rows - 1, min(rows, _SCATTER_POINTS)).round().astype(int))


def _plot_predicted(labels: np.ndarray, models: dict[str, np.ndarray], path: Path) -> Path:
    figure = _figure()
    axes = figure.add_subplot()
    rows = _scatter_rows(labels.size)
    for name, values in models.items():
        axes.scatter(labels[rows], values[rows], s=6, alpha=0.4, label=name)
    low = float(min(labels.min(), *(values.min() for values in models.values())))
    high = float(max(labels.max(), *(values.max() for values in models.values())))
    axes.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=0.8, label="exact")
    shown = f"{rows.size:,} of {labels.size:,} rows" if rows.size < labels.size else "all rows"
    axes.set(
        xlabel="actual value", ylabel="predicted value", title=f"Predicted vs actual ({shown})"
    )
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def _plot_residuals(labels: np.ndarray, models: dict[str, np.ndarray], path: Path) -> Path:
    figure = _figure()
    axes = figure.add_subplot()
    residuals = {name: values - labels for name, values in models.items()}
    spread = np.concatenate(list(residuals.values()))
    edges = np.histogram_bin_edges(spread[np.isfinite(spread)], bins=50)
    for name, values in residuals.items():
        axes.hist(values, bins=edges, histtype="step", linewidth=1.5, label=name)
    axes.axvline(0, linestyle="--", color="grey", linewidth=0.8)
    axes.set(xlabel="residual (predicted − actual)", ylabel="rows", title="Residuals")
    axes.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def _residual_table(labels: np.ndarray, models: dict[str, np.ndarray]) -> list[str]:
    e = html.escape
    rows = {
        "mean (bias)": lambda r: float(np.mean(r)),
        "standard deviation": lambda r: float(np.std(r)),
        "median absolute": lambda r: float(np.median(np.abs(r))),
        "5th percentile": lambda r: float(np.percentile(r, 5)),
        "95th percentile": lambda r: float(np.percentile(r, 95)),
        "largest absolute": lambda r: float(np.max(np.abs(r))),
    }
    residuals = {name: values - labels for name, values in models.items()}
    header = "".join(f"<th>{e(name)}</th>" for name in residuals)
    lines = [
        "<h2>Residuals (predicted − actual)</h2><table>",
        f"<tr><th>statistic</th>{header}</tr>",
    ]
    for statistic, compute in rows.items():
        cells = "".join(f"<td class='num'>{compute(r):.4g}</td>" for r in residuals.values())
        lines.append(f"<tr><td>{e(statistic)}</td>{cells}</tr>")
    lines.append("</table>")
    return lines


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 60rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { display: inline-block; padding: 0.2rem 0.8rem; border-radius: 0.3rem; color: white; }
.promote { background: #2e7d32; } .reject { background: #c62828; }
.cannot_evaluate { background: #6d6d6d; }
.pass { color: #2e7d32; } .fail { color: #c62828; font-weight: bold; }
.insufficient { color: #b26a00; font-weight: bold; } .skipped { color: #6d6d6d; }
img { max-width: 100%; margin-right: 1rem; }
"""


def _html(
    result: EvaluationResult, title: str, plots: tuple[Path, ...], sections: list[str]
) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f'<p><span class="verdict {e(result.verdict)}">{e(result.verdict)}</span></p>',
        f"<p>{e(_task_text(result))}</p>",
        "<h2>Reasons</h2><ul>",
        *(f"<li>{e(reason)}</li>" for reason in result.reasons),
        "</ul>",
    ]
    if result.improvement is not None:
        rows = [
            ("metric", result.metric),
            ("mode", result.mode.replace("_", "-")),
            ("champion", f"{result.champion_score:.4f}"),
            ("challenger", f"{result.challenger_score:.4f}"),
            ("improvement (positive = challenger better)", f"{result.improvement:+.4f}"),
            (
                f"{result.confidence:.0%} confidence interval",
                f"[{result.ci_low:+.4f}, {result.ci_high:+.4f}]",
            ),
            ("lower bound required", result.requirement),
            ("significance", _p_value_text(result) or "not computed for this metric"),
            ("holdout rows", f"{result.rows:,}"),
            ("interval", _interval_text(result)),
        ]
        parts += ["<h2>Comparison</h2><table>"]
        parts += [f"<tr><th>{e(name)}</th><td>{e(value)}</td></tr>" for name, value in rows]
        parts += ["</table>"]
    parts += _guardrail_table(result.guardrails)
    if result.champion_metrics:
        parts += [
            "<h2>All metrics</h2><table>",
            "<tr><th>metric</th><th>champion</th><th>challenger</th></tr>",
        ]
        for name, value in result.champion_metrics.items():
            parts.append(
                f"<tr><td>{e(name)}</td><td class='num'>{value:.4f}</td>"
                f"<td class='num'>{result.challenger_metrics[name]:.4f}</td></tr>"
            )
        parts.append("</table>")
    elif result.challenger_metrics:
        parts += [
            f"<h2>Holdout metrics</h2><p>{result.rows:,} holdout rows; no champion to compare "
            "against.</p><table>",
            "<tr><th>metric</th><th>challenger</th></tr>",
        ]
        parts += [
            f"<tr><td>{e(name)}</td><td class='num'>{value:.4f}</td></tr>"
            for name, value in result.challenger_metrics.items()
        ]
        parts.append("</table>")
    parts += sections
    if plots:
        parts.append("<h2>Plots</h2><p>")
        for path in plots:
            encoded = base64.b64encode(path.read_bytes()).decode("ascii")
            parts.append(f'<img alt="{e(path.stem)}" src="data:image/png;base64,{encoded}">')
        parts.append("</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _task_text(result: EvaluationResult) -> str:
    if result.classes:
        return f"task: {result.task} ({len(result.classes)} classes: {', '.join(result.classes)})"
    return f"task: {result.task}"


def _guardrail_table(guardrails: tuple[GuardrailResult, ...]) -> list[str]:
    if not guardrails:
        return []
    e = html.escape
    lines = [
        "<h2>Guardrails</h2><table>",
        "<tr><th>guardrail</th><th>status</th><th>blocks</th><th>details</th></tr>",
    ]
    for guardrail in guardrails:
        lines.append(
            f"<tr><td>{e(guardrail.name)}</td>"
            f'<td class="{e(guardrail.status)}">{e(guardrail.status)}</td>'
            f"<td>{'yes' if guardrail.blocks_promotion else 'no'}</td>"
            f"<td>{e(guardrail.message)}</td></tr>"
        )
    lines.append("</table>")
    return lines
