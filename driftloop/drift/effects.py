"""How big a change is, and what it looks like, in words a person can act on.

The effect sizes are the same for every test of a kind, so thresholds mean one thing whatever
test a feature uses. The *share of rows* that moved: for numeric features the KS distance
(the largest gap between the two CDFs: the share of rows that crossed some value), for
categoricals the total variation distance (the share of rows that changed category). For
numeric features also *how far* rows moved: the Wasserstein distance in reference standard
deviations, which sees what no single crossing point shows, such as a longer tail or a wider
spread (10 % of rows three times as large is a KS distance of 0.05 but a move of 0.4 sd). For
categoricals also the share of rows with a category the reference never saw. The tests bring
the power (a p-value); the effects say whether the change is big enough to matter.

The description says *how* it moved, from the window's and the reference's moments and
quantiles: "mean +1.3 sd", "spread 0.6x the reference", "upper tail p99 2.3 -> 4.1",
"'web' 12 % -> 31 %", "new category 'x' at 4 %".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Quantiles kept for descriptions of shape and tails.
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
#: What a description mentions: a mean shift of at least 0.1 sd, a spread ratio outside
#: [1/1.1, 1.1], a category whose share moved by at least 2 points.
MEAN_SD, SPREAD, SHARE = 0.1, 1.1, 0.02
#: Quantile levels the Wasserstein distance is read at.
LEVELS = 2000


@dataclass(frozen=True)
class NumericSummary:
    """Per column: mean, standard deviation and QUANTILES (k, len(QUANTILES))."""

    mean: np.ndarray
    sd: np.ndarray
    quantiles: np.ndarray

    @classmethod
    def of_sorted(cls, sorted_rows: np.ndarray) -> NumericSummary:
        n = sorted_rows.shape[1]
        idx = np.minimum((np.asarray(QUANTILES) * n).astype(np.int64), n - 1)
        return cls(sorted_rows.mean(axis=1), sorted_rows.std(axis=1), sorted_rows[:, idx])


def wasserstein_sd(ranks_ref: np.ndarray, win_sorted: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Per column, the Wasserstein-1 distance between window and reference, in reference
    standard deviations: how far, on average, rows moved.

    W1 is the mean gap between the two quantile functions, ``integral |Q_win - Q_ref|``; here
    the mean over LEVELS evenly spaced levels (or the window's own m, if fewer), read off the
    two sorted samples. An effect size, not a test statistic: 2,000 levels put it within a
    few thousandths of an sd of the exact value. A constant reference column
    has no sd: any movement counts as 1.
    """
    n = ranks_ref.shape[1]
    m = win_sorted.shape[1]
    grid = (np.arange(min(m, LEVELS)) + 0.5) / min(m, LEVELS)
    win_at = win_sorted[:, np.minimum((grid * m).astype(np.int64), m - 1)]
    ref_at = ranks_ref[:, np.minimum((grid * n).astype(np.int64), n - 1)]
    distance = np.abs(win_at - ref_at).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(sd > 0, distance / np.where(sd > 0, sd, 1.0), (distance > 0) * 1.0)
    return out


def _num(x: float) -> str:
    return f"{x:.3g}"


def describe_numeric(ref: NumericSummary, win: NumericSummary, j: int) -> str:
    sd = float(ref.sd[j])
    parts = []
    if sd > 0:
        shift = (float(win.mean[j]) - float(ref.mean[j])) / sd
        if abs(shift) >= MEAN_SD:
            parts.append(f"mean {shift:+.2g} sd")
        ratio = float(win.sd[j]) / sd
        if ratio >= SPREAD or ratio <= 1 / SPREAD:
            parts.append(f"spread {ratio:.2g}x the reference")
    if not parts:
        # Neither the centre nor the spread: name the quantile that moved most.
        span = max(sd, float(ref.quantiles[j, -1] - ref.quantiles[j, 0]), 1e-12)
        moved = np.abs(win.quantiles[j] - ref.quantiles[j]) / span
        q = int(np.argmax(moved))
        where = {0: "lower tail", 1: "lower tail", 5: "upper tail", 6: "upper tail"}.get(
            q, "shape")
        parts.append(f"{where} p{round(QUANTILES[q] * 100)} {_num(ref.quantiles[j, q])} -> "
                     f"{_num(win.quantiles[j, q])}")
    return ", ".join(parts)


def tvd(ref_counts: np.ndarray, win_counts: np.ndarray) -> float:
    ref = np.asarray(ref_counts, dtype=np.float64)
    win = np.asarray(win_counts, dtype=np.float64)
    return 0.5 * float(np.abs(win / win.sum() - ref / ref.sum()).sum())


def describe_categorical(categories: list[str], ref_counts: np.ndarray,
                         win_counts: np.ndarray, unseen: dict[str, int]) -> str:
    """``ref_counts``/``win_counts`` over ``categories`` plus the unseen bucket (last)."""
    m = float(win_counts.sum())
    ref_share = ref_counts[:-1] / ref_counts.sum()
    win_share = win_counts[:-1] / m
    parts = [f"new category '{value}' at {count / m:.0%}" for value, count in
             sorted(unseen.items(), key=lambda kv: -kv[1])[:2] if count / m >= 0.005]
    moved = np.argsort(-np.abs(win_share - ref_share), kind="stable")
    for i in moved[:3]:
        if abs(win_share[i] - ref_share[i]) < SHARE:
            break
        parts.append(f"'{categories[i]}' {ref_share[i]:.0%} -> {win_share[i]:.0%}")
    return ", ".join(parts) or "category mix unchanged"
