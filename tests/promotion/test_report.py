from __future__ import annotations

import numpy as np
import pytest

from promotion.evaluation import (
    EvaluationConfig,
    EvaluationResult,
    SliceGuardrail,
    evaluate_challenger,
)
from promotion.report import (
    CALIBRATION_PLOT,
    ROC_PLOT,
    evaluation_tags,
    markdown_summary,
    render_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def holdout():
    rng = np.random.default_rng(0)
    labels = (rng.random(2000) < 0.4).astype(int)
    champion = np.clip(0.25 * labels + 0.75 * rng.random(2000), 0, 1)
    challenger = np.clip(0.45 * labels + 0.55 * rng.random(2000), 0, 1)
    region = np.where(np.arange(2000) < 30, "<rare & odd>", "common")
    return labels, champion, challenger, region


@pytest.fixture
def result(holdout) -> EvaluationResult:
    labels, champion, challenger, region = holdout
    config = EvaluationConfig(
        metric="roc_auc",
        min_improvement=0.01,
        resamples=200,
        slices=(SliceGuardrail("region", "categorical", max_regression=0.01, min_rows=100),),
    )
    return evaluate_challenger(
        config,
        labels=labels,
        champion=champion,
        challenger=challenger,
        slices={"region": region},
    )


def test_report_writes_both_plots_as_png(result, holdout, tmp_path):
    labels, champion, challenger, _ = holdout
    report = render_report(
        result, labels=labels, champion=champion, challenger=challenger, out_dir=tmp_path
    )
    assert {path.name for path in report.plots} == {ROC_PLOT, CALIBRATION_PLOT}
    for path in report.plots:
        assert path.parent == tmp_path
        assert path.read_bytes().startswith(PNG_MAGIC)


def test_report_html_is_self_contained_and_escapes_slice_values(result, holdout, tmp_path):
    labels, champion, challenger, _ = holdout
    report = render_report(
        result, labels=labels, champion=champion, challenger=challenger, out_dir=tmp_path
    )
    assert report.html.count('src="data:image/png;base64,') == 2
    assert "&lt;rare &amp; odd&gt;" in report.html
    assert "<rare & odd>" not in report.html
    assert 'class="verdict reject"' in report.html
    assert "DeLong p =" in report.html


def test_unevaluable_result_renders_its_reasons_without_plots(tmp_path):
    config = EvaluationConfig(metric="accuracy", resamples=100)
    labels = np.array([1, 1, 1])
    result = evaluate_challenger(
        config, labels=labels, champion=np.full(3, 0.4), challenger=np.full(3, 0.6)
    )
    report = render_report(
        result,
        labels=labels,
        champion=np.full(3, 0.4),
        challenger=np.full(3, 0.6),
        out_dir=tmp_path / "plots",
    )
    assert report.plots == ()
    assert not (tmp_path / "plots").exists()
    assert "both classes are needed" in report.html


def test_markdown_summary_states_verdict_interval_guardrails_and_link(result):
    text = markdown_summary(result, run_link="https://mlflow.example/#/runs/42")
    assert text.startswith("**Evaluation: reject**")
    assert f"[{result.ci_low:+.4f}, {result.ci_high:+.4f}]" in text
    assert f"improvement {result.improvement:+.4f}" in text
    assert "insufficient data: slice region=<rare & odd>" in text
    assert text.endswith("[Full evaluation report](https://mlflow.example/#/runs/42)")


def test_tags_are_strings_under_the_eval_namespace(result):
    tags = evaluation_tags(result)
    assert all(key.startswith("eval.") and isinstance(value, str) for key, value in tags.items())
    assert tags["eval.verdict"] == "reject"
    assert tags["eval.insufficient_guardrails"] == "slice region=<rare & odd>"
    assert tags["eval.failed_guardrails"] == ""
    assert float(tags["eval.delta"]) == pytest.approx(result.improvement, rel=1e-5)
    assert float(tags["eval.ci_low"]) <= float(tags["eval.delta"]) <= float(tags["eval.ci_high"])


def test_tags_of_an_unevaluable_result_keep_every_key_with_empty_numbers(result):
    unevaluable = evaluate_challenger(
        EvaluationConfig(metric="accuracy", resamples=100),
        labels=np.array([]),
        champion=np.array([]),
        challenger=np.array([]),
    )
    tags = evaluation_tags(unevaluable)
    assert tags.keys() == evaluation_tags(result).keys()
    assert tags["eval.verdict"] == "cannot_evaluate"
    assert tags["eval.delta"] == tags["eval.ci_low"] == tags["eval.p_value"] == ""
