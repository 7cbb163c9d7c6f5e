"""The promotion gate: floor, regression tolerance, overrides, bad figures."""

from __future__ import annotations

import math

import pytest

from driftloop.gate import GateError, GateResult, GateThresholds, decide
from driftloop.spec import load_spec
from tests.conftest import IRIS_SPEC, PENGUINS_SPEC

IRIS = GateThresholds.from_spec(load_spec(IRIS_SPEC))  # accuracy, floor 0.85, tolerance 0.02


def test_thresholds_come_from_the_spec_unless_overridden() -> None:
    assert (IRIS.metric, IRIS.min_value, IRIS.max_regression) == ("accuracy", 0.85, 0.02)
    penguins = GateThresholds.from_spec(load_spec(PENGUINS_SPEC), min_value=0.95)
    assert (penguins.metric, penguins.min_value, penguins.max_regression) == \
        ("f1_weighted", 0.95, 0.02)
    strict = GateThresholds.from_spec(load_spec(IRIS_SPEC), max_regression=0.0)
    assert strict.max_regression == 0.0 and strict.min_value == 0.85


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, math.inf, "0.9"])
def test_out_of_range_overrides_are_refused_by_name(bad: object) -> None:
    with pytest.raises(GateError, match="min_value must be a number in \\[0, 1\\]"):
        GateThresholds.from_spec(load_spec(IRIS_SPEC), min_value=bad)  # type: ignore[arg-type]
    with pytest.raises(GateError, match="max_regression"):
        GateThresholds.from_spec(load_spec(IRIS_SPEC), max_regression=bad)  # type: ignore[arg-type]


def test_better_challenger_passes_with_figures() -> None:
    result = decide(IRIS, 0.97, 0.66, champion_version="3", holdout_rows=48,
                    holdout="fresh labeled")
    assert result.passed
    assert result.reason == ("passed: accuracy 0.9700 >= floor 0.85 and within 0.02 of "
                             "champion v3 (0.6600) (on 48 fresh labeled rows)")
    assert (result.challenger, result.champion, result.champion_version) == (0.97, 0.66, "3")


def test_small_regression_within_tolerance_passes_and_edge_is_inclusive() -> None:
    assert decide(IRIS, 0.92, 0.93, holdout_rows=30).passed
    # Exactly at champion - tolerance (0.88 is not exactly 0.90 - 0.02 in floats).
    assert decide(IRIS, 0.88, 0.90, holdout_rows=30).passed
    assert decide(IRIS, 0.85, 0.86, holdout_rows=30).passed  # exactly at the floor


def test_regression_beyond_tolerance_is_rejected_even_above_the_floor() -> None:
    result = decide(IRIS, 0.90, 0.95, champion_version="2", holdout_rows=30)
    assert not result.passed
    assert result.reason == ("rejected: accuracy 0.9000 is 0.0500 below champion v2 (0.9500); "
                             "at most 0.02 is allowed (on 30 holdout rows)")


def test_below_floor_is_rejected_even_when_the_champion_is_worse() -> None:
    result = decide(IRIS, 0.80, 0.70, holdout_rows=30)
    assert not result.passed
    assert result.reason.startswith("rejected: accuracy 0.8000 is below the floor 0.85")
    assert "champion" not in result.reason


def test_both_rules_failing_are_both_named() -> None:
    result = decide(IRIS, 0.33, 0.97, champion_version="1", holdout_rows=30)
    assert not result.passed
    assert "below the floor 0.85" in result.reason
    assert "0.6400 below champion v1 (0.9700)" in result.reason


def test_without_champion_only_the_floor_applies() -> None:
    ok = decide(IRIS, 0.9, None, holdout_rows=30)
    assert ok.passed and "no champion to compare against" in ok.reason
    assert not decide(IRIS, 0.5, None, holdout_rows=30).passed


@pytest.mark.parametrize(("challenger", "champion"), [(math.nan, 0.9), (1.2, 0.9), (0.9, -0.1)])
def test_unjudgeable_scores_raise(challenger: float, champion: float) -> None:
    with pytest.raises(GateError, match="score must be a number in \\[0, 1\\]"):
        decide(IRIS, challenger, champion, holdout_rows=30)


def test_an_empty_holdout_cannot_be_judged() -> None:
    with pytest.raises(GateError, match="at least one holdout row"):
        decide(IRIS, 0.9, 0.9, holdout_rows=0)


def test_result_round_trips_and_tags_carry_every_figure() -> None:
    result = decide(IRIS, 0.9333, 0.9, champion_version="1", holdout_rows=30)
    assert GateResult.from_dict(result.as_dict()) == result
    tags = result.tags()
    assert tags == {
        "gate_passed": "true", "gate_reason": result.reason, "gate_metric": "accuracy",
        "gate_challenger": "0.933300", "gate_champion": "0.900000",
        "gate_champion_version": "1", "gate_min_value": "0.85",
        "gate_max_regression": "0.02", "gate_holdout_rows": "30", "gate_holdout": "holdout",
    }
    assert decide(IRIS, 0.9, None, holdout_rows=5).tags()["gate_champion"] == ""
