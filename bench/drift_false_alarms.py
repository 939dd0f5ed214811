"""False alarms, power and speed of the model-level drift decision (promotion.drift) against the
"any feature has PSI > 0.25" rule and Evidently's DataDriftPreset with its defaults.

Data: 10 features, 6 numeric (normal, lognormal, Poisson, uniform, exponential, a bimodal mixture)
and 4 categorical (3 to 6 categories, uneven shares). The reference is one sample of 10,000 rows
(a training window's worth); its profile is computed once, as training stores it. Windows of
100 … 1,000,000 rows are drawn from the same distribution (no drift: every alarm is false), with a
0.2-standard-deviation mean shift in one numeric feature, or with a 10-point share moved between two
categories of one categorical feature. Every method sees the same windows.

- ours: Holm-corrected binned KS / chi-square tests at family-wise alpha 0.05 AND PSI ≥ 0.02 (the
  policy's defaults);
- PSI > 0.25: any feature's PSI above 0.25, on the reference's 10 quantile bins (categories for
  categorical features), computed from the same profile;
- Evidently 0.7 `DataDriftPreset()` defaults: per-column tests chosen by reference size (over 1,000
  rows: normed Wasserstein and Jensen–Shannon distances at 0.1), dataset drift when at least half
  the columns drift. Evidently costs about 4 s a call here whatever the size, so it runs on the first
  EVIDENTLY_REPS windows (2 to 10 by size) of the no-drift cells and of the shifts at 1,000 rows only (benchmark-only dependency: `pip install evidently`;
  Evidently 0.7.23 still imports a helper pandas 3 removed, restored below for the benchmark).

Speed: one window of 1,000,000 rows × 20 features (the 10 above twice), ours against the stored
profile, Evidently against the 100,000 reference rows the profile was computed from.

Run: .venv/bin/python bench/drift_false_alarms.py
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np
import pandas as pd

from promotion.drift import (
    CategoricalProfile,
    DriftRule,
    NumericProfile,
    ReferenceProfile,
    build_profile,
    detect_drift,
    psi,
)

SIZES = (100, 1_000, 10_000, 100_000, 1_000_000)
REPS = {100: 400, 1_000: 400, 10_000: 200, 100_000: 40, 1_000_000: 8}
POWER_REPS = {100: 200, 1_000: 200, 10_000: 100, 100_000: 20, 1_000_000: 4}
# Evidently's windows per no-drift cell (and per shift at 1,000 rows, the cell RESULT reads).
EVIDENTLY_REPS = {100: 10, 1_000: 10, 10_000: 3, 100_000: 3, 1_000_000: 2}
REFERENCE_ROWS = 10_000
RULE = DriftRule(alpha=0.05, min_psi=0.02, min_rows=1)
NUMERIC = ["normal", "lognormal", "poisson", "uniform", "exponential", "bimodal"]
CATEGORIES = {
    "plan": (["free", "basic", "pro"], [0.5, 0.3, 0.2]),
    "region": (["eu", "us", "apac", "latam"], [0.4, 0.3, 0.2, 0.1]),
    "device": (["ios", "android", "web"], [0.45, 0.35, 0.2]),
    "channel": (
        ["ads", "organic", "referral", "email", "social", "partner"],
        [0.3, 0.25, 0.15, 0.12, 0.1, 0.08],
    ),
}
SHIFTED_PLAN = [0.4, 0.4, 0.2]  # 10 points from free to basic


def sample(rng: np.random.Generator, rows: int, scenario: str = "none") -> dict[str, np.ndarray]:
    """One window of the 10 features; `scenario` shifts one of them."""
    shift = 0.2 if scenario == "mean_shift" else 0.0  # the normal feature's sd is 1
    bimodal = np.where(rng.random(rows) < 0.3, rng.normal(-2, 0.5, rows), rng.normal(1, 1, rows))
    columns = {
        "normal": rng.normal(shift, 1, rows),
        "lognormal": rng.lognormal(3, 0.6, rows),
        "poisson": rng.poisson(2.0, rows).astype(float),
        "uniform": rng.uniform(0, 100, rows),
        "exponential": rng.exponential(5, rows),
        "bimodal": bimodal,
    }
    for name, (values, shares) in CATEGORIES.items():
        shares = SHIFTED_PLAN if name == "plan" and scenario == "share_shift" else shares
        columns[name] = np.asarray(values)[rng.choice(len(values), rows, p=shares)]
    return columns


def psi_rule(profile: ReferenceProfile, window: dict[str, np.ndarray], cut: float = 0.25) -> bool:
    """Any feature's PSI above `cut`, on 10 reference-quantile bins or the categories."""
    for name, reference in profile.features.items():
        values = window[name]
        if isinstance(reference, NumericProfile):
            counts = np.asarray(reference.counts, dtype=float)
            edges = np.asarray(reference.edges)
            fine = np.bincount(
                np.searchsorted(edges, values, side="right"), minlength=edges.size + 1
            )
            share = np.cumsum(counts) / counts.sum()
            decile = np.minimum((share * 10 - 1e-9).astype(int), 9)  # bin → reference decile
            ref, cur = np.bincount(decile, counts, 10), np.bincount(decile, fine, 10)
        else:
            assert isinstance(reference, CategoricalProfile)
            names = list(reference.counts)
            ref = np.asarray([reference.counts[n] for n in names], dtype=float)
            found, counts = np.unique(values, return_counts=True)
            lookup = dict(zip(found.tolist(), counts.tolist(), strict=True))
            cur = np.asarray([lookup.get(n, 0) for n in names], dtype=float)
        if psi(ref[ref > 0], cur[ref > 0]) > cut:
            return True
    return False


def evidently_drift(reference: pd.DataFrame, window: pd.DataFrame) -> bool:
    """Evidently's dataset drift (share of drifted columns ≥ 0.5) with DataDriftPreset's defaults."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=list(CATEGORIES))
    result = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(window, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    counted = next(
        m for m in result.dict()["metrics"] if m["metric_name"].startswith("DriftedColumnsCount")
    )
    return counted["value"]["share"] >= 0.5


def load_evidently() -> bool:
    try:
        import pandas.core.dtypes.common as common

        if not hasattr(common, "infer_dtype_from_object"):
            common.infer_dtype_from_object = lambda dtype: np.dtype(dtype).type
        import evidently  # noqa: F401
    except ImportError as error:
        print(f"Evidently is not installed ({error}); comparing with PSI only", file=sys.stderr)
        return False
    warnings.filterwarnings("ignore")
    return True


def rate(hits: list[bool]) -> float | None:
    return sum(hits) / len(hits) if hits else None


def shown(value: float | None) -> str:
    return "    n/a" if value is None else f"{value:7.3f}"


def main() -> None:
    rng = np.random.default_rng(2026)
    with_evidently = load_evidently()
    reference_columns = sample(rng, REFERENCE_ROWS)
    reference_frame = pd.DataFrame(reference_columns)
    profile = build_profile(reference_columns, NUMERIC, list(CATEGORIES))
    results: dict[str, dict[int, dict[str, float]]] = {}
    for scenario, reps in (("none", REPS), ("mean_shift", POWER_REPS), ("share_shift", POWER_REPS)):
        results[scenario] = {}
        for size in SIZES:
            ours, rule, evid = [], [], []
            for rep in range(reps[size]):
                window = sample(rng, size, scenario)
                ours.append(detect_drift(profile, window, RULE).fired)
                rule.append(psi_rule(profile, window))
                wanted = scenario == "none" or size == 1_000
                if with_evidently and wanted and rep < EVIDENTLY_REPS[size]:
                    evid.append(evidently_drift(reference_frame, pd.DataFrame(window)))
            results[scenario][size] = {
                "ours": rate(ours),
                "psi": rate(rule),
                "evidently": rate(evid),
                "reps": reps[size],
                "evidently_reps": len(evid),
            }
            print(
                f"  {scenario} {size:,d} rows: ours {shown(rate(ours))} PSI {shown(rate(rule))} "
                f"Evidently {shown(rate(evid))}",
                file=sys.stderr,
                flush=True,
            )

    print("\nAlarm rate per window (10 features; no drift = false alarms, shifts = power)")
    print(
        f"{'scenario':12s} {'rows':>10s} {'ours':>7s} {'PSI>0.25':>9s} {'Evidently':>10s} {'windows':>8s}"
    )
    for scenario, by_size in results.items():
        for size, row in by_size.items():
            print(
                f"{scenario:12s} {size:>10,d} {shown(row['ours'])} {shown(row['psi']):>9s} "
                f"{shown(row['evidently']):>10s} {row['reps']:>5d}/{row['evidently_reps']}"
            )

    big_rng = np.random.default_rng(7)
    speed_reference = {**sample(big_rng, 100_000)}
    speed_reference |= {f"{k}_2": v for k, v in sample(big_rng, 100_000).items()}
    numeric = [*NUMERIC, *(f"{n}_2" for n in NUMERIC)]
    categorical = [*CATEGORIES, *(f"{c}_2" for c in CATEGORIES)]
    big_profile = build_profile(speed_reference, numeric, categorical)
    window = {**sample(big_rng, 1_000_000)}
    window |= {f"{k}_2": v for k, v in sample(big_rng, 1_000_000).items()}
    start = time.perf_counter()
    detect_drift(big_profile, window, RULE)
    ours_s = time.perf_counter() - start
    evidently_s = None
    if with_evidently:
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
        current, reference = pd.DataFrame(window), pd.DataFrame(speed_reference)
        start = time.perf_counter()
        Report([DataDriftPreset()]).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
        evidently_s = time.perf_counter() - start
    speedup = None if evidently_s is None else round(evidently_s / ours_s, 1)
    print("\nDrift of 1,000,000 rows × 20 features")
    print(f"{'method':34s} {'seconds':>8s}")
    print(f"{'ours, against the stored profile':34s} {ours_s:8.2f}")
    print(f"{'Evidently, against 100,000 rows':34s} {evidently_s or float('nan'):8.2f}")
    print(f"speed-up: {speedup}×")

    none = results["none"]
    shift = results["mean_shift"][1_000]
    evidently_rates = [row["evidently"] for row in none.values() if row["evidently"] is not None]
    result = {
        "max_false_alarm": max(row["ours"] for row in none.values()),
        "psi_max_false_alarm": max(row["psi"] for row in none.values()),
        "evidently_max_false_alarm": max(evidently_rates) if evidently_rates else None,
        "power_shift_1000": shift["ours"],
        "baseline_power_shift_1000": max(
            r for r in (shift["psi"], shift["evidently"]) if r is not None
        ),
        "power_share_shift_1000": results["share_shift"][1_000]["ours"],
        "speedup_vs_evidently": speedup,
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
