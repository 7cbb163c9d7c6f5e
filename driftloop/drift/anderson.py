"""Anderson-Darling k-sample (two samples): the CDF gaps, weighted towards the tails.

Cramér-von Mises weighs a gap the same wherever it is; Anderson-Darling divides it by
``H(1 - H)`` (``H`` the pooled CDF), so a change in the outer few percent, such as a longer
tail, counts as much as one in the middle. It is the most sensitive of the three numeric tests
to tail and shape changes (``make bench-drift``).

The statistic is Scholz and Stephens' (1987) ``A2_kN`` at the right-continuous CDFs
(``scipy.stats.anderson_ksamp(..., midrank=False)``, equal to it to rounding), which for two
samples is ``1/(n m) * sum over distinct pooled values z (but the last) of
l_z D_z^2 / (B_z (N - B_z))``, with ``D_z = m M_ref(z) - n M_win(z)`` (``M``: the sample's
count up to ``z``), ``B_z`` the pooled count up to ``z`` and ``l_z`` its multiplicity.
Where nothing ties (continuous features), each reference run
between two window values sums in closed form: with ``u`` the pooled position and ``c`` the
window points below, ``(mu - Nc)^2 / (u(N-u)) = -m^2 + N(m-c)^2/(N-u) + Nc^2/u``, a sum of
harmonic numbers. So the statistic costs what KS costs. A column with ties is evaluated on its
distinct values (the reference's are prepared once).

The p-value maps the statistic onto the limiting distribution with Scholz and Stephens'
finite-sample mean (1) and variance, and evaluates it with Marsaglia and Marsaglia's (2004)
approximation (absolute error under 2e-6). scipy instead interpolates a table and caps the
p-value to [0.001, 0.25], too coarse for a Bonferroni level over many features.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from driftloop.drift.registry import DriftTest, NumericRanks, register

#: Variance of the limiting (one-sample) Anderson-Darling distribution: 2(pi^2 - 9)/3.
LIMIT_VARIANCE = 2 * (np.pi ** 2 - 9) / 3


@lru_cache(maxsize=8)
def _harmonic(big_n: int) -> np.ndarray:
    """H[x] = 1 + 1/2 + ... + 1/x for x in 0..N (a window's sums are lookups)."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, big_n + 1, dtype=np.float64))])


@lru_cache(maxsize=8)
def _weights(n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What every column of an (n, m) comparison shares: the harmonic numbers, the window
    positions j, and the runs' weights c^2 and (m - c)^2 for c = 0..m."""
    c = np.arange(0, m + 1, dtype=np.float64)
    return _harmonic(n + m), c[1:].copy(), c * c, (m - c) ** 2


def _untied(right: np.ndarray, n: int, m: int) -> float:
    """The sum of D^2/(u(N-u)) over the pooled sample of a column where nothing ties.

    The j-th window point sits at pooled position ``u_j = R_j + j`` (``R_j`` reference values
    below it). The reference run after it (``c = j`` window points below) covers positions
    ``u_j + 1 .. u_{j+1} - 1``, the first run ``1 .. u_1 - 1`` and the last
    ``u_m + 1 .. N - 1`` (the last pooled point has D = 0 and is left out). A run's sum is
    ``-m^2 L + N(m-c)^2 (H[N-a-1] - H[N-b-1]) + N c^2 (H[b] - H[a])`` over ``(a, b]``, and
    the runs' lengths add up to the pooled positions no window point holds.
    """
    big_n = n + m
    h, j, c2, mc2 = _weights(n, m)
    rf = right.astype(np.float64)
    uf = rf + j
    d = m * rf - n * j
    width = uf * (big_n - uf)
    last_is_end = right[-1] == n  # the largest window value is the pooled maximum
    if last_is_end:
        width[-1] = np.inf
    total = float(np.dot(d, d / width))
    u = right + np.arange(1, m + 1, dtype=np.int64)
    a = np.empty(m + 1, dtype=np.int64)
    a[0] = 0
    a[1:] = u
    b = np.empty(m + 1, dtype=np.int64)
    b[:m] = u - 1
    b[m] = big_n - 1
    if last_is_end:
        a[m] = big_n - 1
    free = big_n - 1 - (m - int(last_is_end))  # pooled positions 1..N-1 in reference runs
    runs = (-float(m) ** 2 * free
            + big_n * float(np.dot(mc2, h[big_n - a - 1] - h[big_n - b - 1]))
            + big_n * float(np.dot(c2, h[b] - h[a])))
    return total + runs


def _distinct(sorted_row: np.ndarray) -> np.ndarray:
    keep = np.empty(len(sorted_row), dtype=bool)
    keep[0] = True
    np.not_equal(sorted_row[1:], sorted_row[:-1], out=keep[1:])
    return sorted_row[keep]


def _tied(ref_row: np.ndarray, win_row: np.ndarray) -> float:
    """The same sum over distinct pooled values, each weighted by its multiplicity."""
    n, m = len(ref_row), len(win_row)
    big_n = n + m
    # Both rows are sorted: their distinct values come from one pass each, and only those
    # (few, for a tied column) are merged.
    values = np.union1d(_distinct(ref_row), _distinct(win_row))
    ref_le = np.searchsorted(ref_row, values, side="right")
    win_le = np.searchsorted(win_row, values, side="right")
    b = ref_le + win_le
    mult = np.diff(np.concatenate([[0], b]))
    keep = b < big_n
    d = m * ref_le[keep].astype(np.float64) - n * win_le[keep].astype(np.float64)
    bk = b[keep].astype(np.float64)
    return float((mult[keep] * d ** 2 / (bk * (big_n - bk))).sum())


def ad_statistics(ranks: NumericRanks) -> np.ndarray:
    n, m = ranks.n, ranks.m
    own = np.arange(1, m + 1, dtype=np.int64)
    tied = ((ranks.win_last != own).any(axis=1) | (ranks.right != ranks.left).any(axis=1))
    if ranks.ref_ties:
        tied |= np.array([t is not None for t in ranks.ref_ties])
    total = np.array([_tied(ranks.ref[j], ranks.win[j]) if tied[j]
                      else _untied(ranks.right[j], n, m) for j in range(len(tied))])
    return total / (n * m)


@lru_cache(maxsize=256)
def _variance(n: int, m: int) -> float:
    """Var(A2_akN) for two samples (Scholz and Stephens 1987, eq. 4; k = 2)."""
    big_n, k = n + m, 2
    inv = 1.0 / np.arange(1, big_n, dtype=np.float64)          # 1/1 .. 1/(N-1)
    h = float(inv.sum())
    tail = np.cumsum(inv[::-1])[::-1]                           # sum_{j>=i} 1/j
    # g = sum_{i=1}^{N-2} 1/(N-i) * sum_{j=i+1}^{N-1} 1/j
    i = np.arange(1, big_n - 1)
    g = float((tail[i] / (big_n - i)).sum())
    hh = 1.0 / n + 1.0 / m
    a = (4 * g - 6) * (k - 1) + (10 - 6 * g) * hh
    b = (2 * g - 4) * k ** 2 + 8 * h * k + (2 * g - 14 * h - 4) * hh - 8 * h + 4 * g - 6
    c = (6 * h + 2 * g - 2) * k ** 2 + (4 * h - 4 * g + 6) * k + (2 * h - 6) * hh + 4 * h
    d = (2 * h + 6) * k ** 2 - 4 * h * k
    return float((a * big_n ** 3 + b * big_n ** 2 + c * big_n + d)
                 / ((big_n - 1) * (big_n - 2) * (big_n - 3)))


def _limit_sf(z: np.ndarray) -> np.ndarray:
    """P(A2 > z) of the limiting distribution (Marsaglia and Marsaglia 2004, adinf)."""
    z = np.asarray(z, dtype=np.float64)
    out = np.ones_like(z)
    low = (z > 0) & (z < 2)
    zl = z[low]
    cdf_low = np.exp(-1.2337141 / zl) / np.sqrt(zl) * (
        2.00012 + (0.247105 - (0.0649821 - (0.0347962 - (0.011672 - 0.00168691 * zl) * zl)
                               * zl) * zl) * zl)
    out[low] = 1.0 - cdf_low
    high = z >= 2
    zh = z[high]
    inner = np.exp(1.0776 - (2.30695 - (0.43424 - (0.082433 - (0.008056 - 0.0003146 * zh)
                                                    * zh) * zh) * zh) * zh)
    out[high] = -np.expm1(-inner)
    return np.clip(out, 0.0, 1.0)


def ad_p_values(statistics: np.ndarray, n: int, m: int) -> np.ndarray:
    a2 = np.asarray(statistics, dtype=np.float64)
    z = 1.0 + (a2 - 1.0) * np.sqrt(LIMIT_VARIANCE / _variance(n, m))
    return _limit_sf(z)


def _anderson(ranks: NumericRanks) -> tuple[np.ndarray, np.ndarray]:
    a2 = ad_statistics(ranks)
    return a2, ad_p_values(a2, ranks.n, ranks.m)


ANDERSON = register(DriftTest("anderson", "numeric", "Anderson-Darling k-sample",
                              numeric=_anderson))
