from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from promotion.evaluation import (
    EvaluationConfig,
    EvaluationResult,
    SliceGuardrail,
    evaluate_challenger,
)
from promotion.report import (
    CALIBRATION_PLOT,
    CONFUSION_PLOT,
    PREDICTED_PLOT,
    RESIDUAL_PLOT,
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


@pytest.fixture
def first_champion(holdout) -> EvaluationResult:
    from promotion.evaluation import CalibrationGuardrail, ModelFacts, evaluate_first_champion

    labels, _, challenger, _ = holdout
    config = EvaluationConfig(
        metric="roc_auc",
        resamples=200,
        slices=(SliceGuardrail("region", "categorical", max_regression=0.01),),
        calibration=CalibrationGuardrail("brier", 0.01),
        max_latency_ms_per_row=2.0,
        max_size_bytes=1_000_000,
    )
    facts = ModelFacts(latency_ms_per_row=0.05, size_bytes=40_000)
    return evaluate_first_champion(
        config, labels=labels, challenger=challenger, challenger_facts=facts
    )


def test_first_champion_report_holds_its_holdout_metrics_and_checked_guardrails(
    first_champion, holdout, tmp_path
):
    labels, _, challenger, _ = holdout
    report = render_report(
        first_champion, labels=labels, champion=None, challenger=challenger, out_dir=tmp_path
    )
    assert {path.name for path in report.plots} == {ROC_PLOT, CALIBRATION_PLOT}
    auc = first_champion.challenger_metrics["roc_auc"]
    assert "<h2>Holdout metrics</h2>" in report.html
    assert f"<tr><td>roc_auc</td><td class='num'>{auc:.4f}</td></tr>" in report.html
    assert "latency: challenger 0.050 ms/row (allowed ≤ 2.000): pass" in report.html
    assert "slice region: skipped, no champion to compare against" in report.html


def test_first_champion_summary_gives_its_score_without_a_comparison(first_champion):
    summary = markdown_summary(first_champion, run_link="#/runs/abc")
    auc = first_champion.challenger_metrics["roc_auc"]
    assert summary.startswith("**Evaluation: promote** (roc_auc, superiority)")
    assert f"- roc_auc: {auc:.4f} on 2,000 holdout rows, no champion to compare against" in summary
    assert "- other holdout metrics: accuracy " in summary
    assert "[Full evaluation report](#/runs/abc)" in summary


# --- per task -------------------------------------------------------------------------------


@pytest.fixture
def multiclass_holdout():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 1500)
    one_hot = np.eye(3)[labels]
    champion = 0.4 * one_hot + 0.6 * rng.dirichlet(np.ones(3), 1500)
    challenger = 0.6 * one_hot + 0.4 * rng.dirichlet(np.ones(3), 1500)
    return labels, champion, challenger


@pytest.fixture
def multiclass_result(multiclass_holdout) -> EvaluationResult:
    labels, champion, challenger = multiclass_holdout
    config = EvaluationConfig(
        metric="macro_f1", task="multiclass", classes=("bronze", "silver", "<gold>"), resamples=200
    )
    return evaluate_challenger(config, labels=labels, champion=champion, challenger=challenger)


def test_multiclass_report_shows_confusion_matrices_and_per_class_scores(
    multiclass_result, multiclass_holdout, tmp_path
):
    labels, champion, challenger = multiclass_holdout
    report = render_report(
        multiclass_result,
        labels=labels,
        champion=champion,
        challenger=challenger,
        out_dir=tmp_path,
    )
    assert [path.name for path in report.plots] == [CONFUSION_PLOT, CALIBRATION_PLOT]
    assert all(path.read_bytes().startswith(PNG_MAGIC) for path in report.plots)
    assert report.html.count('src="data:image/png;base64,') == 2
    assert "<h2>Per class</h2>" in report.html
    gold_recall = sk.recall_score(labels, challenger.argmax(axis=1), average=None)[2]
    assert f"<td class='num'>{gold_recall:.4f}</td>" in report.html
    assert "<td>&lt;gold&gt;</td>" in report.html
    assert "task: multiclass (3 classes: bronze, silver, &lt;gold&gt;)" in report.html
    assert 'class="verdict promote"' in report.html


def test_first_multiclass_champion_report_has_one_column_per_class_score(
    multiclass_holdout, tmp_path
):
    from promotion.evaluation import evaluate_first_champion

    labels, _, challenger = multiclass_holdout
    result = evaluate_first_champion(
        EvaluationConfig(metric="accuracy", task="multiclass", resamples=200),
        labels=labels,
        challenger=challenger,
    )
    report = render_report(
        result, labels=labels, champion=None, challenger=challenger, out_dir=tmp_path
    )
    assert "<th>challenger F1</th>" in report.html
    assert "champion F1" not in report.html
    assert "<td>2</td>" in report.html  # unnamed classes are shown by index


@pytest.fixture
def regression_holdout():
    rng = np.random.default_rng(2)
    labels = 10 + 3 * rng.normal(size=8000)
    champion = labels + rng.normal(size=8000) + 0.5
    challenger = labels + 0.7 * rng.normal(size=8000)
    return labels, champion, challenger


def test_regression_report_shows_predicted_vs_actual_and_residuals(regression_holdout, tmp_path):
    labels, champion, challenger = regression_holdout
    result = evaluate_challenger(
        EvaluationConfig(metric="rmse", task="regression", resamples=200),
        labels=labels,
        champion=champion,
        challenger=challenger,
    )
    report = render_report(
        result, labels=labels, champion=champion, challenger=challenger, out_dir=tmp_path
    )
    assert [path.name for path in report.plots] == [PREDICTED_PLOT, RESIDUAL_PLOT]
    assert all(path.read_bytes().startswith(PNG_MAGIC) for path in report.plots)
    assert "<h2>Residuals (predicted − actual)</h2>" in report.html
    bias = np.mean(champion - labels)
    assert f"<tr><td>mean (bias)</td><td class='num'>{bias:.4g}</td>" in report.html
    assert "paired t-test p" in report.html
    assert "ROC" not in report.html


def test_regression_summary_and_tags_read_like_the_binary_ones(regression_holdout):
    labels, champion, challenger = regression_holdout
    result = evaluate_challenger(
        EvaluationConfig(metric="mae", task="regression", resamples=200),
        labels=labels,
        champion=champion,
        challenger=challenger,
    )
    summary = markdown_summary(result)
    assert summary.startswith("**Evaluation: promote** (mae, superiority)")
    assert "paired t-test p" in summary
    assert evaluation_tags(result)["eval.test"] == "paired_t"


def test_unevaluable_regression_result_renders_without_plots(tmp_path):
    result = evaluate_challenger(
        EvaluationConfig(metric="rmse", task="regression", resamples=100),
        labels=np.array([1.0, np.inf]),
        champion=np.array([1.0, 2.0]),
        challenger=np.array([1.0, 2.0]),
    )
    report = render_report(
        result,
        labels=np.array([1.0, np.inf]),
        champion=np.array([1.0, 2.0]),
        challenger=np.array([1.0, 2.0]),
        out_dir=tmp_path / "plots",
    )
    assert report.plots == ()
    assert "1 labels are infinite" in report.html
