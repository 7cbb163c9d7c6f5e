"""The task seam (driftloop.tasks): what a spec may say per task, regression metrics and
their paired comparison, the gate read in a metric's direction, labels and parity."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftloop.errors import DataError, SpecError
from driftloop.gate import GateThresholds, compare_values, decide
from driftloop.gate.compare import error_metric
from driftloop.spec import load_spec, parse_spec
from driftloop.tasks import GATE_METRICS, TASKS, get_task, infer_task
from tests.conftest import IRIS_SPEC, MASS_SPEC

REGRESSION = get_task("regression")
CLASSIFICATION = get_task("classification")

BASE = """
name: m
data: {source: data.csv}
target: y
features: {numeric: [a, b], categorical: [c]}
estimator: {class: sklearn.linear_model.Ridge}
"""


def _parse(text: str):
    return parse_spec(text, origin=Path("/specs/t.yaml"))


def test_the_task_is_inferred_from_the_estimator_and_stated_in_the_spec() -> None:
    assert load_spec(IRIS_SPEC).task == "classification"
    spec = _parse(BASE + "gate: {max_value: 10, max_regression: 1}\n")
    assert spec.task == "regression" and spec.gate.metric == "rmse"
    assert "task: regression" in spec.to_yaml()  # a version's spec says it
    assert infer_task(__import__("sklearn.ensemble", fromlist=["x"]).RandomForestRegressor) \
        == "regression"
    # Every gate metric belongs to exactly one task: one list per task, one union; the
    # spec's (and the API's) task names are the registry's.
    assert sorted(GATE_METRICS) == sorted(m for t in TASKS.values() for m in t.metrics)
    from typing import get_args

    from driftloop.spec import TaskName

    assert get_args(TaskName) == tuple(TASKS)


@pytest.mark.parametrize(("extra", "message"), [
    ("gate: {metric: accuracy, min_value: 0.8}\n",
     r"gate.metric 'accuracy': it is a classification metric, and this spec's model is a "
     r"regression model \(sklearn.linear_model.Ridge\); use one of rmse, mae, mape, r2"),
    ("gate: {max_regression: 1}\n", r"gate.max_value is required for rmse .*ceiling"),
    ("gate: {min_value: 10, max_regression: 1}\n",
     r"gate.min_value: rmse: lower is better, so its threshold is gate.max_value"),
    ("gate: {max_value: 10}\n", r"gate.max_regression is required for rmse"),
    ("gate: {max_value: -1, max_regression: 1}\n", r"gate.max_value must be a finite number"),
    ("gate: {metric: r2, max_regression: 0.02}\n", r"gate.min_value is required for r2"),
    ("task: classification\n", r"task 'classification' does not match estimator "
                               r"'sklearn.linear_model.Ridge', a regression estimator"),
    ("task: ranking\n", r"task: Input should be 'classification' or 'regression'"),
])
def test_what_a_task_cannot_judge_is_refused_at_load(extra: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        _parse(BASE + extra)


def test_a_multi_output_target_and_a_classifier_with_a_regression_metric_are_refused() -> None:
    with pytest.raises(SpecError, match=r"multi-output targets are not supported"):
        _parse(BASE.replace("target: y", "target: [y, z]"))
    classifier = BASE.replace("sklearn.linear_model.Ridge",
                              "sklearn.linear_model.LogisticRegression")
    with pytest.raises(SpecError, match=r"'rmse': it is a regression metric"):
        _parse(classifier + "gate: {metric: rmse, max_value: 1, max_regression: 1}\n")


def test_a_regressor_without_a_numeric_target_is_refused_naming_a_value(
    tmp_path: Path,
) -> None:
    from driftloop.data import conform

    spec = _parse(BASE + "gate: {max_value: 10, max_regression: 1}\n")
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "c": ["x", "y"],
                          "y": ["12.5", "heavy"]})
    with pytest.raises(DataError, match=r"a regression target must be numeric; it has "
                                        r"non-numeric values \(e.g. 'heavy'\)"):
        conform(frame, spec, origin="data.csv")
    constant = frame.assign(y=[1.0, 1.0])
    with pytest.raises(DataError, match=r"target 'y' is constant"):
        conform(constant, spec, origin="data.csv")


def test_regression_metrics_on_resamples_equal_scikit_learns() -> None:
    from sklearn.metrics import (
        mean_absolute_error,
        mean_absolute_percentage_error,
        mean_squared_error,
        r2_score,
    )

    rng = np.random.default_rng(0)
    truth = rng.normal(100, 20, 200)
    predicted = truth + rng.normal(0, 5, 200)
    idx = rng.integers(0, 200, (4, 200))
    reference = {"rmse": lambda t, p: math.sqrt(mean_squared_error(t, p)),
                 "mae": mean_absolute_error, "mape": mean_absolute_percentage_error,
                 "r2": r2_score}
    for name, fn in reference.items():
        got = error_metric(name, truth, predicted)(idx)
        want = [fn(truth[i], predicted[i]) for i in idx]
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=name)
        whole = REGRESSION.score(truth, predicted, ["y"])[name]
        assert whole == pytest.approx(fn(truth, predicted), rel=1e-12)


def _models(shift: float, n: int = 300, seed: int = 1) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    truth = rng.normal(4000, 500, n)
    champion = truth + rng.normal(0, 300, n)
    challenger = truth + rng.normal(0, 300, n) * shift
    return truth, champion, challenger


def _thresholds(**gate: float) -> GateThresholds:
    spec = load_spec(MASS_SPEC)
    return GateThresholds.from_spec(spec, **gate)


def test_the_gate_reads_rmse_as_lower_is_better() -> None:
    t = _thresholds()
    truth, champion, better = _models(0.5)
    c = compare_values("rmse", truth, champion, better)
    assert c.difference < 0 and c.high < 0  # the challenger's error is lower
    result = decide(t, c.challenger, c, champion_version="1", holdout_rows=len(truth))
    assert result.outcome == "passed"
    assert "(lower is better)" in result.reason and "below +25 (non-inferior)" in result.reason
    assert "ceiling 450 cleared" in result.reason
    assert result.tags()["gate_direction"] == "lower"
    assert result.tags()["gate_max_value"] == "450" and result.tags()["gate_min_value"] == ""

    _, _, worse = _models(1.6)
    bad = compare_values("rmse", truth, champion, worse)
    rejected = decide(t, bad.challenger, bad, champion_version="1", holdout_rows=len(truth))
    assert rejected.outcome == "rejected"
    assert "worse than the champion by more than the 25 allowed" in rejected.reason
    assert rejected.significantly_worse()  # probation would roll it back


def test_a_ceiling_rejects_and_few_rows_are_not_enough_evidence() -> None:
    truth, champion, same = _models(1.0, n=30, seed=3)
    c = compare_values("rmse", truth, champion, same)
    unsure = decide(_thresholds(max_regression=60.0), c.challenger, c, champion_version="1",
                    holdout_rows=30)
    assert unsure.outcome == "insufficient_evidence"
    assert "reaches above +60: not enough evidence" in unsure.reason
    assert unsure.rows_needed is not None and unsure.rows_needed > 30
    capped = decide(_thresholds(max_value=100.0), c.challenger, c, champion_version="1",
                    holdout_rows=30)
    assert capped.outcome == "rejected" and "above the ceiling 100" in capped.reason
    alone = decide(_thresholds(), 300.0, None, holdout_rows=30)
    assert alone.reason.startswith("passed: rmse 300 <= ceiling 450; no champion")


def test_gate_overrides_respect_the_direction() -> None:
    from driftloop.gate import GateError

    with pytest.raises(GateError, match=r"min_value does not apply to rmse \(lower is "
                                        r"better\): override max_value"):
        _thresholds(min_value=0.5)
    with pytest.raises(GateError, match=r"max_regression must be a number >= 0 for rmse"):
        _thresholds(max_regression=-1.0)
    assert _thresholds(max_value=300.0).threshold == 300.0


def test_compare_values_refuses_what_it_cannot_compare() -> None:
    truth, champion, challenger = _models(1.0, n=10)
    with pytest.raises(ValueError, match="different rows"):
        compare_values("rmse", truth, champion[:5], challenger)
    with pytest.raises(ValueError, match="no rows"):
        compare_values("rmse", truth[:0], champion[:0], challenger[:0])
    with pytest.raises(ValueError, match="challenger's values are not all finite"):
        compare_values("rmse", truth, champion, np.full(10, np.nan))


@pytest.mark.parametrize(("value", "stored"), [
    (4200, "4200.0"), (4200.5, "4200.5"), ("4200.5", "4200.5"), (" 12 ", "12.0")])
def test_regression_labels_are_numbers_stored_as_one_text(value: object, stored: str) -> None:
    assert REGRESSION.parse_label(value, ["y"]) == stored


@pytest.mark.parametrize(("value", "message"), [
    ("heavy", "'heavy' is not a number"), ("nan", "not a finite number"),
    (True, "True is not a number"), (None, "None is not a number"),
    ([1], r"\[1\] is not a number")])
def test_labels_that_are_not_finite_numbers_are_refused(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        REGRESSION.parse_label(value, ["y"])
    with pytest.raises(ValueError, match="unknown label"):
        CLASSIFICATION.parse_label("tulip", ["setosa"])


def test_live_figures_per_task() -> None:
    assert CLASSIFICATION.live([("a", "a"), ("a", "b")]) == {"accuracy": 0.5}
    assert REGRESSION.live([("10.0", "12.0"), ("10.0", "7.0")]) == pytest.approx(
        {"mae": 2.5, "rmse": math.sqrt((4 + 9) / 2)})
    assert REGRESSION.live([]) == {"mae": None, "rmse": None}


def test_value_drift_of_a_regressor_outputs() -> None:
    from driftloop.drift import Thresholds
    from driftloop.drift.outputs import compare_values as drift_of_values

    rng = np.random.default_rng(0)
    reference = REGRESSION.reference_counts(pd.Series(rng.normal(4000, 500, 3000)))
    same = REGRESSION.reference_counts(pd.Series(rng.normal(4000, 500, 400)))
    moved = REGRESSION.reference_counts(pd.Series(rng.normal(4600, 500, 400)))
    t = Thresholds()
    calm = drift_of_values("prediction", reference, same, t)
    assert calm["status"] == "ok" and calm["kind"] == "numeric" and not calm["drifted"]
    drifted = drift_of_values("prediction", reference, moved, t)
    assert drifted["drifted"] and drifted["shift_sd"] > 1
    assert drift_of_values("prediction", {}, moved, t)["status"] == "no_reference"
    few = REGRESSION.reference_counts(pd.Series([1.0, 2.0]))
    assert drift_of_values("prediction", reference, few, t)["status"] == "insufficient_data"


def test_a_regressor_converts_to_onnx_with_values_within_the_tolerance() -> None:
    from driftloop.data import load_training_data
    from driftloop.onnx_form import convert
    from driftloop.training import train

    spec = load_spec(MASS_SPEC)
    data = load_training_data(spec)
    result = train(data.frame, spec)
    assert result.labels == ["body_mass_g"] and set(result.metrics) >= {"rmse", "r2"}
    onnx = convert(spec, result.model, result.split.x_test, data.frame[spec.feature_names])
    assert onnx.ok, onnx.parity.reason
    assert onnx.parity.tolerance == 1e-4 and onnx.parity.max_abs_proba_diff < 1e-4
    from driftloop.inference import OnnxPredictor, SklearnPredictor
    from driftloop.onnx_form import split_frame

    numeric, categorical = split_frame(spec, result.split.x_test)
    got = OnnxPredictor(spec, onnx.model_bytes, result.labels).outputs(numeric, categorical)
    want = SklearnPredictor(spec, result.model).outputs(numeric, categorical)
    assert got.shape == (len(numeric), 1)
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_the_target_range_is_in_the_suite_and_live_labels_are_checked_against_it() -> None:
    from driftloop.data import load_training_data
    from driftloop.expectations import spec_suite, validate, with_target

    spec = load_spec(MASS_SPEC)
    frame = load_training_data(spec).frame
    suite = spec_suite(frame, spec)
    assert suite["meta"]["target"] == "body_mass_g"
    window = frame[spec.feature_names].head(50).copy()
    window["label"] = [None] * 40 + ["4200.0"] * 10  # most rows have no label yet
    assert validate(with_target(window, suite), suite).success
    window["label"] = [None] * 20 + ["420000.0"] * 30  # grams read as milligrams
    report = validate(with_target(window, suite), suite)
    assert not report.success and "body_mass_g" in report.summary()
    ok, detail = REGRESSION.check_labels(pd.Series(["4200.0", "x"]), ["body_mass_g"])
    assert not ok and "not finite numbers: ['x']" in detail


def test_a_stated_task_loads_without_importing_the_estimator() -> None:
    """A registered version's spec states its task: a server that cannot import the
    estimator still reads the spec (and refuses the model when it loads it, a 422)."""
    missing = BASE.replace("sklearn.linear_model.Ridge", "nosuchpkg.Model")
    spec = _parse("task: regression\n" + missing + "gate: {max_value: 10, max_regression: 1}\n")
    assert spec.task == "regression"
    with pytest.raises(SpecError, match=r"cannot be imported .*so the task cannot be inferred"):
        _parse(missing + "gate: {max_value: 10, max_regression: 1}\n")
