"""Pearson's chi-squared test on the 2 x K table of category counts (reference vs window).

Categories the reference never saw share one extra "unseen" bucket, so a new category is a
change like any other. Empty columns of the table are dropped; with fewer than two left there
is nothing to test (p = 1).
"""

from __future__ import annotations

import numpy as np

from driftloop.drift.registry import DriftTest, register


def table(ref_counts: np.ndarray, win_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The non-empty columns of the 2 x K table, as float arrays."""
    ref = np.asarray(ref_counts, dtype=np.float64)
    win = np.asarray(win_counts, dtype=np.float64)
    if ref.sum() == 0 or win.sum() == 0:
        raise ValueError("a categorical drift test needs at least one reference and one "
                         "window value")
    keep = (ref + win) > 0
    return ref[keep], win[keep]


def expected(ref: np.ndarray, win: np.ndarray) -> np.ndarray:
    n, m = ref.sum(), win.sum()
    total = ref + win
    return np.vstack([total * (n / (n + m)), total * (m / (n + m))])


def _chi2(ref_counts: np.ndarray, win_counts: np.ndarray) -> tuple[float, float]:
    from scipy.stats import chi2

    ref, win = table(ref_counts, win_counts)
    if len(ref) < 2:
        return 0.0, 1.0
    stat = float(((np.vstack([ref, win]) - expected(ref, win)) ** 2 / expected(ref, win)).sum())
    return stat, float(chi2.sf(stat, len(ref) - 1))


CHI2 = register(DriftTest("chi2", "categorical", "Pearson chi-squared", categorical=_chi2))
