from __future__ import annotations

import numpy as np
import pandas as pd

from policies import load_policy
from policies.loader import POLICIES_DIR
from workflow.validation import window_problems

POLICY = load_policy(POLICIES_DIR / "user_churn.yaml")


def window(rows: int = 600, **overrides: object) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "created_at": pd.date_range("2026-01-01", periods=rows, freq="h"),
            "sessions_7d": rng.poisson(5, rows).astype(float),
            "days_since_signup": rng.uniform(0, 900, rows),
            "avg_order_value": rng.lognormal(3, 0.5, rows),
            "support_tickets": rng.poisson(1, rows).astype(float),
            "plan": rng.choice(["free", "pro"], rows),
            "region": rng.choice(["eu", "us"], rows),
            "target": rng.integers(0, 2, rows),
        }
    )
    for column, value in overrides.items():
        frame[column] = value
    return frame


def test_a_clean_window_passes() -> None:
    assert window_problems(window(), POLICY.source, POLICY.validation) == []


def test_too_few_rows_names_the_threshold() -> None:
    problems = window_problems(window(rows=20), POLICY.source, POLICY.validation)
    assert problems == ["too few rows: 20 < validation.min_rows=500"]


def test_missing_column_is_named() -> None:
    problems = window_problems(window().drop(columns=["plan"]), POLICY.source, POLICY.validation)
    assert problems == ["missing column(s): plan"]


def test_too_many_missing_values_names_column_and_share() -> None:
    frame = window()
    frame.loc[: len(frame) // 2, "avg_order_value"] = None
    problems = window_problems(frame, POLICY.source, POLICY.validation)
    assert len(problems) == 1 and problems[0].startswith("column 'avg_order_value': 50.")


def test_single_class_target_is_refused() -> None:
    problems = window_problems(window(target=1), POLICY.source, POLICY.validation)
    assert problems == ["target 'target': only one class present ([1])"]
