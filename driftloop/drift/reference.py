"""A model's drift reference, prepared once when the model loads, and a window's report.

Numeric columns are stored sorted (one row per feature, contiguous) with their summary;
categorical columns as category counts. Each feature has one registered test (the spec may
choose; ``DEFAULT_TESTS`` otherwise); a window is placed in the sorted reference once and
every numeric test reads those positions.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from driftloop.drift import registry
from driftloop.drift.decision import Thresholds, adjust_p_values
from driftloop.drift.effects import (
    NumericSummary,
    describe_categorical,
    describe_numeric,
    tvd,
    wasserstein_sd,
)
from driftloop.drift.registry import NumericRanks
from driftloop.missing import MISSING_CATEGORY, fill_categorical

UNSEEN = "__unseen__"
#: The test a feature gets when its spec names none (chosen on `make bench-drift`).
DEFAULT_TESTS: dict[registry.Kind, str] = {"numeric": "anderson", "categorical": "chi2"}


@dataclass
class FeatureDrift:
    feature: str
    kind: Literal["numeric", "categorical"]
    test: str
    statistic: float
    p_value: float
    p_value_adjusted: float
    effect_size: float
    drifted: bool
    changed: bool = False
    description: str = ""
    unseen_categories: int | None = None
    unseen_rate: float | None = None
    shift_sd: float | None = None
    #: Nullable features: the share of rows missing in the window and in the reference, and
    #: the test of that rate (chi-squared, missing against present).
    missing_rate: float | None = None
    reference_missing_rate: float | None = None
    missing_p_value: float | None = None
    missing_p_value_adjusted: float | None = None
    #: Rows /predict refused for a bad value of this feature, and their share of the
    #: window's rows served plus refused (0 without refusals).
    refused_rows: int = 0
    refused_rate: float = 0.0

    @property
    def missing_change(self) -> float | None:
        if self.missing_rate is None or self.reference_missing_rate is None:
            return None
        return abs(self.missing_rate - self.reference_missing_rate)

    @property
    def rank(self) -> float:
        """One scale for every effect, 0.1 at its alarm: the share of rows moved, the
        distance in sd over 2.5, twice the missing-rate change or the refused rate."""
        return max(self.effect_size, (self.shift_sd or 0) / 2.5,
                   2 * (self.missing_change or 0), 2 * self.refused_rate)


@dataclass
class DriftResult:
    """The statistical part of a drift report (the server adds window, reference, model)."""

    status: Literal["ok", "insufficient_data"]
    rows: int
    reference_rows: int
    thresholds: Thresholds
    features: list[FeatureDrift] = field(default_factory=list)

    @property
    def dataset_drift(self) -> bool:
        return any(f.drifted for f in self.features)

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    @property
    def changes(self) -> list[FeatureDrift]:
        """Every changed feature: the drifted ones first, then the largest effect."""
        return sorted((f for f in self.features if f.changed),
                      key=lambda f: (not f.drifted, -f.rank))

    def as_dict(self) -> dict[str, Any]:
        t = self.thresholds
        return {
            "status": self.status,
            "dataset_drift": self.dataset_drift,
            "drifted_features": self.drifted_features,
            "changes": [{"feature": f.feature, "test": f.test, "effect_size": f.effect_size,
                         "shift_sd": f.shift_sd, "unseen_rate": f.unseen_rate,
                         "missing_rate": f.missing_rate,
                         "reference_missing_rate": f.reference_missing_rate,
                         "refused_rate": f.refused_rate,
                         "p_value_adjusted": f.p_value_adjusted, "drifted": f.drifted,
                         "description": f.description} for f in self.changes],
            "features": [asdict(f) for f in self.features],
            "correction": t.correction,
            "thresholds": t.as_dict(),
        }


@dataclass(frozen=True)
class _Block:
    """Numeric columns tested together: every non-nullable column in one sorted (k, n)
    block, and each nullable column on its own (its present values: one length per column).
    """

    index: np.ndarray  # the columns' positions among the numeric features
    sorted: np.ndarray  # (k, n), each row sorted
    ties: tuple[tuple[np.ndarray, np.ndarray] | None, ...]
    summary: NumericSummary | None
    nullable: bool = False
    missing: int = 0  # reference rows missing this (nullable) column


def _block(index: list[int], columns: np.ndarray, nullable: bool = False) -> _Block:
    """``columns`` (n, len(index)): NaN only in a nullable one-column block."""
    present = columns[~np.isnan(columns[:, 0])] if nullable else columns
    ordered = np.sort(np.ascontiguousarray(present.T), axis=1)
    return _Block(np.array(index, dtype=np.int64), ordered, registry.reference_ties(ordered),
                  NumericSummary.of_sorted(ordered) if ordered.shape[1] else None, nullable,
                  int(columns.shape[0] - present.shape[0]))


class Reference:
    def __init__(self, numeric_names: Sequence[str], blocks: Sequence[_Block],
                 categorical_names: Sequence[str],
                 categories: Sequence[tuple[list[str], np.ndarray]], rows: int,
                 tests: Mapping[str, str] | None = None,
                 nullable: Sequence[str] = (),
                 categorical_missing: Sequence[int] | None = None) -> None:
        self.numeric_names = list(numeric_names)
        self.blocks = list(blocks)
        self.categorical_names = list(categorical_names)
        self.categories = list(categories)
        self.categorical_missing = list(categorical_missing or [0] * len(self.categories))
        self.rows = rows
        self.nullable = frozenset(nullable)
        self.tests = resolve_tests(self.numeric_names, self.categorical_names, tests)
        self._index = [{c: i for i, c in enumerate(cats)} for cats, _ in self.categories]

    @classmethod
    def from_arrays(cls, numeric_names: Sequence[str], numeric: np.ndarray,
                    categorical_names: Sequence[str] = (),
                    categorical: np.ndarray | None = None,
                    tests: Mapping[str, str] | None = None,
                    nullable: Sequence[str] = ()) -> Reference:
        """Missing values (NaN; None, NaN or the missing category for categoricals) only in
        the ``nullable`` features."""
        num = np.asarray(numeric, dtype=np.float64).reshape(len(numeric), len(numeric_names))
        gaps = np.isnan(num).any(axis=0)
        bad = [n for n, g in zip(numeric_names, gaps, strict=True) if g and n not in nullable]
        if bad:
            raise ValueError(f"the drift reference holds NaN values in {', '.join(bad)} (not "
                             "in features.nullable)")
        dense = [j for j, n in enumerate(numeric_names) if n not in nullable]
        blocks = [_block(dense, num[:, dense])] if dense else []
        blocks += [_block([j], num[:, [j]], nullable=True)
                   for j, n in enumerate(numeric_names) if n in nullable]
        cats: list[tuple[list[str], np.ndarray]] = []
        missing: list[int] = []
        for j, name in enumerate(categorical_names):
            assert categorical is not None
            column = fill_categorical(categorical[:, j])
            gone = column == MISSING_CATEGORY
            if gone.any() and name not in nullable:
                raise ValueError(f"the drift reference misses values of {name} (not in "
                                 "features.nullable)")
            values, counts = np.unique(column[~gone].astype(str), return_counts=True)
            cats.append(([str(v) for v in values], counts.astype(np.float64)))
            missing.append(int(gone.sum()))
        return cls(numeric_names, blocks, categorical_names, cats, int(num.shape[0]), tests,
                   nullable, missing)

    @classmethod
    def from_frame(cls, frame: Any, numeric_names: Sequence[str],
                   categorical_names: Sequence[str] = (),
                   tests: Mapping[str, str] | None = None,
                   nullable: Sequence[str] = ()) -> Reference:
        numeric = frame[list(numeric_names)].to_numpy(dtype=np.float64)
        categorical = frame[list(categorical_names)].to_numpy(dtype=object)
        return cls.from_arrays(numeric_names, numeric, categorical_names, categorical, tests,
                               nullable)

    def medians(self) -> list[float | None]:
        """Each numeric feature's reference median (None for a column never present)."""
        out: list[float | None] = [None] * len(self.numeric_names)
        for block in self.blocks:
            n = block.sorted.shape[1]
            for row, j in enumerate(block.index):
                out[int(j)] = float(block.sorted[row, n // 2]) if n else None
        return out

    def evaluate(self, numeric: np.ndarray, categorical: np.ndarray | None = None,
                 thresholds: Thresholds | None = None,
                 refused: Mapping[str, int] | None = None) -> DriftResult:
        """Test a window (numeric (m, k) with NaN for missing values, categorical (m, c))
        against this reference; ``refused``: rows /predict refused per feature meanwhile."""
        t = thresholds or Thresholds()
        num = np.asarray(numeric, dtype=np.float64)
        m = int(num.shape[0]) if num.ndim == 2 else 0
        if categorical is not None and len(categorical):
            m = max(m, len(categorical))
        if m < t.min_rows:
            return DriftResult("insufficient_data", m, self.rows, t)
        by_name: dict[str, FeatureDrift] = {}
        for block in self.blocks:
            for f in self._numeric(block, num[:, block.index]):
                by_name[f.feature] = f
        for j, name in enumerate(self.categorical_names):
            assert categorical is not None
            by_name[name] = self._categorical(j, name, categorical[:, j])
        results = [by_name[n] for n in (*self.numeric_names, *self.categorical_names)]
        _decide(results, t, refused or {}, m)
        return DriftResult("ok", m, self.rows, t, results)

    def _numeric(self, block: _Block, window: np.ndarray) -> list[FeatureDrift]:
        names = [self.numeric_names[int(j)] for j in block.index]
        if block.nullable:
            column = window[:, 0]
            present = column[~np.isnan(column)][:, None]
            missing = _missing(block.missing, block.sorted.shape[1] + block.missing,
                               len(column) - len(present), len(column))
            if len(present) == 0 or block.summary is None:  # nothing to compare values of
                return [FeatureDrift(names[0], "numeric", self.tests[names[0]], 0.0, 1.0,
                                     float("nan"), 0.0, False, **missing)]
            window = present
        ranks = NumericRanks.place(block.sorted, window, block.ties)
        effect = ranks.ks_distance()
        stats = np.empty(len(names))
        p = np.empty(len(names))
        for name, columns in _groups(self.tests, names).items():
            test = registry.get(name, "numeric")
            assert test.numeric is not None
            s, pv = test.numeric(ranks.select(columns))
            stats[columns], p[columns] = s, pv
        win = NumericSummary.of_sorted(ranks.win)
        assert block.summary is not None
        shift = wasserstein_sd(ranks.ref, ranks.win, block.summary.sd)
        out = [FeatureDrift(name, "numeric", self.tests[name], float(stats[j]), float(p[j]),
                            float("nan"), float(effect[j]), False,
                            description=describe_numeric(block.summary, win, j),
                            shift_sd=float(shift[j]))
               for j, name in enumerate(names)]
        if block.nullable:
            out[0] = dataclasses.replace(out[0], **missing)
        return out

    def _categorical(self, j: int, name: str, values: np.ndarray) -> FeatureDrift:
        cats, ref_counts = self.categories[j]
        index = self._index[j]
        # A hash count (the window's values are strings already): no sort, no copy to a
        # fixed-width array; 50,000 values take ~2 ms instead of ~10.
        counted = Counter(np.asarray(values, dtype=object).tolist())
        k = len(cats)
        win = np.zeros(k + 1, dtype=np.float64)
        unseen: dict[str, int] = {}
        gone = 0
        for raw, count in counted.items():
            if raw is None or raw != raw or raw == MISSING_CATEGORY:  # None, NaN, marker
                gone += count
                continue
            value = raw if type(raw) is str else str(raw)
            i = index.get(value, k)
            win[i] += count
            if i == k:
                unseen[value] = unseen.get(value, 0) + int(count)
        ref = np.append(ref_counts, 0.0)
        m = float(win.sum())
        missing: dict[str, Any] = {}
        if name in self.nullable:
            ref_missing = self.categorical_missing[j]
            missing = _missing(ref_missing, int(ref.sum()) + ref_missing, gone,
                               int(m) + gone)
        test = registry.get(self.tests[name], "categorical")
        assert test.categorical is not None
        if m == 0 or ref.sum() == 0:  # every value missing: nothing to compare
            return FeatureDrift(name, "categorical", test.name, 0.0, 1.0, float("nan"), 0.0,
                                False, unseen_categories=0, unseen_rate=0.0, **missing)
        stat, p = test.categorical(ref, win)
        return FeatureDrift(name, "categorical", test.name, stat, p, float("nan"),
                            tvd(ref, win), False,
                            description=describe_categorical(cats, ref, win, unseen),
                            unseen_categories=int(win[k]), unseen_rate=float(win[k] / m),
                            **missing)


def _missing(ref_missing: int, ref_rows: int, win_missing: int, win_rows: int
             ) -> dict[str, float]:
    """A nullable feature's missing rates, and the chi-squared test of the 2 x 2 table
    (present, missing) x (reference, window)."""
    test = registry.get("chi2", "categorical")
    assert test.categorical is not None
    _, p = test.categorical(np.array([ref_rows - ref_missing, ref_missing], dtype=np.float64),
                            np.array([win_rows - win_missing, win_missing], dtype=np.float64))
    return {"missing_rate": win_missing / win_rows,
            "reference_missing_rate": ref_missing / ref_rows, "missing_p_value": float(p)}


def _decide(results: list[FeatureDrift], t: Thresholds, refused: Mapping[str, int],
            rows: int) -> None:
    """Correct the p-values (the missing-rate tests counted with the others), then answer
    both questions per feature and describe what changed."""
    gappy = [f for f in results if f.missing_p_value is not None]
    p = [f.p_value for f in results] + [f.missing_p_value for f in gappy]
    adjusted = adjust_p_values(np.array(p, dtype=np.float64), t.correction)
    for f, pa in zip(results, adjusted[: len(results)], strict=True):
        f.p_value_adjusted = float(pa)
    for f, pa in zip(gappy, adjusted[len(results):], strict=True):
        f.missing_p_value_adjusted = float(pa)
    total_refused = sum(refused.values())
    for f in results:
        if refused.get(f.feature):
            f.refused_rows = int(refused[f.feature])
            f.refused_rate = f.refused_rows / (rows + total_refused)
        values_drift = t.drifts(f.p_value_adjusted, f.effect_size, f.unseen_rate, f.shift_sd)
        values_changed = values_drift or t.changed(f.p_value_adjusted, f.effect_size,
                                                   f.unseen_rate, f.shift_sd)
        missing_changed = t.rate_changed(f.missing_p_value_adjusted, f.missing_change)
        f.drifted = values_drift or t.rate_drifts(f.missing_p_value_adjusted,
                                                  f.missing_change)
        f.changed = values_changed or missing_changed or f.refused_rate >= t.min_rate
        parts = [f.description] if values_changed and f.description else []
        if missing_changed:
            assert f.missing_rate is not None and f.reference_missing_rate is not None
            parts.append(f"missing {f.reference_missing_rate:.0%} -> {f.missing_rate:.0%}")
        if f.refused_rate >= t.min_rate:
            parts.append(f"{f.refused_rate:.0%} of rows refused (bad or missing value)")
        # What moved by chance is not worth a sentence.
        f.description = ", ".join(parts) if f.changed else "no real change"


def _groups(tests: Mapping[str, str], names: Sequence[str]) -> dict[str, np.ndarray]:
    out: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        out.setdefault(tests[name], []).append(j)
    return {k: np.array(v, dtype=np.int64) for k, v in out.items()}


def resolve_tests(numeric: Sequence[str], categorical: Sequence[str],
                  chosen: Mapping[str, str] | None) -> dict[str, str]:
    """Each feature's test: the chosen one (checked against the registry) or the default."""
    chosen = dict(chosen or {})
    unknown = sorted(set(chosen) - set(numeric) - set(categorical))
    if unknown:
        raise ValueError(f"drift tests given for unknown feature(s): {', '.join(unknown)}")
    out: dict[str, str] = {}
    for kind, names in (("numeric", numeric), ("categorical", categorical)):
        for name in names:
            test = chosen.get(name, DEFAULT_TESTS[kind])  # type: ignore[index]
            registry.get(test, kind)  # type: ignore[arg-type]
            out[name] = test
    return out


def evaluate_frames(reference: Any, window: Any, numeric: Sequence[str],
                    categorical: Sequence[str] = (),
                    thresholds: Thresholds | None = None,
                    tests: Mapping[str, str] | None = None,
                    nullable: Sequence[str] = ()) -> DriftResult:
    """Convenience for pipelines: two DataFrames with the spec's feature columns."""
    ref = Reference.from_frame(reference, numeric, categorical, tests, nullable)
    return ref.evaluate(window[list(numeric)].to_numpy(dtype=np.float64),
                        window[list(categorical)].to_numpy(dtype=object), thresholds)
