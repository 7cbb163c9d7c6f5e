"""Cramér-von Mises: the squared gap between the two empirical CDFs, summed over all points.

Where KS looks at the single largest gap, Cramér-von Mises adds up the gaps everywhere, so a
change of spread or shape at an unchanged mean (the CDFs cross, and each gap stays small) is
seen far sooner. The statistic is Anderson's (1962),
``T = nm/N^2 * sum over the pooled sample of (F_ref - F_win)^2``, as
``scipy.stats.cramervonmises_2samp`` computes it (which ranks the pooled sample).

Here it costs no pooled sort: between two consecutive window values the window's CDF is
constant, and the reference's values there are a run of consecutive indices ``a+1 .. b`` of
the sorted reference, whose terms ``(i/n - c/m)^2`` sum in closed form
(``L(L^2-1)/12 + L(mean(i) - cn/m)^2`` over ``n^2``, ``L = b - a``). Where the reference has
tied values, ``i`` is the last position of its tie group, and the run's sum comes from prefix
sums prepared with the reference. So the statistic comes from the window's positions in the
reference alone, like KS's, and equals the pooled-sample sum at the right-continuous CDFs
exactly, ties included. (scipy ranks ties by mid-rank, a slightly different statistic; without
ties the two agree to rounding.) Heavily tied features are really categorical, and the
asymptotic p-value assumes continuity: give them the chi-squared test.

The p-value is Anderson's normalisation of T onto the limiting one-sample distribution, the
series of Csörgő and Faraway (1996), as scipy's asymptotic method.
"""

from __future__ import annotations

import numpy as np

from driftloop.drift.registry import DriftTest, NumericRanks, register


def _run_sums(a: np.ndarray, b: np.ndarray, c: np.ndarray, n: int, m: int) -> np.ndarray:
    """sum_{i=a+1}^{b} (i/n - c/m)^2, elementwise, in a form that keeps its precision."""
    length = (b - a).astype(np.float64)
    centre = (a + b + 1) / 2.0 - c * (n / m)
    return (length * (length * length - 1.0) / 12.0 + length * centre * centre) / (n * n)


def cvm_statistics(ranks: NumericRanks) -> np.ndarray:
    n, m = ranks.n, ranks.m
    k = ranks.right.shape[0]
    own = np.arange(1, m + 1, dtype=np.int64)
    # Window points: F_ref(w_j) = right/n, F_win(w_j) = last/m.
    total = ((ranks.right / n - ranks.win_last / m) ** 2).sum(axis=1)
    # Reference points strictly between w_{j-1} and w_j: F_win = (j-1)/m; and above the
    # window's largest value: F_win = 1.
    zero = np.zeros((k, 1), dtype=np.int64)
    starts = np.concatenate([zero, ranks.right], axis=1)
    ends = np.concatenate([ranks.left, np.full((k, 1), n, dtype=np.int64)], axis=1)
    counts = np.arange(0, m + 1, dtype=np.int64)
    runs = ends > starts
    sums = _run_sums(starts, ends, counts, n, m)
    for j, ties in enumerate(ranks.ref_ties or ()):
        if ties is not None:
            sums[j] = _tied_run_sums(ties, starts[j], ends[j], counts, n, m)
    total += np.where(runs, sums, 0.0).sum(axis=1)
    # Reference points equal to w_j (once per group of tied window values): F_ref there is
    # right/n, F_win last/m, the window point's own term.
    tied = (ranks.right > ranks.left) & (ranks.win_last == own)
    if tied.any():
        same = (ranks.right - ranks.left) * (ranks.right / n - ranks.win_last / m) ** 2
        total += np.where(tied, same, 0.0).sum(axis=1)
    return n * m / (n + m) ** 2 * total


def _tied_run_sums(ties: tuple[np.ndarray, np.ndarray], a: np.ndarray, b: np.ndarray,
                   c: np.ndarray, n: int, m: int) -> np.ndarray:
    """sum_{i=a+1}^{b} (last_i/n - c/m)^2 from the prefix sums of last_i and last_i^2."""
    p1, p2 = ties
    s1 = (p1[b] - p1[a]).astype(np.float64)
    s2 = (p2[b] - p2[a]).astype(np.float64)
    t = c * (n / m)
    return (s2 - 2.0 * t * s1 + (b - a) * t * t) / (n * n)


def _cdf_limit(x: np.ndarray) -> np.ndarray:
    """CDF of the limiting Cramér-von Mises distribution (Csörgő and Faraway 1996, eq. 1.2)."""
    from scipy.special import gammaln, kv

    x = np.asarray(x, dtype=np.float64)
    total = np.zeros_like(x)
    active = np.ones_like(x, dtype=bool)
    k = 0
    while active.any() and k < 50:
        xs = x[active]
        u = np.exp(gammaln(k + 0.5) - gammaln(k + 1)) / (np.pi ** 1.5 * np.sqrt(xs))
        y = 4 * k + 1
        q = y * y / (16 * xs)
        term = u * np.sqrt(y) * np.exp(-q) * kv(0.25, q)
        total[active] += term
        still = np.abs(term) >= 1e-13  # 1 - CDF is the p-value: keep its small values
        active[np.flatnonzero(active)[~still]] = False
        k += 1
    return total


def cvm_p_values(statistics: np.ndarray, n: int, m: int) -> np.ndarray:
    t = np.asarray(statistics, dtype=np.float64)
    big_n, k = n + m, n * m
    et = (1 + 1 / big_n) / 6
    vt = (big_n + 1) * (4 * k * big_n - 3 * (n * n + m * m) - 2 * k) / (45 * big_n ** 2 * 4 * k)
    tn = 1 / 6 + (t - et) / np.sqrt(45 * vt)
    p = np.ones_like(tn)
    live = tn >= 0.003  # below, the CDF is under 1e-18
    if live.any():
        p[live] = np.clip(1.0 - _cdf_limit(tn[live]), 0.0, 1.0)
    return p


def _cvm(ranks: NumericRanks) -> tuple[np.ndarray, np.ndarray]:
    t = cvm_statistics(ranks)
    return t, cvm_p_values(t, ranks.n, ranks.m)


CVM = register(DriftTest("cvm", "numeric", "Cramér-von Mises", numeric=_cvm))
