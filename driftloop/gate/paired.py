"""Paired comparisons of a champion and a challenger scored on the same rows: the statistics
behind the promotion gate.

Two models judged on the same rows disagree on few of them; comparing two separate
accuracies throws that pairing away and needs far more rows to see the same difference.

- :func:`mcnemar_exact`: classification. Only the discordant rows carry information: ``b``
  rows only the champion got right, ``c`` rows only the challenger did. Under "equally
  good" each discordant row is a fair coin, so the exact two-sided p-value is a binomial
  tail (no chi-squared approximation: gates often see a few dozen discordant rows).
- :func:`newcombe_interval`: the interval of the accuracy difference from the same 2x2
  table (Newcombe 1998, method 10: Wilson score limits of each accuracy, corrected for the
  pairing). It stays honest on small tables: two models that agree on all 30 rows are
  *not* shown equal to within a point, as a bootstrap of 30 identical rows would claim.
- :func:`paired_bootstrap_metric`: any metric (weighted F1, and the regression errors to
  come): rows are resampled together, so each row keeps both models' predictions, and the
  percentile interval of ``metric(challenger) - metric(champion)`` is read off.
- :func:`rows_needed`: how many rows the observed interval would need to be narrow enough
  for a margin, for "not enough evidence (n=..., need ~...)".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Bootstrap resamples: the interval's ends move by < 0.002 between seeds at 2,000.
ROUNDS = 2000
#: Resamples evaluated at once (bounds the index matrix: CHUNK x rows integers).
CHUNK = 250


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


def wilson_interval(successes: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of a proportion (used per model by :func:`newcombe_interval`)."""
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def newcombe_interval(both: int, champion_only: int, challenger_only: int, neither: int, *,
                      confidence: float = 0.95) -> tuple[float, float]:
    """Interval of ``accuracy(challenger) - accuracy(champion)`` from the paired 2x2 table:
    rows both got right, only the champion, only the challenger, neither."""
    _check_confidence(confidence)
    n = both + champion_only + challenger_only + neither
    if n == 0:
        raise ValueError("no rows to compare")
    p_champ, p_chal = (both + champion_only) / n, (both + challenger_only) / n
    l_champ, u_champ = wilson_interval(both + champion_only, n, confidence)
    l_chal, u_chal = wilson_interval(both + challenger_only, n, confidence)
    # The correlation of the two models' correctness (phi); 0 when a margin is empty.
    margins = ((both + champion_only) * (challenger_only + neither)
               * (both + challenger_only) * (champion_only + neither))
    phi = (both * neither - champion_only * challenger_only) / np.sqrt(margins) \
        if margins > 0 else 0.0
    diff = p_chal - p_champ
    below = np.sqrt(max(0.0, (p_chal - l_chal) ** 2
                        - 2 * phi * (p_chal - l_chal) * (u_champ - p_champ)
                        + (u_champ - p_champ) ** 2))
    above = np.sqrt(max(0.0, (u_chal - p_chal) ** 2
                        - 2 * phi * (u_chal - p_chal) * (p_champ - l_champ)
                        + (p_champ - l_champ) ** 2))
    return float(max(-1.0, diff - below)), float(min(1.0, diff + above))


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


#: A metric evaluated on many resamples at once: row positions (rounds x rows) -> (rounds,).
BatchMetric = Callable[[np.ndarray], np.ndarray]


def paired_bootstrap_metric(champion: BatchMetric, challenger: BatchMetric, rows: int, *,
                            confidence: float = 0.95, rounds: int = ROUNDS,
                            seed: int = 0) -> tuple[PairedDifference, float]:
    """The percentile interval of ``challenger - champion`` over paired resamples of
    ``rows`` rows, and the bootstrap's two-sided p-value for "no difference"."""
    _check_confidence(confidence)
    if rows < 1:
        raise ValueError("no rows to compare")
    rng = np.random.default_rng(seed)
    whole = np.arange(rows)[None, :]
    point = float(challenger(whole)[0] - champion(whole)[0])
    diffs = []
    for start in range(0, rounds, CHUNK):
        idx = rng.integers(0, rows, size=(min(CHUNK, rounds - start), rows))
        diffs.append(challenger(idx) - champion(idx))
    d = np.concatenate(diffs)
    tail = (1 - confidence) / 2
    low, high = np.quantile(d, [tail, 1 - tail])
    p = min(1.0, 2 * min(float(np.mean(d <= 0)), float(np.mean(d >= 0))))
    return PairedDifference(rows, point, float(low), float(high), confidence), p


def paired_bootstrap(champion: np.ndarray, challenger: np.ndarray, *,
                     confidence: float = 0.95, rounds: int = ROUNDS,
                     seed: int = 0) -> PairedDifference:
    """The percentile interval of ``mean(challenger) - mean(champion)`` per-row scores."""
    a = np.asarray(champion, dtype=np.float64)
    b = np.asarray(challenger, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two 1-d score arrays of one length, got {a.shape} and "
                         f"{b.shape}")
    if len(a) == 0:
        raise ValueError("no rows to compare")
    interval, _ = paired_bootstrap_metric(lambda idx: a[idx].mean(axis=1),
                                          lambda idx: b[idx].mean(axis=1), len(a),
                                          confidence=confidence, rounds=rounds, seed=seed)
    return interval


def rows_needed(rows: int, difference: float, low: float, margin: float) -> int | None:
    """Rows for the interval's lower end to clear ``-margin`` if the difference stays as
    observed: the interval narrows as 1/sqrt(n). None when no number of rows would do
    (the difference itself is at or below ``-margin``)."""
    room = difference + margin
    if room <= 0:
        return None
    spread = max(difference - low, 0.0)
    return max(rows, int(np.ceil(rows * (spread / room) ** 2)))
