"""A `user_features` table whose relation between features and churn drifts over time."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa

TABLE = "user_features"
START = datetime(2026, 1, 1)
DRIFT_START = datetime(2026, 3, 20)
DRIFT_END = datetime(2026, 4, 20)
PLANS = np.array(["free", "basic", "pro"])
REGIONS = np.array(["eu", "us", "apac"])


def generate_user_features(
    days: int = 180, rows_per_day: int = 120, seed: int = 7, start: datetime = START
) -> pd.DataFrame:
    """Synthetic users who signed up over `days` from `start`; before DRIFT_START churn follows
    support load and low activity, after DRIFT_END it follows order value and region, with a
    linear blend in between."""
    rng = np.random.default_rng(seed)
    n = days * rows_per_day
    offsets = np.sort(rng.uniform(0, days * 86400, n))
    created_at = pd.to_datetime(start) + pd.to_timedelta(offsets, unit="s")
    sessions = rng.poisson(6, n).astype(float)
    tenure = rng.uniform(0, 1000, n)
    order_value = rng.lognormal(3.5, 0.6, n)
    tickets = rng.poisson(0.8, n).astype(float)
    plan = PLANS[rng.choice(3, n, p=[0.5, 0.3, 0.2])]
    region = REGIONS[rng.choice(3, n, p=[0.4, 0.4, 0.2])]

    drift_days = (DRIFT_END - DRIFT_START).total_seconds()
    shift = np.clip((created_at - pd.Timestamp(DRIFT_START)).total_seconds() / drift_days, 0, 1)
    before = (
        0.9 * tickets
        - 0.25 * sessions
        + np.select([plan == "free", plan == "pro"], [0.7, -0.6], 0.0)
    )
    after = (
        0.04 * (order_value - 35)
        + np.select([region == "apac", region == "eu"], [1.6, -0.5], 0.0)
        - 0.001 * tenure
    )
    logit = (1 - shift) * before + shift * after
    churn = rng.uniform(size=n) < 1 / (1 + np.exp(-logit))

    frame = pd.DataFrame(
        {
            "created_at": created_at,
            "sessions_7d": sessions,
            "days_since_signup": tenure.round(1),
            "avg_order_value": order_value.round(2),
            "support_tickets": tickets,
            "plan": plan,
            "region": region,
            "target": churn.astype(int),
        }
    )
    for column in ("sessions_7d", "avg_order_value", "region"):
        frame.loc[rng.uniform(size=n) < 0.02, column] = None
    return frame


def write_source(url: str, frame: pd.DataFrame, table: str = TABLE) -> int:
    """Replace the table at `url` with `frame`; returns the row count."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            frame.to_sql(table, connection, if_exists="replace", index=False, chunksize=5000)
    finally:
        engine.dispose()
    return len(frame)


def as_of_for_window(window: int) -> str:
    """The `as_of` date of demo window 1 (before the drift), 2 (after it) or 3 (a week after 2,
    same regime: a challenger no better than the champion)."""
    return {1: "2026-03-15", 2: "2026-06-15", 3: "2026-06-22"}[window]


def live_requests(rows: int = 5000, seed: int = 23) -> tuple[pd.DataFrame, np.ndarray]:
    """Users of the current regime (after the drift), as the gateway receives them: the feature
    columns, and their true churn outcome as the labels that arrive later."""
    frame = generate_user_features(seed=seed)
    current = frame[frame["created_at"] >= DRIFT_END].head(rows)
    return current.drop(columns=["created_at", "target"]), current["target"].to_numpy()


def with_inverted_target(frame: pd.DataFrame, since: datetime) -> pd.DataFrame:
    """A copy whose rows created at or after `since` have `target` inverted: an upstream
    labeling bug that a training window and its holdout share, so offline evaluation cannot see it."""
    broken = frame.copy()
    affected = broken["created_at"] >= since
    broken.loc[affected, "target"] = 1 - broken.loc[affected, "target"]
    return broken
