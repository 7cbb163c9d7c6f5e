"""Jensen-Shannon distance, with the G-test's p-value.

The statistic is the Jensen-Shannon distance between the reference's and the window's
category distributions (base 2, in [0, 1]; Evidently's default for categoricals). Its p-value
comes from the likelihood-ratio (G) test on the same 2 x K table: ``G = 2 N I``, where ``I``
is the mutual information between "which sample" and "which category", which is the
Jensen-Shannon divergence weighted by the two sample sizes, and ``G`` is asymptotically
chi-squared with K - 1 degrees of freedom. So the distance has a significance, and the test
is the log-likelihood twin of Pearson's chi-squared: less swayed by a rare category's tiny
expected count.
"""

from __future__ import annotations

import numpy as np

from driftloop.drift.chi2 import expected, table
from driftloop.drift.registry import DriftTest, register


def _xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x)
    pos = x > 0
    out[pos] = x[pos] * np.log(x[pos] / y[pos])
    return out


def js_distance(ref: np.ndarray, win: np.ndarray) -> float:
    p, q = ref / ref.sum(), win / win.sum()
    mid = (p + q) / 2
    divergence = 0.5 * (_xlogy(p, mid).sum() + _xlogy(q, mid).sum()) / np.log(2)
    return float(np.sqrt(max(divergence, 0.0)))


def _jensen_shannon(ref_counts: np.ndarray, win_counts: np.ndarray) -> tuple[float, float]:
    from scipy.stats import chi2

    ref, win = table(ref_counts, win_counts)
    if len(ref) < 2:
        return 0.0, 1.0
    observed = np.vstack([ref, win])
    g = float(2.0 * _xlogy(observed, expected(ref, win)).sum())
    return js_distance(ref, win), float(chi2.sf(max(g, 0.0), len(ref) - 1))


JENSEN_SHANNON = register(DriftTest("jensen_shannon", "categorical",
                                    "Jensen-Shannon distance (G-test p-value)",
                                    categorical=_jensen_shannon))
