from __future__ import annotations

from pathlib import Path

import pytest

from driftloop.errors import SpecError
from driftloop.spec import load_spec, parse_spec
from tests.conftest import IRIS_SPEC, PENGUINS_SPEC

VALID = """
name: m
data: {source: sklearn:iris}
target: species
features: {numeric: [a, b], categorical: [c]}
estimator: {class: sklearn.linear_model.LogisticRegression}
"""


def _parse(text: str) -> object:
    return parse_spec(text, origin=Path("/specs/test.yaml"))


def test_shipped_specs_load() -> None:
    iris = load_spec(IRIS_SPEC)
    assert iris.name == "iris-classifier"
    assert iris.feature_names == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert iris.estimator.class_path == "sklearn.ensemble.RandomForestClassifier"
    penguins = load_spec(PENGUINS_SPEC)
    assert penguins.features.categorical == ["island", "sex"]
    assert penguins.data_path() == PENGUINS_SPEC.parent / "data" / "penguins.csv"
    assert penguins.gate.metric == "f1_weighted"


def test_defaults_and_hash_ignore_formatting() -> None:
    spec = _parse(VALID)
    assert spec.split.holdout_fraction == 0.2
    assert spec.gate.metric == "accuracy"
    reformatted = _parse(VALID.replace("{numeric: [a, b], categorical: [c]}",
                                       "\n  numeric:\n    - a\n    - b\n  categorical: [c]"))
    assert reformatted.content_hash() == spec.content_hash()
    changed = _parse(VALID.replace("[a, b]", "[a, d]"))
    assert changed.content_hash() != spec.content_hash()


def test_missing_file_names_path(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"model spec not found: .*nope\.yaml"):
        load_spec(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: [unclosed", r"not valid YAML"),
        ("- a\n- b", r"expected a mapping"),
        (VALID + "colour: red\n", r"colour: Extra inputs are not permitted"),
        (VALID.replace("sklearn:iris", "data.txt"), r"data.source: .*neither"),
        (VALID.replace("[a, b]", "[a, a]"), r"listed more than once: a"),
        (VALID.replace("target: species", "target: a"), r"target 'a' is also listed"),
        (VALID.replace("{numeric: [a, b], categorical: [c]}", "{}"),
         r"at least one numeric or categorical feature"),
        (VALID.replace("sklearn.linear_model.LogisticRegression", "LogisticRegression"),
         r"dotted import path"),
        (VALID + "gate: {min_value: 1.5}\n", r"yaml: gate.min_value must be in \[0, 1\]"),
        (VALID + "gate: {metric: auc}\n", r"gate.metric 'auc': unknown metric; use one of "),
        (VALID + "split: {holdout_fraction: 0}\n", r"split.holdout_fraction"),
        (VALID.replace("name: m", "name: 'bad name!'"), r"name: String should match"),
        (VALID.replace("target: species\n", ""), r"target: Field required"),
    ],
)
def test_invalid_specs_give_one_line_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        _parse(text)
    assert "\n" not in str(info.value)
    assert "/specs/test.yaml" in str(info.value)
