"""Input drift of recent rows against a version's stored reference profile.

The profile keeps, per feature, fine quantile bins with their counts (numeric) or category counts
(categorical), so a check never needs the training rows again. Per feature the check reports the
PSI users know (bands 0.1 / 0.25) and a two-sample test that is valid against the profile: a
Kolmogorov–Smirnov test on the profile's bin edges for numeric features, a chi-square test of
homogeneity for categorical ones.

The model-level decision is "some feature drifted", where a feature drifted when its test rejects
under Holm's correction across the features at `alpha` AND its PSI reaches `min_psi`. The test
bounds the false alarms of the whole check by `alpha` whatever the window size and the number of
features (a fixed PSI cut does not: its noise grows as windows shrink); the PSI floor keeps a very
large window from flagging a shift too small to matter, which a test alone would.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import stats

# Edges at the 1st … 99th percentiles: the KS statistic is read at these points (a test on a
# subset of points has a statistic no larger than the full one, so its p-value stays valid).
NUMERIC_QUANTILES = 99
# PSI groups the fine bins into deciles of the reference, the binning users expect from PSI.
PSI_BINS = 10
# Shares below this are raised to it before the logarithm of PSI (the usual smoothing).
PSI_EPSILON = 1e-4
PSI_BANDS = (0.1, 0.25)
MAX_CATEGORIES = 100
MISSING = "(missing)"
OTHER = "(other)"
# A category whose expected count in the window is below this joins one pooled cell, so the
# chi-square approximation holds on small windows (decided from the reference share and the
# window size only, never from the observed counts).
MIN_EXPECTED = 5.0


@dataclass(frozen=True)
class NumericProfile:
    """A numeric feature's reference: distinct inner bin edges, the rows in each bin, and missing.

    Bin i holds values in [edges[i-1], edges[i]), the first from -inf and the last to +inf.
    """

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    missing: int = 0
    kind: Literal["numeric"] = "numeric"

    def __post_init__(self) -> None:
        if len(self.counts) != len(self.edges) + 1:
            raise ValueError("a numeric profile needs one more count than edges")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError("numeric profile edges must be strictly increasing")


@dataclass(frozen=True)
class CategoricalProfile:
    """A categorical feature's reference: rows per category (rare ones beyond the first
    MAX_CATEGORIES pooled as `(other)`); missing values count as the category `(missing)`."""

    counts: dict[str, int]
    kind: Literal["categorical"] = "categorical"


FeatureProfile = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class ReferenceProfile:
    """Every feature's reference profile and the rows it was computed from."""

    rows: int
    features: dict[str, FeatureProfile]

    def to_dict(self) -> dict:
        """Plain JSON-able data (the MLflow artifact's content)."""
        return {"rows": self.rows, "features": {n: asdict(p) for n, p in self.features.items()}}

    @classmethod
    def from_dict(cls, data: Mapping) -> ReferenceProfile:
        """The profile written by `to_dict`; ValueError when it is not one."""
        features: dict[str, FeatureProfile] = {}
        for name, item in data["features"].items():
            if item["kind"] == "numeric":
                features[name] = NumericProfile(
                    edges=tuple(float(e) for e in item["edges"]),
                    counts=tuple(int(c) for c in item["counts"]),
                    missing=int(item["missing"]),
                )
            elif item["kind"] == "categorical":
                counts = {str(k): int(v) for k, v in item["counts"].items()}
                features[name] = CategoricalProfile(counts=counts)
            else:
                raise ValueError(f"feature {name!r}: unknown profile kind {item['kind']!r}")
        return cls(rows=int(data["rows"]), features=features)


@dataclass(frozen=True)
class DriftRule:
    """The model-level decision's settings (from the policy's `triggers.drift`)."""

    alpha: float = 0.05
    min_psi: float = 0.02
    min_rows: int = 500

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha: must be in (0, 1), got {self.alpha}")
        if self.min_psi < 0 or self.min_rows < 1:
            raise ValueError("min_psi must be ≥ 0 and min_rows ≥ 1")


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift numbers; `drifted` is the model-level decision's verdict on it."""

    kind: str
    psi: float | None
    psi_band: str | None
    test: str
    statistic: float | None
    p_value: float | None
    drifted: bool
    rows: int
    note: str = ""


@dataclass(frozen=True)
class DriftReport:
    """Whether the window drifted, why, and each feature's numbers."""

    fired: bool
    reason: str
    rows: int
    features: dict[str, FeatureDrift]

    def as_signal(self, source: str) -> dict:
        """The `drift` entry of a monitor check's signals."""
        return {
            "fired": self.fired,
            "reason": self.reason,
            "rows": self.rows,
            "source": source,
            "features": {name: asdict(f) for name, f in self.features.items()},
        }


def _numeric(values: Sequence | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    return array[np.isfinite(array)]


def _category_counts(values: Sequence | np.ndarray) -> Counter[str]:
    counts: Counter[str] = Counter()
    for value, count in Counter(np.asarray(values, dtype=object).tolist()).items():
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        counts[MISSING if missing else str(value)] += count
    return counts


def _window_counts(values: Sequence | np.ndarray, names: list[str]) -> tuple[np.ndarray, int]:
    """Rows of each named category in a window, and the rows of any other (unseen) value."""
    array = np.asarray(values)
    if array.dtype.kind in "US":
        # Fixed-width strings hold no missing values; comparing per category beats hashing.
        counts = np.asarray([np.count_nonzero(array == name) for name in names], dtype=int)
        return counts, int(array.size - counts.sum())
    observed = _category_counts(array)
    counts = np.asarray([observed.get(name, 0) for name in names], dtype=int)
    return counts, int(sum(observed.values()) - counts.sum())


def numeric_profile(values: Sequence | np.ndarray) -> NumericProfile:
    """The reference profile of a numeric feature's training values."""
    raw = np.asarray(values, dtype=np.float64)
    finite = raw[np.isfinite(raw)]
    if finite.size == 0:
        return NumericProfile(edges=(), counts=(0,), missing=int(raw.size))
    probabilities = np.arange(1, NUMERIC_QUANTILES + 1) / (NUMERIC_QUANTILES + 1)
    edges = np.unique(np.quantile(finite, probabilities))
    counts = np.bincount(np.searchsorted(edges, finite, side="right"), minlength=edges.size + 1)
    return NumericProfile(
        edges=tuple(float(e) for e in edges),
        counts=tuple(int(c) for c in counts),
        missing=int(raw.size - finite.size),
    )


def categorical_profile(values: Sequence | np.ndarray) -> CategoricalProfile:
    """The reference profile of a categorical feature's training values."""
    counts = _category_counts(values)
    kept = dict(counts.most_common(MAX_CATEGORIES))
    pooled = sum(counts.values()) - sum(kept.values())
    if pooled:
        kept[OTHER] = kept.get(OTHER, 0) + pooled
    return CategoricalProfile(counts=kept)


def build_profile(
    columns: Mapping[str, Sequence | np.ndarray],
    numeric: Sequence[str],
    categorical: Sequence[str],
) -> ReferenceProfile:
    """The reference profile of a training window, one entry per listed feature."""
    lengths = {len(columns[name]) for name in [*numeric, *categorical]}
    if len(lengths) > 1:
        raise ValueError(f"feature columns differ in length: {sorted(lengths)}")
    features: dict[str, FeatureProfile] = {n: numeric_profile(columns[n]) for n in numeric}
    features |= {n: categorical_profile(columns[n]) for n in categorical}
    return ReferenceProfile(rows=lengths.pop() if lengths else 0, features=features)


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins (shares smoothed)."""
    ref = np.maximum(reference / reference.sum(), PSI_EPSILON)
    cur = np.maximum(current / current.sum(), PSI_EPSILON)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def psi_band(value: float) -> str:
    """The band users read PSI in: below 0.1 none, to 0.25 moderate, above significant."""
    if value < PSI_BANDS[0]:
        return "none"
    return "moderate" if value < PSI_BANDS[1] else "significant"


def _decile_groups(reference: np.ndarray) -> np.ndarray:
    """The PSI group of each fine bin: bins whose reference mass starts in the same decile. A bin
    the reference never reached (e.g. below a constant column's value) is a group of its own, so
    mass moving there shows."""
    start = (np.cumsum(reference) - reference) / reference.sum()
    groups = np.minimum((start * PSI_BINS + 1e-9).astype(int), PSI_BINS - 1)
    empty = reference == 0
    groups[empty] = PSI_BINS + np.arange(np.count_nonzero(empty))
    return groups


def ks_from_bins(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample KS statistic read at the bin edges, and its p-value (two-sided)."""
    n, m = reference.sum(), current.sum()
    gap = np.abs(np.cumsum(reference)[:-1] / n - np.cumsum(current)[:-1] / m)
    statistic = float(gap.max()) if gap.size else 0.0
    effective = max(1, round(n * m / (n + m)))
    return statistic, float(stats.kstwo.sf(statistic, effective))


def chi2_homogeneity(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Chi-square test that two count vectors come from one distribution; (statistic, p)."""
    keep = (reference + current) > 0
    table = np.vstack([reference[keep], current[keep]]).astype(np.float64)
    if table.shape[1] < 2:
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return statistic, float(stats.chi2.sf(statistic, table.shape[1] - 1))


def _untested(kind: str, test: str, rows: int, note: str) -> FeatureDrift:
    return FeatureDrift(kind, None, None, test, None, None, False, rows, note)


def _numeric_drift(profile: NumericProfile, values: Sequence | np.ndarray) -> FeatureDrift:
    finite = _numeric(values)
    reference = np.asarray(profile.counts, dtype=np.float64)
    if finite.size == 0 or reference.sum() == 0:
        note = "no values in the window" if finite.size == 0 else "no values in the reference"
        return _untested("numeric", "ks", int(finite.size), note)
    edges = np.asarray(profile.edges)
    current = np.bincount(
        np.searchsorted(edges, finite, side="right"), minlength=edges.size + 1
    ).astype(np.float64)
    groups = _decile_groups(reference)
    value = psi(np.bincount(groups, reference), np.bincount(groups, current))
    statistic, p_value = ks_from_bins(reference, current)
    return FeatureDrift(
        "numeric", value, psi_band(value), "ks", statistic, p_value, False, int(finite.size)
    )


def _categorical_drift(profile: CategoricalProfile, values: Sequence | np.ndarray) -> FeatureDrift:
    known = [c for c in profile.counts if c != OTHER]
    counts, unseen = _window_counts(values, [*known, OTHER])
    m = int(counts.sum()) + unseen
    total = sum(profile.counts.values())
    if m == 0 or total == 0:
        note = "no values in the window" if m == 0 else "no values in the reference"
        return _untested("categorical", "chi2", m, note)
    reference = np.asarray([profile.counts[c] for c in known] + [profile.counts.get(OTHER, 0)])
    current = counts + np.append(np.zeros(len(known), dtype=int), unseen)
    value = psi(reference.astype(np.float64), current.astype(np.float64))
    # Pool the categories too rare to test in a window this size (the last cell is already pooled).
    rare = np.append(reference[:-1] / total * m < MIN_EXPECTED, True)
    pooled_ref = np.append(reference[~rare], reference[rare].sum()).astype(np.float64)
    pooled_cur = np.append(current[~rare], current[rare].sum()).astype(np.float64)
    statistic, p_value = chi2_homogeneity(pooled_ref, pooled_cur)
    note = f"{unseen} of {m} values unseen in training" if unseen else ""
    return FeatureDrift(
        "categorical", value, psi_band(value), "chi2", statistic, p_value, False, m, note
    )


def holm_rejections(p_values: Mapping[str, float], alpha: float) -> set[str]:
    """The hypotheses Holm's step-down procedure rejects at family-wise level `alpha`."""
    ordered = sorted(p_values.items(), key=lambda item: item[1])
    rejected: set[str] = set()
    for rank, (name, p_value) in enumerate(ordered):
        if p_value > alpha / (len(ordered) - rank):
            break
        rejected.add(name)
    return rejected


def detect_drift(
    profile: ReferenceProfile,
    window: Mapping[str, Sequence | np.ndarray],
    rule: DriftRule,
    features: Sequence[str] | None = None,
) -> DriftReport:
    """Compare a window of recent rows with the reference profile, feature by feature, and decide
    whether the inputs drifted (see the module docstring for the rule)."""
    names = list(profile.features) if features is None else list(features)
    rows = max((len(window[n]) for n in names if n in window), default=0)
    if rows < rule.min_rows:
        return DriftReport(
            False,
            f"only {rows} recent rows, fewer than min_rows {rule.min_rows}: not checked",
            rows,
            {},
        )
    results: dict[str, FeatureDrift] = {}
    for name in names:
        reference = profile.features.get(name)
        if reference is None:
            results[name] = _untested("unknown", "none", 0, "not in the reference profile")
        elif name not in window:
            results[name] = _untested(reference.kind, "none", 0, "not in the recent rows")
        elif isinstance(reference, NumericProfile):
            results[name] = _numeric_drift(reference, window[name])
        else:
            results[name] = _categorical_drift(reference, window[name])
    tested = {n: f.p_value for n, f in results.items() if f.p_value is not None}
    rejected = holm_rejections(tested, rule.alpha)
    drifted = [n for n in rejected if results[n].psi is not None and results[n].psi >= rule.min_psi]
    for name in drifted:
        results[name] = _with_drifted(results[name])
    if drifted:
        detail = ", ".join(
            f"{n} (PSI {results[n].psi:.3f}, p {results[n].p_value:.2g})" for n in sorted(drifted)
        )
        reason = f"drift in {len(drifted)} of {len(tested)} features: {detail}"
    else:
        small = sorted(set(rejected) - set(drifted))
        reason = f"no drift in {len(tested)} features at family-wise alpha {rule.alpha:g}" + (
            f" (significant but PSI below {rule.min_psi:g}: {', '.join(small)})" if small else ""
        )
    return DriftReport(bool(drifted), reason, rows, results)


def _with_drifted(feature: FeatureDrift) -> FeatureDrift:
    return FeatureDrift(**{**asdict(feature), "drifted": True})
