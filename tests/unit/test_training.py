from __future__ import annotations

from pathlib import Path

import pytest

from driftloop.data import load_training_data
from driftloop.errors import SpecError
from driftloop.spec import load_spec, parse_spec
from driftloop.tasks import get_task
from driftloop.training import build_pipeline, train
from tests.conftest import IRIS_SPEC, PENGUINS_SPEC


def _spec_with_estimator(cls: str, params: str = "{}") -> object:
    return parse_spec(f"""
name: t
data: {{source: sklearn:iris}}
target: species
features: {{numeric: [sepal_length, petal_length]}}
estimator: {{class: {cls}, params: {params}}}
""", origin=Path("/t.yaml"))


def test_iris_pipeline_passes_numerics_through() -> None:
    pipe = build_pipeline(load_spec(IRIS_SPEC))
    columns = pipe.named_steps["features"]
    assert [t[0] for t in columns.transformers] == ["numeric"]
    assert columns.transformers[0][1] == "passthrough"
    assert type(pipe.named_steps["estimator"]).__name__ == "RandomForestClassifier"
    assert pipe.named_steps["estimator"].n_estimators == 100


def test_penguins_pipeline_scales_and_one_hot_encodes_ignoring_unknowns() -> None:
    pipe = build_pipeline(load_spec(PENGUINS_SPEC))
    names = {name: (step, cols) for name, step, cols in pipe.named_steps["features"].transformers}
    assert type(names["numeric"][0]).__name__ == "StandardScaler"
    encoder, cols = names["categorical"]
    assert cols == ["island", "sex"]
    assert encoder.handle_unknown == "ignore"


@pytest.mark.parametrize("spec_path", [IRIS_SPEC, PENGUINS_SPEC], ids=["iris", "penguins"])
def test_training_on_both_specs_meets_the_gate_floor(spec_path: Path) -> None:
    spec = load_spec(spec_path)
    result = train(load_training_data(spec).frame, spec)
    metrics = result.metrics
    assert metrics[spec.gate.metric] >= spec.gate.min_value
    assert set(metrics) >= {"accuracy", "f1_weighted", "precision_weighted", "recall_weighted",
                            "confusion_matrix", "labels", "support"}
    matrix = metrics["confusion_matrix"]
    assert len(matrix) == len(result.labels) == 3
    assert sum(map(sum, matrix)) == metrics["support"] == len(result.split.x_test)
    # Stratified: every class appears in the holdout.
    assert all(sum(row) > 0 for row in matrix)


def test_training_with_unseen_category_at_predict_time() -> None:
    spec = load_spec(PENGUINS_SPEC)
    result = train(load_training_data(spec).frame, spec)
    row = result.split.x_test.head(1).copy()
    row["island"] = "Atlantis"
    assert result.model.predict_proba(row).shape == (1, 3)


def test_metrics_on_known_values() -> None:
    m = get_task("classification").score(["a", "a", "b", "b"], ["a", "b", "b", "b"], ["a", "b"])
    assert m["accuracy"] == 0.75
    assert m["confusion_matrix"] == [[1, 1], [0, 2]]
    assert m["recall_weighted"] == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("cls", "params", "message"),
    [
        ("nosuchpkg.Model", "{}", r"'nosuchpkg.Model' cannot be imported \(No module named"),
        ("sklearn.ensemble.NoSuchForest", "{}", r"sklearn.ensemble has no 'NoSuchForest'"),
        ("sklearn.preprocessing.StandardScaler", "{}",
         r"neither a classifier nor a regressor"),
        ("sklearn.ensemble.RandomForestClassifier", "{trees: 3}", r"rejects its params"),
    ],
)
def test_bad_estimators_are_named(cls: str, params: str, message: str) -> None:
    """At spec load where the class itself is wrong (the task is inferred from it), at
    build for params the class refuses."""
    with pytest.raises(SpecError, match=message):
        build_pipeline(_spec_with_estimator(cls, params))
