"""The demo's generated source: its regimes, the label bug it injects and the live requests."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from demo.source_data import (
    DRIFT_END,
    generate_user_features,
    live_requests,
    with_inverted_target,
)


def test_inverted_target_flips_exactly_the_rows_from_its_start() -> None:
    frame = generate_user_features(days=120, rows_per_day=20)
    original = frame.copy()
    since = datetime(2026, 3, 1)
    broken = with_inverted_target(frame, since)

    after = frame["created_at"] >= since
    assert after.any() and (~after).any()
    assert (broken.loc[after, "target"] == 1 - frame.loc[after, "target"]).all()
    assert broken.loc[~after].equals(frame.loc[~after])
    assert frame.equals(original)  # the true table is left as it was


def test_users_from_a_later_start_follow_the_current_regime() -> None:
    start = datetime(2026, 9, 1)
    recent = generate_user_features(days=30, rows_per_day=50, start=start, seed=3)
    assert recent["created_at"].min() >= start
    assert recent["created_at"].max() < datetime(2026, 10, 1)
    # After the drift churn follows the region: apac churns far more than eu.
    by_region = recent.groupby("region")["target"].mean()
    assert by_region["apac"] > by_region["eu"] + 0.2


def test_live_requests_carry_features_only_and_their_true_labels() -> None:
    frame, truth = live_requests(rows=500)
    assert len(frame) == len(truth) == 500
    assert "target" not in frame.columns and "created_at" not in frame.columns
    assert set(np.unique(truth)) == {0, 1}
    source = generate_user_features(seed=23)
    current = source[source["created_at"] >= DRIFT_END].head(500)
    assert (current["target"].to_numpy() == truth).all()
