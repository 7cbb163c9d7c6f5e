"""The paired statistics behind the promotion gate, against scipy, scikit-learn and by
simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from driftloop.gate.compare import compare_classes as compare
from driftloop.gate.compare import weighted_metric
from driftloop.gate.paired import (
    discordant,
    mcnemar_exact,
    newcombe_interval,
    paired_bootstrap,
    rows_needed,
)


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


def test_rows_needed_scale_the_interval_to_the_margin() -> None:
    # Half-width 0.05 at n=100 against 0.02 of room: (0.05 / 0.02)^2 * 100 rows.
    assert rows_needed(100, 0.0, -0.05, 0.02) == 625
    assert rows_needed(100, 0.01, -0.04, 0.02) == 278  # more room, fewer rows
    assert rows_needed(100, -0.02, -0.1, 0.02) is None  # at the margin: no n would do
    assert rows_needed(100, 0.3, 0.2, 0.02) == 100  # already clear: no more than n


@pytest.mark.parametrize(("rows", "agree", "champion_rate", "challenger_rate"), [
    (30, 0.95, 0.9, 0.9), (60, 0.85, 0.75, 0.85), (200, 0.9, 0.8, 0.78)])
def test_newcombe_interval_covers_the_true_accuracy_difference(
        rows: int, agree: float, champion_rate: float, challenger_rate: float) -> None:
    """2,000 simulated tables: the 95 % interval holds the true difference at about its
    level (measured: 99.3 %, 94.7 %, 95.2 %), small tables included."""
    rng = np.random.default_rng(rows)
    truth = challenger_rate - champion_rate
    # Joint law of (champion right, challenger right) with the given agreement.
    p10 = (1 - agree + champion_rate - challenger_rate) / 2
    p01 = (1 - agree) - p10
    p11 = champion_rate - p10
    cells = rng.multinomial(rows, [p11, p10, p01, 1 - p11 - p10 - p01], size=2000)
    hits = [lo <= truth <= hi for lo, hi in
            (newcombe_interval(*map(int, cell)) for cell in cells)]
    assert 0.93 <= float(np.mean(hits)) <= 0.995


def test_newcombe_interval_is_wide_when_few_rows_agree_and_names_bad_input() -> None:
    low, high = newcombe_interval(28, 0, 0, 2)  # 30 rows, no discordant row
    assert low < -0.05 and high > 0.05 and low == pytest.approx(-high)
    with pytest.raises(ValueError, match="no rows to compare"):
        newcombe_interval(0, 0, 0, 0)
    with pytest.raises(ValueError, match="confidence must be in"):
        newcombe_interval(1, 2, 3, 4, confidence=0)


def test_weighted_metrics_equal_scikit_learns_on_every_resample() -> None:
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    rng = np.random.default_rng(5)
    truth = rng.integers(0, 4, 80)
    predicted = np.where(rng.random(80) < 0.7, truth, rng.integers(0, 3, 80))  # 3 never called
    idx = rng.integers(0, 80, size=(6, 80))
    kw = {"average": "weighted", "zero_division": 0, "labels": [0, 1, 2, 3]}
    want = {"accuracy": lambda t, p: accuracy_score(t, p),
            "f1_weighted": lambda t, p: f1_score(t, p, **kw),
            "precision_weighted": lambda t, p: precision_score(t, p, **kw),
            "recall_weighted": lambda t, p: recall_score(t, p, **kw)}
    for name, sk in want.items():
        got = weighted_metric(name, truth, predicted, 4)(idx)
        assert got == pytest.approx([sk(truth[i], predicted[i]) for i in idx], abs=1e-12)


def test_the_bootstrap_p_value_is_one_for_identical_models_and_small_for_a_clear_gap() -> None:
    truth = np.array(["a", "b"] * 50)
    same = compare("f1_weighted", truth, truth, truth, ["a", "b"])
    assert (same.difference, same.low, same.high, same.p_value) == (0, 0, 0, 1)
    worse = truth.copy()
    worse[:30] = "b"
    gap = compare("f1_weighted", truth, worse, truth, ["a", "b"])
    assert gap.low > 0 and gap.p_value <= 1 / 2000
    assert gap.evidence() == "paired bootstrap p<0.0005 (2000 resamples of the rows)"
    with pytest.raises(ValueError, match="class 'z' is not among the labels"):
        compare("f1_weighted", truth, truth, np.array(["z"] * 100), ["a", "b"])
    with pytest.raises(ValueError, match="scored on different rows"):
        compare("accuracy", truth, truth[:5], truth, ["a", "b"])
