"""The paired statistics the promotion gate is to use, against scipy and by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from driftloop.paired import discordant, mcnemar_exact, paired_bootstrap, rows_needed


@pytest.mark.parametrize(("b", "c"), [(0, 0), (1, 0), (3, 9), (9, 3), (20, 20), (2, 40),
                                      (150, 110)])
def test_mcnemar_exact_is_the_binomial_test_on_discordant_rows(b: int, c: int) -> None:
    want = 1.0 if b + c == 0 else stats.binomtest(min(b, c), b + c, 0.5).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(want, rel=1e-12)


def test_discordant_rows_are_counted_per_side_and_shapes_must_match() -> None:
    champion = np.array([1, 1, 0, 0, 1], dtype=bool)
    challenger = np.array([1, 0, 1, 1, 1], dtype=bool)
    assert discordant(champion, challenger) == (1, 2)
    with pytest.raises(ValueError, match="scored on different rows"):
        discordant(champion, challenger[:4])
    with pytest.raises(ValueError, match="non-negative"):
        mcnemar_exact(-1, 3)


def test_the_paired_interval_covers_the_true_difference_at_its_level() -> None:
    """500 simulated gates: a challenger 3 points better on paired rows (most rows agree);
    the 90 % interval should miss the truth about 10 % of the time."""
    rng = np.random.default_rng(7)
    misses = 0
    for trial in range(500):
        agree = rng.random(400) < 0.85
        champion = rng.random(400) < 0.80
        challenger = np.where(agree, champion, rng.random(400) < 0.80 + 0.03 / 0.15)
        truth = 0.15 * (0.80 + 0.03 / 0.15 - 0.80)
        ci = paired_bootstrap(champion.astype(float), challenger.astype(float),
                              confidence=0.9, rounds=400, seed=trial)
        misses += not ci.low <= truth <= ci.high
    assert 0.05 < misses / 500 < 0.16


def test_pairing_narrows_the_interval_against_unpaired_scores() -> None:
    rng = np.random.default_rng(3)
    champion = (rng.random(300) < 0.8).astype(float)
    challenger = champion.copy()
    flip = rng.random(300) < 0.05
    challenger[flip] = 1 - challenger[flip]
    paired = paired_bootstrap(champion, challenger, seed=1)
    unpaired = paired_bootstrap(champion, rng.permutation(challenger), seed=1)
    assert (paired.high - paired.low) < 0.5 * (unpaired.high - unpaired.low)
    assert paired.rows == 300 and paired.confidence == 0.95


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"champion": [], "challenger": []}, "no rows to compare"),
    ({"champion": [1.0, 0.0], "challenger": [1.0]}, "one length"),
    ({"champion": [1.0], "challenger": [1.0], "confidence": 1.0}, r"confidence must be in"),
])
def test_bad_bootstrap_input_is_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(**kwargs)


def test_rows_needed_grows_with_discordance_and_shrinks_with_the_margin() -> None:
    # 10 % discordant rows, a 2-point margin at 95 % / 80 %: (1.645 + 0.842)^2 * 0.1 / 0.02^2
    assert rows_needed(0.10, 0.02) == 1546
    assert rows_needed(0.20, 0.02) > rows_needed(0.10, 0.02) > rows_needed(0.10, 0.05)
    with pytest.raises(ValueError, match="margin must be positive"):
        rows_needed(0.1, 0.0)
