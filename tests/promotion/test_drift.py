"""Drift of recent rows against a stored reference profile: per-feature numbers and the decision."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promotion.drift import (
    OTHER,
    DriftRule,
    ReferenceProfile,
    build_profile,
    chi2_homogeneity,
    detect_drift,
    holm_rejections,
    ks_from_bins,
    psi_band,
)

RULE = DriftRule(alpha=0.05, min_psi=0.02, min_rows=50)


def reference(rows: int = 5000, seed: int = 0) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    return build_profile(
        {
            "amount": rng.normal(size=rows),
            "tickets": rng.poisson(1.0, size=rows),
            "plan": rng.choice(["free", "pro", "team"], p=[0.5, 0.3, 0.2], size=rows),
        },
        numeric=["amount", "tickets"],
        categorical=["plan"],
    )


def window(rows: int, seed: int, shift: float = 0.0, plan_p=(0.5, 0.3, 0.2)) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "amount": rng.normal(size=rows) + shift,
        "tickets": rng.poisson(1.0, size=rows),
        "plan": rng.choice(["free", "pro", "team"], p=list(plan_p), size=rows),
    }


def test_a_profile_survives_its_json_form() -> None:
    profile = reference()
    assert ReferenceProfile.from_dict(json.loads(json.dumps(profile.to_dict()))) == profile


def test_the_same_distribution_does_not_drift() -> None:
    report = detect_drift(reference(), window(2000, seed=1), RULE)
    assert not report.fired
    assert report.reason.startswith("no drift in 3 features")
    assert {f.psi_band for f in report.features.values()} == {"none"}


def test_a_shifted_numeric_feature_drifts_and_only_it() -> None:
    report = detect_drift(reference(), window(2000, seed=1, shift=0.5), RULE)
    assert report.fired
    assert [n for n, f in report.features.items() if f.drifted] == ["amount"]
    assert report.features["amount"].test == "ks"
    assert "amount (PSI" in report.reason


def test_a_category_share_shift_drifts_on_the_chi_square_test() -> None:
    report = detect_drift(reference(), window(2000, seed=1, plan_p=(0.4, 0.4, 0.2)), RULE)
    plan = report.features["plan"]
    assert (plan.test, plan.drifted) == ("chi2", True)


def test_a_significant_shift_below_the_psi_floor_is_not_drift() -> None:
    big = DriftRule(alpha=0.05, min_psi=0.02, min_rows=50)
    report = detect_drift(reference(rows=200_000), window(200_000, seed=1, shift=0.05), big)
    amount = report.features["amount"]
    assert amount.p_value < 1e-6 and amount.psi < 0.02
    assert not report.fired
    assert "significant but PSI below 0.02: amount" in report.reason


def test_unseen_categories_are_counted_and_pooled() -> None:
    recent = window(1000, seed=2)
    recent["plan"] = np.where(np.arange(1000) < 300, "enterprise", recent["plan"])
    plan = detect_drift(reference(), recent, RULE).features["plan"]
    assert plan.drifted
    assert plan.note == "300 of 1000 values unseen in training"


def test_a_window_smaller_than_min_rows_is_not_checked() -> None:
    report = detect_drift(reference(), window(49, seed=3), RULE)
    assert (report.fired, report.features) == (False, {})
    assert report.reason == "only 49 recent rows, fewer than min_rows 50: not checked"


def test_an_empty_window_is_not_checked() -> None:
    empty = {"amount": np.array([]), "tickets": np.array([]), "plan": np.array([])}
    assert not detect_drift(reference(), empty, RULE).fired


def test_a_constant_reference_column_flags_a_new_value_but_not_itself() -> None:
    profile = build_profile({"flag": np.ones(1000)}, numeric=["flag"], categorical=[])
    assert not detect_drift(profile, {"flag": np.ones(500)}, RULE).fired
    assert detect_drift(profile, {"flag": np.r_[np.ones(250), np.zeros(250)]}, RULE).fired


def test_missing_values_are_left_out_of_numeric_tests_and_a_category_for_categorical() -> None:
    profile = build_profile(
        {"x": np.r_[np.arange(100.0), [np.nan] * 10], "c": ["a"] * 100 + [None] * 10},
        numeric=["x"],
        categorical=["c"],
    )
    assert profile.features["x"].missing == 10
    assert profile.features["c"].counts == {"a": 100, "(missing)": 10}


def test_features_missing_from_profile_or_window_are_reported_not_tested() -> None:
    recent = window(500, seed=4)
    del recent["tickets"]
    report = detect_drift(reference(), recent, RULE, features=["amount", "tickets", "age"])
    assert report.features["tickets"].note == "not in the recent rows"
    assert report.features["age"].note == "not in the reference profile"
    assert report.reason.startswith("no drift in 1 features")


def test_rare_reference_categories_beyond_the_limit_pool_as_other() -> None:
    values = [f"c{i}" for i in range(150)] * 10
    counts = build_profile({"c": values}, numeric=[], categorical=["c"]).features["c"].counts
    assert len(counts) == 101 and counts[OTHER] == 500


def test_psi_bands_are_the_ones_users_expect() -> None:
    assert [psi_band(v) for v in (0.05, 0.1, 0.2, 0.25, 0.9)] == [
        "none",
        "moderate",
        "moderate",
        "significant",
        "significant",
    ]


@settings(max_examples=60, deadline=None)
@given(
    p_values=st.dictionaries(
        st.text(min_size=1, max_size=4), st.floats(0, 1, allow_nan=False), max_size=12
    ),
    alpha=st.floats(0.001, 0.2),
)
def test_holm_rejects_at_least_bonferroni_and_only_below_alpha(p_values, alpha) -> None:
    rejected = holm_rejections(p_values, alpha)
    bonferroni = {n for n, p in p_values.items() if p <= alpha / max(1, len(p_values))}
    assert bonferroni <= rejected
    assert all(p_values[n] <= alpha for n in rejected)
    # Step-down: a rejected p-value implies every smaller one is rejected too.
    assert all(n in rejected for n, p in p_values.items() for r in rejected if p < p_values[r])


counts = st.lists(st.integers(0, 500), min_size=1, max_size=20)


@settings(max_examples=80, deadline=None)
@given(reference=counts, current=counts)
def test_tests_on_counts_give_valid_p_values_and_identical_counts_never_drift(
    reference, current
) -> None:
    size = min(len(reference), len(current))
    ref = np.asarray(reference[:size], dtype=float) + np.r_[1, np.zeros(size - 1)]
    cur = np.asarray(current[:size], dtype=float) + np.r_[1, np.zeros(size - 1)]
    for test in (ks_from_bins, chi2_homogeneity):
        statistic, p_value = test(ref, cur)
        assert statistic >= 0 and 0 <= p_value <= 1
        assert test(ref, ref)[1] == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(0, 400),
    category=st.sampled_from(["free", "pro", "new", None]),
)
def test_any_window_gives_a_report_with_valid_numbers(seed, rows, category) -> None:
    recent = window(rows, seed=seed)
    recent["plan"] = np.where(np.arange(rows) % 7 == 0, category, recent["plan"])
    report = detect_drift(reference(rows=500), recent, DriftRule(min_rows=1))
    for feature in report.features.values():
        assert feature.p_value is None or 0 <= feature.p_value <= 1
        assert feature.psi is None or feature.psi >= 0
        assert not feature.drifted or feature.psi >= 0.02
    assert report.fired == any(f.drifted for f in report.features.values())


def test_false_alarms_stay_within_alpha_on_small_windows_across_ten_features() -> None:
    rng = np.random.default_rng(7)
    names = [f"x{i}" for i in range(10)]
    profile = build_profile({n: rng.normal(size=5000) for n in names}, names, [])
    alarms = sum(
        detect_drift(profile, {n: rng.normal(size=100) for n in names}, RULE).fired
        for _ in range(300)
    )
    # 300 windows at a family-wise 5%: more than 27 alarms would happen under 1% of the time.
    assert alarms <= 27
