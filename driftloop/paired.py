"""Paired comparisons of a champion and a challenger scored on the same rows: the statistics
the promotion gate is to be built on (issue 17; not wired into the gate yet).

Two models judged on the same rows disagree on few of them; comparing two separate
accuracies throws that pairing away and needs far more rows to see the same difference.

- :func:`mcnemar_exact`: classification. Only the discordant rows carry information: ``b``
  rows only the champion got right, ``c`` rows only the challenger did. Under "equally
  good" each discordant row is a fair coin, so the exact two-sided p-value is a binomial
  tail (no chi-squared approximation: gates often see a few dozen discordant rows).
- :func:`paired_bootstrap`: any per-row score (correctness, squared or absolute error):
  a percentile interval of ``mean(challenger) - mean(champion)`` over rows resampled
  together, so each row keeps both models' scores.
- :func:`rows_needed`: how many rows a non-inferiority margin needs at the observed
  discordance, for "not enough evidence (n=..., need ~...)".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairedDifference:
    """``challenger - champion`` on the same rows, with its interval."""

    rows: int
    difference: float
    low: float
    high: float
    confidence: float


def discordant(champion_correct: np.ndarray, challenger_correct: np.ndarray) -> tuple[int, int]:
    """``(b, c)``: rows only the champion got right, rows only the challenger got right."""
    a = np.asarray(champion_correct, dtype=bool)
    b = np.asarray(challenger_correct, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"the two models were scored on different rows ({a.shape} vs "
                         f"{b.shape})")
    return int((a & ~b).sum()), int((~a & b).sum())


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant rows (1 for none)."""
    from scipy.stats import binom

    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be non-negative, got {b} and {c}")
    n = b + c
    if n == 0:
        return 1.0
    return float(min(1.0, 2.0 * binom.cdf(min(b, c), n, 0.5)))


def paired_bootstrap(champion: np.ndarray, challenger: np.ndarray, *,
                     confidence: float = 0.95, rounds: int = 2000,
                     seed: int = 0) -> PairedDifference:
    """The percentile interval of ``mean(challenger - champion)`` per-row scores."""
    a = np.asarray(champion, dtype=np.float64)
    b = np.asarray(challenger, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two 1-d score arrays of one length, got {a.shape} and "
                         f"{b.shape}")
    if len(a) == 0:
        raise ValueError("no rows to compare")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    diff = b - a
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(rounds, len(diff)))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return PairedDifference(len(diff), float(diff.mean()), float(low), float(high),
                            confidence)


def rows_needed(discordance: float, margin: float, *, confidence: float = 0.95,
                power: float = 0.8) -> int:
    """Rows for a one-sided paired test to show non-inferiority by ``margin`` when the true
    difference is 0 and a share ``discordance`` of rows is discordant (Connor 1987)."""
    from scipy.stats import norm

    if margin <= 0:
        raise ValueError(f"margin must be positive, got {margin}")
    d = min(max(discordance, 1e-6), 1.0)
    z = norm.ppf(confidence) + norm.ppf(power)
    return int(np.ceil(z * z * d / (margin * margin)))
