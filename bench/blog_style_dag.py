"""Baseline for bench/dag_parse.py: a training DAG in the style of the common blog example,
with pandas, scikit-learn and MLflow imported at the top of the file."""

from __future__ import annotations

from datetime import datetime

import mlflow
import mlflow.sklearn
import pandas as pd
from airflow.sdk import dag, task
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split


@dag(schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
def blog_style_training():
    @task
    def train() -> str:
        frame = pd.read_csv("data.csv")
        train_x, _, train_y, _ = train_test_split(frame.drop(columns="target"), frame["target"])
        with mlflow.start_run():
            model = RandomForestClassifier().fit(train_x, train_y)
            return mlflow.sklearn.log_model(model, name="model").model_uri

    train()


blog_style_training()
