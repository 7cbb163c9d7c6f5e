from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from driftloop.data import conform, fingerprint, load_builtin, load_training_data
from driftloop.errors import DataError
from driftloop.spec import load_spec, parse_spec
from tests.conftest import IRIS_SPEC, PENGUINS_SPEC


def _csv_spec(tmp_path: Path, source: str, target: str = "y") -> object:
    text = f"""
name: t
data: {{source: {source}}}
target: {target}
features: {{numeric: [x1], categorical: [c]}}
estimator: {{class: sklearn.linear_model.LogisticRegression}}
"""
    return parse_spec(text, origin=tmp_path / "spec.yaml")


def test_builtin_iris_has_snake_case_columns_and_names() -> None:
    frame = load_builtin("iris")
    assert list(frame.columns) == [
        "sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    assert set(frame["species"]) == {"setosa", "versicolor", "virginica"}
    assert len(frame) == 150


def test_unknown_builtin_lists_known_ones() -> None:
    with pytest.raises(DataError, match=r"unknown built-in dataset 'sklearn:mnist'.*sklearn:iris"):
        load_builtin("mnist")


def test_penguins_drops_incomplete_rows_and_keeps_categories() -> None:
    data = load_training_data(load_spec(PENGUINS_SPEC))
    assert data.rows_read == 344
    assert data.rows_dropped_missing == 11
    assert set(data.frame["island"]) == {"Biscoe", "Dream", "Torgersen"}
    assert data.frame["bill_length_mm"].dtype == "float64"
    assert not data.frame.isna().any().any()


def test_relative_csv_and_parquet_paths(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x1": [1.0, 2.0, 3.0, 4.0], "c": list("abab"), "y": list("nmnm")})
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    for name in ("d.csv", "d.parquet"):
        data = load_training_data(_csv_spec(tmp_path, name))
        assert data.rows == 4
        assert list(data.frame.columns) == ["x1", "c", "y"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data file not found: .*missing\.csv"):
        load_training_data(_csv_spec(tmp_path, "missing.csv"))


def test_missing_target_and_missing_feature(tmp_path: Path) -> None:
    pd.DataFrame({"x1": [1.0, 2.0], "c": ["a", "b"], "y": ["n", "m"]}).to_csv(
        tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"target 'label' not in the data \(it has: x1, c, y\)"):
        load_training_data(_csv_spec(tmp_path, "d.csv", target="label"))
    pd.DataFrame({"x1": [1.0, 2.0], "y": ["n", "m"]}).to_csv(tmp_path / "e.csv", index=False)
    with pytest.raises(DataError, match=r"columns 'c' not in the data"):
        load_training_data(_csv_spec(tmp_path, "e.csv"))


def test_non_numeric_values_in_numeric_feature(tmp_path: Path) -> None:
    pd.DataFrame({"x1": ["1.0", "abc"], "c": ["a", "b"], "y": ["n", "m"]}).to_csv(
        tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"numeric feature 'x1' has non-numeric values.*'abc'"):
        load_training_data(_csv_spec(tmp_path, "d.csv"))


def test_single_class_and_empty_data_are_refused(tmp_path: Path) -> None:
    spec = _csv_spec(tmp_path, "d.csv")
    one_class = pd.DataFrame({"x1": [1.0, 2.0], "c": ["a", "b"], "y": ["n", "n"]})
    with pytest.raises(DataError, match="fewer than two classes"):
        conform(one_class, spec, origin="d.csv")
    all_missing = pd.DataFrame({"x1": [None, None], "c": ["a", "b"], "y": ["n", "m"]})
    with pytest.raises(DataError, match="no complete rows"):
        conform(all_missing, spec, origin="d.csv")


def test_fingerprint_is_stable_and_content_sensitive() -> None:
    frame = load_training_data(load_spec(IRIS_SPEC)).frame
    assert fingerprint(frame) == fingerprint(frame.copy())
    changed = frame.copy()
    changed.loc[0, "sepal_length"] += 0.1
    assert fingerprint(changed) != fingerprint(frame)
    assert fingerprint(frame.rename(columns={"species": "label"})) != fingerprint(frame)
