from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftloop.data import load_training_data
from driftloop.expectations import build_suite, validate
from driftloop.spec import load_spec
from tests.conftest import PENGUINS_SPEC


@pytest.fixture(scope="module")
def penguins() -> tuple[pd.DataFrame, dict]:
    spec = load_spec(PENGUINS_SPEC)
    frame = load_training_data(spec).frame[spec.feature_names]
    suite = build_suite(frame, list(spec.features.numeric), list(spec.features.categorical),
                        name="penguins")
    return frame, suite


def test_suite_describes_columns_types_ranges_and_categories(penguins) -> None:
    _, suite = penguins
    kinds = [e["type"] for e in suite["expectations"]]
    assert kinds.count("expect_column_values_to_be_between") == 4
    assert kinds.count("expect_column_values_to_be_in_set") == 2
    assert kinds.count("expect_column_values_to_not_be_null") == 6
    island = next(e for e in suite["expectations"]
                  if e["type"] == "expect_column_values_to_be_in_set"
                  and e["kwargs"]["column"] == "island")
    assert island["kwargs"]["value_set"] == ["Biscoe", "Dream", "Torgersen"]
    mass = next(e for e in suite["expectations"]
                if e["type"] == "expect_column_values_to_be_between"
                and e["kwargs"]["column"] == "body_mass_g")
    # 2700..6300 g widened by one span on each side, but never below zero.
    assert (mass["kwargs"]["min_value"], mass["kwargs"]["max_value"]) == (0.0, 9900.0)


def test_non_negative_training_data_never_allows_negatives() -> None:
    frame = pd.DataFrame({"width": [0.1, 2.5], "delta": [-1.0, 1.0]})
    suite = build_suite(frame, ["width", "delta"], [], name="s")
    bounds = {e["kwargs"]["column"]: (e["kwargs"]["min_value"], e["kwargs"]["max_value"])
              for e in suite["expectations"] if e["type"] == "expect_column_values_to_be_between"}
    assert bounds["width"] == (0.0, pytest.approx(4.9))
    assert bounds["delta"] == (-3.0, 3.0)


def test_training_data_and_drifted_data_pass(penguins) -> None:
    frame, suite = penguins
    assert validate(frame, suite).success
    drifted = frame.copy()
    drifted["body_mass_g"] = drifted["body_mass_g"] * 1.4  # heavier birds: drift, not breakage
    drifted["island"] = "Dream"
    report = validate(drifted, suite)
    assert report.success, report.summary()


@pytest.mark.parametrize(
    ("breakage", "fragment"),
    [
        (lambda f: f.assign(body_mass_g=f["body_mass_g"] * 1000), "body_mass_g"),
        (lambda f: f.assign(island="Atlantis"), "'island'"),
        (lambda f: f.assign(bill_depth_mm=np.nan), "'bill_depth_mm'"),
        (lambda f: f.drop(columns=["sex"]), "table columns to match set"),
        (lambda f: f.assign(flipper_length_mm=f["flipper_length_mm"].astype(str)),
         "'flipper_length_mm'"),
    ],
    ids=["units", "unknown-category", "nulls", "missing-column", "strings"],
)
def test_broken_data_fails_with_a_message_naming_it(penguins, breakage, fragment) -> None:
    frame, suite = penguins
    report = validate(breakage(frame.copy()), suite)
    assert not report.success
    assert fragment in report.summary()
    assert "FAILED" in report.to_html("window")


def test_empty_window_fails() -> None:
    report = validate(pd.DataFrame({"a": []}), {"name": "s", "expectations": []})
    assert not report.success
    assert report.rows == 0
