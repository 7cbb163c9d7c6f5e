"""Drift statistics: exactness against scipy, and decisions that survive big windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from driftloop.drift import (
    DEFAULT_TESTS,
    UNSEEN,
    Reference,
    Thresholds,
    adjust_p_values,
    evaluate_frames,
    ks_p_values,
    ks_statistics,
)


def _ks(reference: np.ndarray, window: np.ndarray) -> float:
    return float(ks_statistics(np.sort(reference)[None, :], window[:, None])[0])


@pytest.mark.parametrize("kind", ["continuous", "rounded", "integers", "constant"])
@pytest.mark.parametrize(("n", "m"), [(1, 1), (7, 300), (150, 50), (2000, 2000), (5000, 333)])
def test_ks_statistic_equals_scipy_including_ties(kind: str, n: int, m: int) -> None:
    rng = np.random.default_rng(n * 1000 + m)
    if kind == "continuous":
        ref, win = rng.normal(size=n), rng.normal(0.2, 1.3, size=m)
    elif kind == "rounded":  # many ties within and across samples
        ref, win = np.round(rng.normal(size=n), 1), np.round(rng.normal(0.1, 1, m), 1)
    elif kind == "integers":
        ref, win = rng.integers(0, 4, n).astype(float), rng.integers(1, 6, m).astype(float)
    else:
        ref, win = np.full(n, 2.0), np.full(m, 2.0)
    expected = stats.ks_2samp(ref, win, method="asymp").statistic
    assert abs(_ks(ref, win) - expected) <= 1e-12


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(-3, 3), min_size=1, max_size=40),
    st.lists(st.integers(-3, 3), min_size=1, max_size=40),
    st.floats(0.25, 4),
)
def test_ks_statistic_equals_scipy_on_arbitrary_tied_samples(
    ref: list[int], win: list[int], scale: float
) -> None:
    r, w = np.array(ref) * scale, np.array(win) * scale
    assert abs(_ks(r, w) - stats.ks_2samp(r, w).statistic) <= 1e-12


def test_ks_statistics_are_per_column_and_check_shapes() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(3000, 5))
    window = rng.normal(size=(400, 5)) + np.array([0, 0.5, 0, 1, 0])
    got = ks_statistics(np.sort(reference.T, axis=1), window)
    want = [stats.ks_2samp(reference[:, j], window[:, j]).statistic for j in range(5)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="4 numeric columns, reference has 5"):
        ks_statistics(np.sort(reference.T, axis=1), window[:, :4])


@pytest.mark.parametrize(("n", "m"), [(150, 50), (3000, 1000), (100_000, 10_000)])
def test_p_value_is_the_kolmogorov_limit_and_never_below_scipys_finite_n_value(
    n: int, m: int
) -> None:
    en = n * m / (n + m)
    d = np.linspace(0.3, 2.2, 12) / np.sqrt(en)
    got = ks_p_values(d, n, m)
    np.testing.assert_allclose(got, stats.kstwobign.sf(np.sqrt(en) * d), rtol=1e-12)
    finite = stats.kstwo.sf(d, np.round(en))  # what ks_2samp(method="asymp") reports
    assert np.all(got >= finite - 1e-12)
    assert np.max(got - finite) < (0.05 if en < 100 else 0.01)


def test_same_distribution_100k_window_does_not_drift_where_raw_ks_fires() -> None:
    rng = np.random.default_rng(5)
    k = 20
    names = [f"x{i}" for i in range(k)]
    ref_values = rng.normal(size=(100_000, k))
    reference = Reference.from_arrays(names, ref_values)
    window = rng.normal(size=(100_000, k))
    result = reference.evaluate(window, thresholds=Thresholds())
    raw = np.array([stats.ks_2samp(ref_values[:, j], window[:, j]).pvalue for j in range(k)])
    # The seeds' rule (any raw KS p < 0.05) calls this window drifted (3 features here) ...
    assert (raw < 0.05).sum() == 3
    assert (np.array([f.p_value for f in result.features]) < 0.05).sum() == 3
    # ... driftloop does not: nothing moved.
    assert result.status == "ok"
    assert not result.dataset_drift
    assert result.drifted_features == []


def test_negligible_shift_in_a_huge_window_is_significant_but_not_drift() -> None:
    rng = np.random.default_rng(8)
    reference = Reference.from_arrays(["a", "b"], rng.normal(size=(100_000, 2)))
    window = rng.normal(size=(100_000, 2)) + np.array([0.05, 0.0])
    result = reference.evaluate(window)
    a = result.features[0]
    assert a.p_value_adjusted < 1e-10           # statistically "significant" ...
    assert a.effect_size < 0.1 and not a.drifted  # ... but a 2 % CDF shift is not drift
    loose = reference.evaluate(window, thresholds=Thresholds(min_effect=0.0))
    assert loose.drifted_features == ["a"]      # the floor, not the test, made the call


def test_shifted_features_drift_and_only_those() -> None:
    rng = np.random.default_rng(9)
    names = [f"x{i}" for i in range(10)]
    reference = Reference.from_arrays(names, rng.normal(size=(20_000, 10)))
    window = rng.normal(size=(500, 10))
    window[:, 2] += 0.6           # mean shift
    window[:, 7] *= 2.0           # scale change
    result = reference.evaluate(window)
    assert result.dataset_drift
    assert result.drifted_features == ["x2", "x7"]
    by_name = {f.feature: f for f in result.features}
    assert by_name["x2"].test == DEFAULT_TESTS["numeric"] and by_name["x2"].kind == "numeric"
    # The effect is the KS distance whatever the test.
    assert by_name["x2"].effect_size == pytest.approx(
        stats.ks_2samp(reference.blocks[0].sorted[2], window[:, 2]).statistic, abs=1e-12)


def test_small_window_is_insufficient_data_not_a_verdict() -> None:
    reference = Reference.from_arrays(["a"], np.arange(1000.0)[:, None])
    result = reference.evaluate(np.full((49, 1), 5000.0), thresholds=Thresholds(min_rows=50))
    assert result.status == "insufficient_data"
    assert result.rows == 49
    assert result.features == [] and not result.dataset_drift
    assert reference.evaluate(np.full((50, 1), 5000.0)).drifted_features == ["a"]


def test_chi2_matches_scipy_contingency_and_buckets_unseen_categories() -> None:
    ref_values = np.array(["a"] * 500 + ["b"] * 300 + ["c"] * 200)
    window = np.array(["a"] * 40 + ["b"] * 30 + ["c"] * 10 + ["zzz"] * 15 + ["yyy"] * 5)
    reference = Reference.from_arrays([], np.empty((1000, 0)), ["c"], ref_values[:, None])
    result = reference.evaluate(np.empty((100, 0)), window[:, None]).features[0]
    table = np.array([[500, 300, 200, 0], [40, 30, 10, 20]])
    want = stats.chi2_contingency(table, correction=False)
    assert result.test == "chi2"
    assert result.statistic == pytest.approx(want.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(want.pvalue, rel=1e-9)
    assert result.unseen_categories == 20 and result.unseen_rate == pytest.approx(0.2)
    tvd = 0.5 * (abs(0.4 - 0.5) + abs(0.3 - 0.3) + abs(0.1 - 0.2) + abs(0.2 - 0.0))
    assert result.effect_size == pytest.approx(tvd)
    assert UNSEEN not in reference.categories[0][0]
    assert result.description.startswith("new category 'zzz' at 15%, new category 'yyy' at 5%")


def test_categorical_features_drift_on_a_new_mix_not_on_the_same_one() -> None:
    rng = np.random.default_rng(3)
    n = 5000
    frame = pd.DataFrame({"x": rng.normal(size=n),
                          "island": rng.choice(["Biscoe", "Dream", "Torgersen"], n,
                                               p=[0.5, 0.3, 0.2])})
    same = pd.DataFrame({"x": rng.normal(size=800),
                         "island": rng.choice(["Biscoe", "Dream", "Torgersen"], 800,
                                              p=[0.5, 0.3, 0.2])})
    moved = same.assign(island=rng.choice(["Biscoe", "Dream", "Torgersen", "Atlantis"], 800,
                                          p=[0.2, 0.3, 0.2, 0.3]))
    quiet = evaluate_frames(frame, same, ["x"], ["island"])
    assert not quiet.dataset_drift
    loud = evaluate_frames(frame, moved, ["x"], ["island"])
    assert loud.drifted_features == ["island"]
    island = loud.features[1]
    assert island.test == "chi2" and island.kind == "categorical"
    assert island.unseen_categories > 200


def test_corrections_bonferroni_and_benjamini_hochberg() -> None:
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    np.testing.assert_allclose(adjust_p_values(p, "bonferroni"), np.minimum(p * 10, 1))
    np.testing.assert_allclose(adjust_p_values(p, "bh"),
                               stats.false_discovery_control(p, method="bh"), rtol=1e-12)
    with pytest.raises(ValueError, match="unknown correction"):
        adjust_p_values(p, "holm")  # type: ignore[arg-type]


def test_bh_flags_more_features_than_bonferroni_when_many_move_a_little() -> None:
    rng = np.random.default_rng(11)
    names = [f"x{i}" for i in range(12)]
    reference = Reference.from_arrays(names, rng.normal(size=(20_000, 12)))
    window = rng.normal(size=(400, 12))
    window[:, :8] += 0.2
    # No effect floor here: the corrections alone decide.
    bonf = reference.evaluate(window, thresholds=Thresholds(correction="bonferroni",
                                                             min_effect=0.0))
    bh = reference.evaluate(window, thresholds=Thresholds(correction="bh", min_effect=0.0))
    assert set(bonf.drifted_features) <= set(bh.drifted_features)
    assert len(bh.drifted_features) > len(bonf.drifted_features)
    assert set(bh.drifted_features) <= set(names[:8])


def test_report_dict_has_the_contract_fields() -> None:
    rng = np.random.default_rng(2)
    reference = Reference.from_arrays(["a", "b"], rng.normal(size=(1000, 2)))
    report = reference.evaluate(rng.normal(size=(200, 2)) + np.array([1.0, 0.0])).as_dict()
    assert set(report) == {"status", "dataset_drift", "drifted_features", "changes",
                           "features", "correction", "thresholds"}
    assert report["thresholds"] == {"p_value": 0.05, "min_effect": 0.1, "min_rows": 50,
                                    "min_change": 0.05, "min_rate": 0.01,
                                    "unseen_alarm": 0.05, "min_shift_sd": 0.25,
                                    "min_shift_change_sd": 0.1}
    assert [c["feature"] for c in report["changes"]] == ["a"]
    assert report["changes"][0]["description"].startswith("mean +")
    feature = report["features"][0]
    assert set(feature) >= {"feature", "kind", "test", "statistic", "p_value",
                            "p_value_adjusted", "effect_size", "drifted"}
    assert report["drifted_features"] == ["a"]


def test_reference_refuses_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        Reference.from_arrays(["a"], np.array([[1.0], [np.nan]]))
