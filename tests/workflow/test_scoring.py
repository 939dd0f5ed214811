"""Scoring per task of models that are only MLflow pyfunc models (registered from elsewhere, no
scikit-learn flavor): what their `predict` returns is read as the task's answer, or refused."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from workflow.scoring import ScoringError, class_labels, predictions, scored

ROWS = pd.DataFrame({"x": [0.1, 0.4, 0.9]})


class Answers(mlflow.pyfunc.PythonModel):
    """A pyfunc model answering fixed output, as a notebook's custom model might."""

    def __init__(self, output) -> None:
        self.output = output

    def predict(self, context, model_input: pd.DataFrame, params=None) -> object:
        return self.output


def pyfunc(tmp_path: Path, output) -> mlflow.pyfunc.PyFuncModel:
    """Save `output`'s model as a pyfunc-only MLflow model and load it back."""
    path = tmp_path / "model"
    # Declared requirements: inferring them would start a Python process per model.
    mlflow.pyfunc.save_model(path, python_model=Answers(output), pip_requirements=["mlflow"])
    return mlflow.pyfunc.load_model(str(path))


def test_a_two_column_binary_output_gives_the_second_column(tmp_path: Path) -> None:
    model = pyfunc(tmp_path, np.array([[0.8, 0.2], [0.3, 0.7], [0.5, 0.5]]))
    assert predictions(model, ROWS, "binary").tolist() == [0.2, 0.7, 0.5]


def test_a_one_dimensional_binary_output_in_the_unit_interval_is_the_probability(
    tmp_path: Path,
) -> None:
    model = pyfunc(tmp_path, pd.Series([0.1, 0.6, 0.95]))
    assert predictions(model, ROWS, "binary").tolist() == [0.1, 0.6, 0.95]


def test_a_binary_output_outside_the_unit_interval_is_refused(tmp_path: Path) -> None:
    model = pyfunc(tmp_path, np.array([-2.0, 0.5, 3.0]))
    with pytest.raises(ScoringError, match=r"in \[0, 1\]; got values in \[-2, 3\]"):
        predictions(model, ROWS, "binary")


def test_a_multiclass_data_frame_output_names_its_classes_by_its_columns(tmp_path: Path) -> None:
    output = pd.DataFrame({"cat": [0.7, 0.1, 0.2], "dog": [0.2, 0.8, 0.3], "eel": [0.1, 0.1, 0.5]})
    answer = scored(pyfunc(tmp_path, output), ROWS, "multiclass")
    assert answer.classes == ("cat", "dog", "eel")
    assert answer.values.shape == (3, 3)
    assert answer.values[:, 2].tolist() == [0.1, 0.1, 0.5]


def test_a_multiclass_array_output_without_names_is_indexed_by_column(tmp_path: Path) -> None:
    output = np.array([[0.5, 0.5], [0.9, 0.1], [0.0, 1.0]])
    assert scored(pyfunc(tmp_path, output), ROWS, "multiclass").classes == (0, 1)


def test_multiclass_rows_that_do_not_sum_to_one_are_refused(tmp_path: Path) -> None:
    model = pyfunc(tmp_path, np.array([[0.5, 0.9], [0.9, 0.1], [0.0, 1.0]]))
    with pytest.raises(ScoringError, match="1 row\\(s\\) do not"):
        predictions(model, ROWS, "multiclass")


def test_a_one_column_multiclass_output_is_refused(tmp_path: Path) -> None:
    model = pyfunc(tmp_path, np.array([0.2, 0.5, 0.9]))
    with pytest.raises(ScoringError, match="one probability column per class, got shape"):
        predictions(model, ROWS, "multiclass")


def test_a_regression_output_is_the_value_whether_column_or_vector(tmp_path: Path) -> None:
    column = pyfunc(tmp_path / "a", pd.DataFrame({"value": [3.5, -1.0, 12.0]}))
    assert predictions(column, ROWS, "regression").tolist() == [3.5, -1.0, 12.0]
    vector = pyfunc(tmp_path / "b", [3, 4, 5])
    assert predictions(vector, ROWS, "regression").dtype == np.float64


def test_a_two_column_regression_output_is_refused(tmp_path: Path) -> None:
    model = pyfunc(tmp_path, np.ones((3, 2)))
    with pytest.raises(ScoringError, match=r"one value per row, got \(3, 2\)"):
        predictions(model, ROWS, "regression")


def test_a_nan_answer_is_refused_for_every_task(tmp_path: Path) -> None:
    model = pyfunc(tmp_path, np.array([0.2, np.nan, 0.4]))
    for task in ("binary", "regression"):
        with pytest.raises(ScoringError, match="answered NaN for 1 value"):
            predictions(model, ROWS, task)


def test_an_answer_per_row_is_required(tmp_path: Path) -> None:
    model = pyfunc(tmp_path, np.array([0.2, 0.4]))
    with pytest.raises(ScoringError, match="2 answers for 3 rows"):
        predictions(model, ROWS, "binary")


def test_text_answers_are_refused(tmp_path: Path) -> None:
    model = pyfunc(tmp_path, ["yes", "no", "yes"])
    with pytest.raises(ScoringError, match="answers numbers"):
        predictions(model, ROWS, "regression")


def test_a_scikit_learn_classifier_is_scored_by_its_probabilities() -> None:
    from sklearn.linear_model import LogisticRegression

    labels = ["b", "a", "c", "a", "b", "c"]
    model = LogisticRegression().fit(pd.DataFrame({"x": np.arange(6.0)}), labels)
    answer = scored(model, pd.DataFrame({"x": [0.0, 5.0]}), "multiclass")
    assert answer.classes == ("a", "b", "c") == tuple(class_labels(model))
    assert np.allclose(answer.values.sum(axis=1), 1)
