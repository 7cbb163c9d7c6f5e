"""The drift test registry: each test against scipy, the attribution of every real change,
and prediction and label drift."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from benchmarks.drift_streams import (
    CATEGORICAL,
    FEATURES,
    NULLABLE,
    NUMERIC,
    changed,
    reference,
    window,
)
from driftloop.drift import DEFAULT_TESTS, Reference, Thresholds, names
from driftloop.drift.anderson import ad_p_values, ad_statistics
from driftloop.drift.cvm import cvm_p_values, cvm_statistics
from driftloop.drift.outputs import compare_counts
from driftloop.drift.registry import TESTS, DriftTest, NumericRanks, get, register
from driftloop.errors import SpecError
from driftloop.spec import parse_spec


def _ranks(ref: np.ndarray, win: np.ndarray) -> NumericRanks:
    return NumericRanks.place(np.sort(ref)[None, :], win[:, None])


def _samples(kind: str, n: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "continuous":
        return rng.normal(size=n), rng.normal(0.1, 1.2, size=m)
    if kind == "rounded":
        return np.round(rng.normal(size=n), 1), np.round(rng.normal(0, 1.1, size=m), 1)
    return rng.integers(0, 6, n).astype(float), rng.integers(0, 7, m).astype(float)


def _pooled_cvm(ref: np.ndarray, win: np.ndarray) -> float:
    """The definition: nm/N^2 * sum over the pooled sample of (F_ref - F_win)^2."""
    n, m = len(ref), len(win)
    z = np.concatenate([ref, win])
    f = np.searchsorted(np.sort(ref), z, side="right") / n
    g = np.searchsorted(np.sort(win), z, side="right") / m
    return n * m / (n + m) ** 2 * float(((f - g) ** 2).sum())


@pytest.mark.parametrize(("n", "m"), [(40, 30), (1000, 300), (5000, 50), (20_000, 2000)])
def test_cvm_equals_scipy_on_continuous_samples(n: int, m: int) -> None:
    ref, win = _samples("continuous", n, m, n + m)
    t = cvm_statistics(_ranks(ref, win))
    want = stats.cramervonmises_2samp(ref, win, method="asymptotic")
    assert t[0] == pytest.approx(want.statistic, rel=1e-9)
    assert cvm_p_values(t, n, m)[0] == pytest.approx(want.pvalue, rel=1e-6, abs=1e-11)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-3, 3), min_size=2, max_size=60),
       st.lists(st.integers(-3, 3), min_size=2, max_size=60))
def test_cvm_equals_the_pooled_definition_with_any_ties(ref: list[int], win: list[int]) -> None:
    r, w = np.array(ref, dtype=float), np.array(win, dtype=float)
    assert cvm_statistics(_ranks(r, w))[0] == pytest.approx(_pooled_cvm(r, w), rel=1e-9,
                                                             abs=1e-12)


@pytest.mark.parametrize("kind", ["continuous", "rounded", "integers"])
@pytest.mark.parametrize(("n", "m"), [(50, 40), (2000, 500), (100_000, 10_000)])
def test_anderson_darling_equals_scipy_including_ties(kind: str, n: int, m: int) -> None:
    ref, win = _samples(kind, n, m, 3 * n + m)
    a2 = ad_statistics(_ranks(ref, win))[0]
    want = stats.anderson_ksamp([ref, win], midrank=False, method=None)
    # scipy reports the standardised statistic (A2 - 1) / sigma_N.
    from driftloop.drift.anderson import _variance

    assert (a2 - 1) / np.sqrt(_variance(n, m)) == pytest.approx(want.statistic, rel=1e-8,
                                                                 abs=1e-8)


def test_anderson_darling_p_values_follow_scipys_table_and_go_below_its_floor() -> None:
    rng = np.random.default_rng(4)
    ref = rng.normal(size=20_000)
    compared = 0
    for i in range(40):
        win = np.random.default_rng([4, i]).normal(0.12, 1, size=500)
        p = ad_p_values(ad_statistics(_ranks(ref, win)), 20_000, 500)[0]
        scipy_p = stats.anderson_ksamp([ref, win], midrank=False).pvalue
        if 0.001 < scipy_p < 0.25:  # inside scipy's table
            assert p == pytest.approx(scipy_p, abs=0.005)
            compared += 1
    assert compared >= 10
    far = rng.normal(0.5, 1, size=500)  # scipy caps at 0.001; the limit distribution goes on
    assert ad_p_values(ad_statistics(_ranks(ref, far)), 20_000, 500)[0] < 1e-6


def test_anderson_darling_sees_a_longer_tail_sooner_than_ks() -> None:
    rng = np.random.default_rng(5)
    ref = rng.lognormal(3, 0.5, 20_000)
    found = {"ks": 0, "anderson": 0}
    for i in range(40):
        win = np.random.default_rng([5, i]).lognormal(3, 0.5, 500)
        pick = np.random.default_rng([6, i]).random(500) < 0.10
        win[pick] *= 3
        for test in found:
            _, p = get(test, "numeric").numeric(_ranks(ref, win))  # type: ignore[misc]
            found[test] += int(p[0] < 0.05 / 7)
    assert found["anderson"] > found["ks"]
    assert found["anderson"] >= 36


def test_jensen_shannon_distance_and_g_test_p_value_match_scipy() -> None:
    ref = np.array([500, 300, 200, 0.0])
    win = np.array([40, 30, 10, 20.0])
    stat, p = get("jensen_shannon", "categorical").categorical(ref, win)  # type: ignore[misc]
    keep = (ref + win) > 0
    assert stat == pytest.approx(jensenshannon(ref / ref.sum(), win / win.sum(), base=2))
    g = stats.chi2_contingency(np.vstack([ref[keep], win[keep]]), correction=False,
                               lambda_="log-likelihood")
    assert p == pytest.approx(g.pvalue, rel=1e-9)


def test_the_registry_lists_tests_by_kind_and_refuses_unknown_or_twice() -> None:
    assert names("numeric") == ["anderson", "cvm", "ks"]
    assert names("categorical") == ["chi2", "jensen_shannon"]
    assert DEFAULT_TESTS == {"numeric": "anderson", "categorical": "chi2"}
    with pytest.raises(ValueError, match=r"unknown numeric drift test 'chi2' \(known: "
                                         r"anderson, cvm, ks\)"):
        get("chi2", "numeric")
    with pytest.raises(ValueError, match="registered twice"):
        register(DriftTest("ks", "numeric", "again", numeric=TESTS["ks"].numeric))


SPEC = """
name: m
data: {source: "sklearn:iris"}
target: species
features: {numeric: [sepal_length, petal_length], categorical: []}
estimator: {class: sklearn.linear_model.LogisticRegression}
"""


def test_a_spec_chooses_a_test_per_feature_and_bad_choices_are_refused() -> None:
    from pathlib import Path

    spec = parse_spec(SPEC + "drift: {tests: {petal_length: cvm}}", origin=Path("s.yaml"))
    assert spec.drift.tests == {"petal_length": "cvm"}
    rng = np.random.default_rng(0)
    ref = Reference.from_arrays(["sepal_length", "petal_length"], rng.normal(size=(500, 2)),
                                tests=spec.drift.tests)
    result = ref.evaluate(rng.normal(size=(100, 2)))
    assert [f.test for f in result.features] == ["anderson", "cvm"]
    for bad, message in (
        ("{tests: {petal_length: chi2}}", "unknown numeric drift test 'chi2'"),
        ("{tests: {sepal_width: ks}}", "drift tests given for unknown feature(s): sepal_width"),
        ("{tests: {petal_length: psi}}", "unknown numeric drift test 'psi'"),
    ):
        with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
            parse_spec(SPEC + f"drift: {bad}", origin=Path("s.yaml"))


def test_every_real_change_is_named_with_how_it_moved() -> None:
    """The benchmark's "several" stream at 2,000 rows: five features moved, two of them below
    the alarm's floors; all five are named, the unchanged two are not."""
    ref = Reference.from_frame(reference(), NUMERIC, CATEGORICAL, nullable=NULLABLE)
    frame = window("several", 2000, np.random.default_rng(11))
    result = ref.evaluate(frame[NUMERIC].to_numpy(float), frame[CATEGORICAL].to_numpy(object))
    by = {f.feature: f for f in result.features}
    assert {c.feature for c in result.changes} == changed("several")
    assert result.dataset_drift
    assert by["channel"].changed and "'web' 45% -> 3" in by["channel"].description
    assert by["score"].description.startswith("spread 0.")
    assert by["amount"].description.startswith("mean +0.3")
    assert not by["duration"].changed and not by["region"].changed
    # Drifted first, then by effect.
    flags = [c.drifted for c in result.changes]
    assert flags == sorted(flags, reverse=True)


def test_a_change_under_the_alarm_is_named_but_raises_no_alarm() -> None:
    ref_values = np.repeat(["web", "store", "phone", "partner"], [4500, 3000, 1500, 1000])
    win_values = np.repeat(["web", "store", "phone", "partner"], [1950, 1500, 1050, 500])
    ref = Reference.from_arrays([], np.empty((10_000, 0)), ["channel"], ref_values[:, None])
    result = ref.evaluate(np.empty((5000, 0)), win_values[:, None])
    (channel,) = result.features
    assert channel.effect_size == pytest.approx(0.06)
    assert channel.p_value_adjusted < 1e-10
    assert channel.changed and not channel.drifted and not result.dataset_drift
    assert channel.description == "'phone' 15% -> 21%, 'web' 45% -> 39%"
    assert [c.feature for c in result.changes] == ["channel"]


@pytest.mark.parametrize(("stream", "feature", "said"), [
    ("tail", "duration", "mean +"),
    ("new category", "region", "new category 'overseas' at 8%"),
    ("spread", "amount", "spread 1.6x the reference"),
])
def test_each_kind_of_change_raises_the_alarm_by_its_own_effect(stream: str, feature: str,
                                                                said: str) -> None:
    ref = Reference.from_frame(reference(), NUMERIC, CATEGORICAL, nullable=NULLABLE)
    frame = window(stream, 5000, np.random.default_rng(12))
    result = ref.evaluate(frame[NUMERIC].to_numpy(float), frame[CATEGORICAL].to_numpy(object))
    f = next(f for f in result.features if f.feature == feature)
    assert f.drifted and said in f.description, f
    if stream == "tail":  # few rows cross any one value; they moved far
        assert f.effect_size < Thresholds().min_effect <= f.shift_sd / 2.5
    if stream == "new category":
        assert f.effect_size < Thresholds().min_effect and f.unseen_rate >= 0.05


def test_drift_free_windows_raise_no_alarm_and_name_almost_nothing() -> None:
    ref = Reference.from_frame(reference(), NUMERIC, CATEGORICAL, nullable=NULLABLE)
    named = alarms = 0
    for i in range(60):
        frame = window("none-a", 500, np.random.default_rng([13, i]))
        result = ref.evaluate(frame[NUMERIC].to_numpy(float),
                              frame[CATEGORICAL].to_numpy(object))
        alarms += result.dataset_drift
        named += len(result.changes)
    assert alarms == 0
    assert named / (60 * len(FEATURES)) <= 0.02


def test_prediction_and_label_drift_from_counts() -> None:
    t = Thresholds()
    ref = {"a": 500, "b": 300, "c": 200}
    assert compare_counts("label", {}, {"a": 80}, t)["status"] == "no_reference"
    few = compare_counts("label", ref, {"a": 30}, t)
    assert few["status"] == "insufficient_data" and "30 label(s)" in few["message"]
    calm = compare_counts("prediction", ref, {"a": 250, "b": 150, "c": 100}, t)
    assert calm["status"] == "ok" and not calm["drifted"] and not calm["changed"]
    moved = compare_counts("prediction", ref, {"a": 100, "b": 150, "c": 200, "d": 50}, t)
    assert moved["drifted"] and moved["unseen_rate"] == pytest.approx(0.1)
    assert moved["description"].startswith("new category 'd' at 10%, 'a' 50% -> 20%")


@pytest.mark.parametrize("where", ["one above all", "all below", "all above"])
def test_anderson_darling_at_the_pooled_ends(where: str) -> None:
    rng = np.random.default_rng(8)
    ref, win = rng.normal(size=300), rng.normal(size=50)
    if where == "one above all":
        win[-1] = 10.0
    else:
        win += -10 if where == "all below" else 10
    from driftloop.drift.anderson import _variance

    a2 = ad_statistics(_ranks(ref, win))[0]
    want = stats.anderson_ksamp([ref, win], midrank=False, method=None).statistic
    assert (a2 - 1) / np.sqrt(_variance(300, 50)) == pytest.approx(want, rel=1e-9)
