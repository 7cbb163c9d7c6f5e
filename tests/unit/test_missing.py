"""Missing values through the core: the spec's ``features.nullable``, conforming data, the
model's imputation (sklearn and ONNX agree), the log (null in, null out), refusal counts,
the expectation suite, and the drift answer's missing and refused rates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftloop.data import conform
from driftloop.drift import Reference, Thresholds
from driftloop.errors import SpecError
from driftloop.expectations import spec_suite, validate
from driftloop.missing import MISSING_CATEGORY, fill_categorical, is_missing, to_wire
from driftloop.predlog import LogWriter, PredictionLog, rows_for, to_micros
from driftloop.spec import ModelSpec, parse_spec

SPEC = """
name: gappy
data: {source: x.csv}
target: y
features: {numeric: [a, b], categorical: [c, d], nullable: %s}
estimator:
  class: sklearn.ensemble.RandomForestClassifier
  params: {n_estimators: 21, random_state: 0}
"""
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def _spec(nullable: str = "[b, d]") -> ModelSpec:
    return parse_spec(SPEC % nullable, origin=Path("/tmp/gappy.yaml"))


def _frame(n: int, seed: int, gaps: float = 0.2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                          "c": rng.choice(["x", "y", "z"], n).astype(object),
                          "d": rng.choice(["p", "q"], n).astype(object)})
    frame["y"] = np.where(frame["a"] + frame["b"] > 0, "hi", "lo")
    frame.loc[rng.random(n) < gaps, "b"] = np.nan
    frame.loc[rng.random(n) < gaps, "d"] = None
    return frame


@pytest.mark.parametrize(("nullable", "message"), [
    ("[b, nope]", "features.nullable names unknown feature(s) nope (features: a, b, c, d)"),
    ("[b, b]", "features.nullable lists a feature more than once"),
])
def test_nullable_must_name_each_feature_once(nullable: str, message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _spec(nullable)


def test_conform_keeps_gaps_only_where_the_spec_allows_them() -> None:
    frame = _frame(200, 1)
    frame.loc[0, "a"] = np.nan  # not nullable: this row goes
    frame.loc[1, "c"] = None
    loaded = conform(frame, _spec(), origin="t")
    assert loaded.rows_dropped_missing == 2
    assert loaded.frame["b"].isna().sum() == frame.loc[2:, "b"].isna().sum() > 0
    assert (loaded.frame["d"] == MISSING_CATEGORY).sum() == frame.loc[2:, "d"].isna().sum()
    assert loaded.frame[["a", "c"]].notna().all().all()
    again = conform(loaded.frame, _spec(), origin="t")  # idempotent (retrain re-conforms)
    assert again.frame.equals(loaded.frame) and again.rows_dropped_missing == 0
    # Without nullable, every row with a gap is dropped, as before.
    strict = conform(frame, _spec("[]"), origin="t")
    assert strict.frame.notna().all().all() and MISSING_CATEGORY not in set(strict.frame["d"])


def test_the_model_imputes_and_its_onnx_form_agrees_on_rows_with_gaps() -> None:
    from driftloop.candidate import build_candidate
    from driftloop.data import LoadedData
    from driftloop.inference import OnnxPredictor
    from driftloop.settings import Settings

    spec = _spec()
    loaded = conform(_frame(600, 2), spec, origin="t")
    candidate = build_candidate(spec, LoadedData(loaded.frame, 600, 0), Settings())
    assert candidate.onnx.ok, candidate.onnx.parity.reason
    assert candidate.metrics["accuracy"] > 0.8
    rows = conform(_frame(300, 3, gaps=0.5), spec, origin="t").frame
    numeric = rows[["a", "b"]].to_numpy(dtype=np.float64)
    assert np.isnan(numeric[:, 1]).sum() > 100
    onnx = OnnxPredictor(spec, candidate.onnx.model_bytes, candidate.labels)
    got = onnx.outputs(numeric, rows[["c", "d"]].to_numpy(dtype=object))
    want = candidate.model.predict_proba(rows[spec.feature_names])
    assert np.abs(got - want).max() < 1e-5
    # The suite: no not-null expectation for the nullable features, one for the others.
    not_null = {e["kwargs"]["column"] for e in candidate.suite["expectations"]
                if e["type"] == "expect_column_values_to_not_be_null"}
    assert not_null == {"a", "c"}
    in_set = next(e for e in candidate.suite["expectations"]
                  if e["type"] == "expect_column_values_to_be_in_set"
                  and e["kwargs"]["column"] == "d")
    assert in_set["kwargs"]["value_set"] == ["p", "q"]


def test_the_suite_passes_missing_nullable_values_and_fails_a_missing_required_one() -> None:
    spec = _spec()
    frame = conform(_frame(300, 4), spec, origin="t").frame
    suite = spec_suite(frame, spec)
    assert validate(frame, suite).success  # half the gaps are the missing category: fine
    # A nullable numeric feature null in every row, as JSON brings it (object dtype).
    silent = frame.replace({MISSING_CATEGORY: None})
    silent["b"] = pd.Series([None] * len(silent), dtype=object)
    assert validate(silent, suite).success
    broken = frame.copy()
    broken.loc[:5, "a"] = np.nan
    report = validate(broken, suite)
    assert not report.success
    assert [f.column for f in report.failures] == ["a"]
    assert report.failures[0].expectation == "expect_column_values_to_not_be_null"


def test_missing_values_round_trip_through_the_log_as_null(log_url: str) -> None:
    log = PredictionLog(log_url)
    numeric = np.array([[1.0, np.nan], [2.0, 3.0]])
    categorical = np.array([["x", MISSING_CATEGORY], ["y", "p"]], dtype=object)
    rows = rows_for(to_micros(T0), ["r1", "r2"], "gappy", "1", numeric, categorical,
                    ["hi", "lo"], np.array([[0.9, 0.1], [0.2, 0.8]]), ["hi", "lo"])
    assert json.loads(rows[0][5]) == ["x", None]  # stored as null, not the marker
    log.write_rows(rows)
    window = log.interval_window("gappy", T0, T0 + timedelta(seconds=1), 2, 2)
    assert np.isnan(window.numeric[0, 1]) and window.numeric[1, 1] == 3.0
    assert window.categorical.tolist() == [["x", MISSING_CATEGORY], ["y", "p"]]
    page, total = log.interval_rows("gappy", T0, T0 + timedelta(seconds=1), limit=10,
                                    offset=0, numeric=["a", "b"], categorical=["c", "d"])
    assert total == 2
    assert [(r["b"], r["d"]) for r in page] == [(None, None), (3.0, "p")]


def test_refusals_are_counted_by_the_writer_and_summed_per_window(log_url: str) -> None:
    log = PredictionLog(log_url)
    writer = LogWriter(log, flush_interval=0.05)
    writer.start()
    try:
        start = datetime.now(UTC) - timedelta(minutes=1)
        writer.refuse("gappy", "a", "missing", 3)
        writer.refuse("gappy", "a", "missing", 2)
        writer.refuse("gappy", "c", "type", 1)
        writer.refuse("other", "a", "missing", 7)  # another model's refusals stay its own
        assert writer.flush()
        end = datetime.now(UTC) + timedelta(minutes=1)
        assert log.refusal_counts("gappy", start, end) == {"a": {"missing": 5},
                                                           "c": {"type": 1}}
        assert log.refusal_counts("gappy", end, end + timedelta(hours=1)) == {}
    finally:
        assert writer.stop() == 0
    # Retention takes them with everything else.
    log.purge(to_micros(datetime.now(UTC) + timedelta(hours=1)))
    assert log.refusal_counts("gappy", start, end) == {}


def _gappy_reference(ref_missing: float = 0.02) -> tuple[Reference, np.random.Generator]:
    rng = np.random.default_rng(11)
    numeric = rng.normal(size=(8000, 2))
    numeric[rng.random(8000) < ref_missing, 1] = np.nan
    cats = rng.choice(["x", "y"], (8000, 2)).astype(object)
    cats[rng.random(8000) < ref_missing, 1] = None
    return Reference.from_arrays(["a", "b"], numeric, ["c", "d"], cats,
                                 nullable=["b", "d"]), rng


def _window(rng: np.random.Generator, n: int, missing_b: float, missing_d: float
            ) -> tuple[np.ndarray, np.ndarray]:
    numeric = rng.normal(size=(n, 2))
    numeric[rng.random(n) < missing_b, 1] = np.nan
    cats = rng.choice(["x", "y"], (n, 2)).astype(object)
    cats[rng.random(n) < missing_d, 1] = MISSING_CATEGORY
    return numeric, cats


def test_a_missing_rate_like_the_references_is_no_change() -> None:
    reference, rng = _gappy_reference()
    result = reference.evaluate(*_window(rng, 3000, 0.02, 0.02))
    assert result.dataset_drift is False and result.changes == []
    by = {f.feature: f for f in result.features}
    assert by["b"].reference_missing_rate == pytest.approx(0.02, abs=0.005)
    assert by["b"].missing_rate == pytest.approx(0.02, abs=0.01)
    assert by["a"].missing_rate is None and by["a"].missing_p_value is None
    # A missing categorical is not an unseen category.
    assert by["d"].unseen_rate == 0.0 and by["d"].missing_rate is not None


def test_a_rising_missing_rate_drifts_and_is_described() -> None:
    reference, rng = _gappy_reference()
    result = reference.evaluate(*_window(rng, 3000, 0.12, 0.05))
    by = {f.feature: f for f in result.features}
    assert result.drifted_features == ["b"]  # 2% -> 12%: over the 5-point alarm
    assert by["b"].description == f"missing 2% -> {by['b'].missing_rate:.0%}"
    # d: 2% -> 5%, significant, under the alarm: a change, named, not the alarm.
    assert by["d"].changed and not by["d"].drifted
    assert by["d"].description.endswith(f"missing 2% -> {by['d'].missing_rate:.0%}")
    assert [c.feature for c in result.changes] == ["b", "d"]
    # The distribution test reads the present values only: b's values did not move.
    assert by["b"].effect_size < 0.05 and by["b"].p_value > 0.001


def test_a_column_missing_everywhere_in_the_window_is_all_missing_rate() -> None:
    reference, rng = _gappy_reference()
    numeric, cats = _window(rng, 500, 1.0, 1.0)
    result = reference.evaluate(numeric, cats)
    by = {f.feature: f for f in result.features}
    assert by["b"].missing_rate == 1.0 and by["b"].drifted and by["b"].p_value == 1.0
    assert by["d"].missing_rate == 1.0 and by["d"].drifted
    assert by["b"].description == "missing 2% -> 100%"


def test_refused_rows_are_a_named_change_never_the_alarm() -> None:
    reference, rng = _gappy_reference()
    result = reference.evaluate(*_window(rng, 1000, 0.02, 0.02), refused={"a": 100})
    by = {f.feature: f for f in result.features}
    assert by["a"].refused_rows == 100 and by["a"].refused_rate == pytest.approx(100 / 1100)
    assert by["a"].changed and not by["a"].drifted and not result.dataset_drift
    assert by["a"].description == "9% of rows refused (bad or missing value)"
    # Under min_rate (1%) it is not worth a sentence.
    few = reference.evaluate(*_window(rng, 1000, 0.02, 0.02), refused={"a": 5},
                             thresholds=Thresholds())
    assert not {f.feature: f for f in few.features}["a"].changed


def test_nan_in_a_feature_that_is_not_nullable_is_refused_by_the_reference() -> None:
    with pytest.raises(ValueError, match=r"NaN values in a \(not in features.nullable\)"):
        Reference.from_arrays(["a"], np.array([[1.0], [np.nan]]))
    with pytest.raises(ValueError, match="misses values of c"):
        Reference.from_arrays([], np.empty((2, 0)), ["c"], np.array([["x"], [None]],
                                                                     dtype=object))


def test_missing_markers() -> None:
    assert all(map(is_missing, [None, float("nan"), pd.NA, MISSING_CATEGORY]))
    assert not any(map(is_missing, ["", "x", 0.0, 0]))
    assert fill_categorical(np.array([["x", None], [np.nan, "y"]], dtype=object)).tolist() == \
        [["x", MISSING_CATEGORY], [MISSING_CATEGORY, "y"]]
    assert [to_wire(v) for v in (float("nan"), MISSING_CATEGORY, "x", 1.5)] == \
        [None, None, "x", 1.5]


def test_a_nan_category_is_missing_not_an_unseen_category() -> None:
    """pandas 3 stores a missing string as NaN, pandas 2 as None: both are missing."""
    reference, rng = _gappy_reference()
    numeric, cats = _window(rng, 1000, 0.02, 0.0)
    cats[:100, 1] = np.nan
    cats[100:200, 1] = None
    d = {f.feature: f for f in reference.evaluate(numeric, cats).features}["d"]
    assert d.unseen_rate == 0.0 and d.missing_rate == pytest.approx(0.2)
