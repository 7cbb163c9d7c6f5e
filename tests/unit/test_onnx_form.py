from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from driftloop.data import load_training_data
from driftloop.inference import OnnxPredictor, SklearnPredictor
from driftloop.onnx_form import (
    UNKNOWN_CATEGORY,
    check_parity,
    convert,
    parity_rows,
    split_frame,
)
from driftloop.spec import load_spec, parse_spec
from driftloop.tasks.classification import PROBABILITY_TOLERANCE
from driftloop.training import train
from tests.conftest import IRIS_SPEC, PENGUINS_SPEC


def _trained(spec_path: Path):
    spec = load_spec(spec_path)
    frame = load_training_data(spec).frame
    return spec, frame, train(frame, spec)


@pytest.mark.parametrize("spec_path", [IRIS_SPEC, PENGUINS_SPEC], ids=["iris", "penguins"])
def test_conversion_keeps_parity_on_holdout_and_random_rows(spec_path: Path) -> None:
    spec, frame, result = _trained(spec_path)
    conversion = convert(spec, result.model, result.split.x_test,
                         frame[spec.feature_names])
    assert conversion.ok, conversion.parity.reason
    assert conversion.parity.rows_checked >= len(result.split.x_test) + 1000
    assert conversion.parity.max_abs_proba_diff < PROBABILITY_TOLERANCE
    assert conversion.parity.label_mismatches == 0
    # The two predictors agree on rows neither saw, unseen categories included.
    rows = parity_rows(spec, frame, 200, seed=99)
    onnx = OnnxPredictor(spec, conversion.model_bytes, result.labels)
    sk = SklearnPredictor(spec, result.model)
    numeric, categorical = split_frame(spec, rows)
    np.testing.assert_allclose(onnx.outputs(numeric, categorical),
                               sk.outputs(numeric, categorical), atol=PROBABILITY_TOLERANCE)


def test_parity_rows_cover_beyond_training_range_and_unseen_categories() -> None:
    spec, frame, _ = _trained(PENGUINS_SPEC)
    rows = parity_rows(spec, frame, 1000, seed=1)
    assert rows["body_mass_g"].max() > frame["body_mass_g"].max()
    assert rows["body_mass_g"].min() < frame["body_mass_g"].min()
    assert UNKNOWN_CATEGORY in set(rows["island"])


def test_parity_check_catches_a_different_model() -> None:
    spec, frame, result = _trained(IRIS_SPEC)
    good = convert(spec, result.model, result.split.x_test, frame[spec.feature_names])
    other_spec = spec.model_copy(update={"estimator": spec.estimator.model_copy(
        update={"params": {"n_estimators": 3, "random_state": 0, "max_depth": 1}})})
    other = train(frame, other_spec).model
    report = check_parity(spec, other, good.model_bytes, [result.split.x_test])
    assert not report.ok
    assert report.max_abs_proba_diff > 0.01
    assert "label mismatches" in report.reason


def test_unconvertible_estimator_falls_back_with_reason() -> None:
    spec = parse_spec("""
name: gp
data: {source: sklearn:iris}
target: species
features: {numeric: [sepal_length, petal_length]}
estimator: {class: sklearn.gaussian_process.GaussianProcessClassifier}
""", origin=Path("/gp.yaml"))
    frame = load_training_data(spec).frame
    result = train(frame, spec)
    conversion = convert(spec, result.model, result.split.x_test, frame[spec.feature_names])
    assert not conversion.ok
    assert conversion.model_bytes is None
    assert "GaussianProcessClassifier" in conversion.parity.reason
