"""The promotion gate: the floor, the paired comparison's three outcomes, superiority,
overrides, and figures it cannot judge."""

from __future__ import annotations

import math

import numpy as np
import pytest

from driftloop.gate import (
    OUTCOME_INSUFFICIENT,
    OUTCOME_PASSED,
    OUTCOME_REJECTED,
    Comparison,
    GateError,
    GateResult,
    GateThresholds,
    decide,
)
from driftloop.gate import (
    compare_classes as compare,
)
from driftloop.gate.paired import newcombe_interval
from driftloop.spec import load_spec
from tests.conftest import IRIS_SPEC, PENGUINS_SPEC

IRIS = GateThresholds.from_spec(load_spec(IRIS_SPEC))  # accuracy, floor 0.85, margin 0.02
LABELS = ["a", "b", "c"]


def paired(rows: int, *, both: int, champion_only: int, challenger_only: int) -> Comparison:
    """A comparison over ``rows`` rows with the given 2x2 table (the rest: both wrong)."""
    truth = np.array(["a"] * rows)
    champion = np.array(["b"] * rows)
    challenger = np.array(["b"] * rows)
    champion[:both + champion_only] = "a"
    challenger[:both] = "a"
    challenger[both + champion_only:both + champion_only + challenger_only] = "a"
    return compare("accuracy", truth, champion, challenger, LABELS)


def judge(c: Comparison, thresholds: GateThresholds = IRIS, **kw: object) -> GateResult:
    return decide(thresholds, c.challenger, c, champion_version="3", holdout_rows=c.rows,
                  **kw)  # type: ignore[arg-type]


def test_thresholds_come_from_the_spec_unless_overridden() -> None:
    assert (IRIS.metric, IRIS.min_value, IRIS.max_regression, IRIS.require,
            IRIS.confidence) == ("accuracy", 0.85, 0.02, "non_inferiority", 0.95)
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


def test_a_clearly_better_challenger_passes_and_the_reason_states_every_figure() -> None:
    """The demo's case: 62 fresh rows, the challenger right on 14 rows the champion missed."""
    c = paired(62, both=46, champion_only=0, challenger_only=14)
    result = judge(c, holdout="fresh labeled")
    assert result.outcome == OUTCOME_PASSED and result.passed
    assert result.reason == (
        f"passed: accuracy 0.9677 vs 0.7419 for champion v3 on the same 62 fresh labeled "
        f"rows: +0.2258, 95 % interval [{c.low:+.4f}, {c.high:+.4f}] above -0.02 "
        "(non-inferior); exact McNemar p=0.00012 (14 rows only the challenger got right, "
        "0 only the champion); floor 0.85 cleared")
    assert 0.1 < c.low < 0.2258 < c.high < 0.35
    assert result.p_value == pytest.approx(2 * 0.5 ** 14)
    assert (result.champion_only, result.challenger_only, result.rows_needed) == (0, 14, None)


def test_too_few_rows_is_its_own_outcome_with_the_rows_it_would_need() -> None:
    """Two models that agree on all 30 holdout rows cannot show a 2-point margin."""
    c = paired(30, both=28, champion_only=0, challenger_only=0)
    result = judge(c)
    assert result.outcome == OUTCOME_INSUFFICIENT and not result.passed
    assert result.reason.startswith("not enough evidence: accuracy 0.9333 vs 0.9333 ")
    assert f"reaches below -0.02: not enough evidence that it is non-inferior (n=30, " \
        f"need ≈{result.rows_needed})" in result.reason
    assert result.rows_needed is not None and result.rows_needed > 300
    assert result.tags()["gate_outcome"] == OUTCOME_INSUFFICIENT
    assert result.flat_metrics()["gate_insufficient_evidence"] == 1.0


def test_the_rows_needed_are_about_what_the_same_table_needs() -> None:
    """Scale the observed table to the estimate: the interval's lower end lands near the
    margin (the estimate assumes the difference stays as observed)."""
    c = paired(100, both=85, champion_only=3, challenger_only=4)
    need = judge(c).rows_needed
    assert need is not None
    k = need / 100
    low, _ = newcombe_interval(round(85 * k), round(3 * k), round(4 * k), round(8 * k))
    assert -0.025 < low < -0.015


def test_a_challenger_worse_than_the_margin_is_rejected_even_above_the_floor() -> None:
    c = paired(200, both=180, champion_only=15, challenger_only=1)
    result = judge(c)
    assert result.outcome == OUTCOME_REJECTED
    assert "worse than the champion by more than the 0.02 allowed" in result.reason
    assert "floor 0.85 cleared" in result.reason and result.rows_needed is None


def test_below_the_floor_is_rejected_even_when_clearly_better_than_the_champion() -> None:
    c = paired(100, both=40, champion_only=0, challenger_only=40)
    result = judge(c)
    assert result.outcome == OUTCOME_REJECTED
    assert result.reason.startswith("rejected: accuracy 0.8000 vs 0.4000")
    assert result.reason.endswith("accuracy 0.8000 is below the floor 0.85")


def test_superiority_needs_the_interval_above_zero() -> None:
    superior = GateThresholds("accuracy", 0.5, 0.02, require="superiority")
    better = judge(paired(300, both=250, champion_only=5, challenger_only=30), superior)
    assert better.passed and "above 0 (superior)" in better.reason
    # Non-inferior by the margin, but not better: rejected, more rows would not help.
    same = judge(paired(300, both=250, champion_only=10, challenger_only=10), superior)
    assert same.outcome == OUTCOME_REJECTED
    assert "not better than the champion (superiority required)" in same.reason
    slightly = judge(paired(60, both=50, champion_only=1, challenger_only=3), superior)
    assert slightly.outcome == OUTCOME_INSUFFICIENT and "that it is superior" in slightly.reason


def test_without_champion_only_the_floor_applies() -> None:
    ok = decide(IRIS, 0.9, None, holdout_rows=30)
    assert ok.passed and ok.reason == ("passed: accuracy 0.9000 >= floor 0.85; no champion to "
                                       "compare against (on 30 holdout rows)")
    low = decide(IRIS, 0.5, None, holdout_rows=30)
    assert low.outcome == OUTCOME_REJECTED and "below the floor 0.85" in low.reason
    assert low.test is None and low.tags()["gate_champion"] == ""


@pytest.mark.parametrize("challenger", [math.nan, 1.2, -0.1])
def test_unjudgeable_scores_raise(challenger: float) -> None:
    with pytest.raises(GateError, match="score must be a number in \\[0, 1\\]"):
        decide(IRIS, challenger, None, holdout_rows=30)


def test_an_empty_holdout_or_a_comparison_of_other_rows_cannot_be_judged() -> None:
    with pytest.raises(GateError, match="at least one holdout row"):
        decide(IRIS, 0.9, None, holdout_rows=0)
    c = paired(30, both=28, champion_only=0, challenger_only=0)
    with pytest.raises(GateError, match="the comparison covers 30 rows, the gate 31"):
        decide(IRIS, 0.9, c, holdout_rows=31)
    with pytest.raises(GateError, match="gate require must be one of non_inferiority, "
                                        "superiority"):
        decide(GateThresholds("accuracy", 0.8, 0.02, require="maybe"), 0.9, c,
               holdout_rows=30)


def test_result_round_trips_and_tags_carry_every_figure() -> None:
    c = paired(62, both=46, champion_only=0, challenger_only=14)
    result = judge(c)
    assert GateResult.from_dict(result.as_dict()) == result
    tags = result.tags()
    assert tags == {
        "gate_passed": "true", "gate_outcome": "passed", "gate_reason": result.reason,
        "gate_metric": "accuracy", "gate_challenger": "0.967742",
        "gate_champion": "0.741935", "gate_champion_version": "3", "gate_min_value": "0.85",
        "gate_max_value": "", "gate_direction": "higher",
        "gate_max_regression": "0.02", "gate_require": "non_inferiority",
        "gate_confidence": "0.95", "gate_test": "mcnemar", "gate_difference": "0.225806",
        "gate_interval": f"[{c.low:.6f}, {c.high:.6f}]", "gate_p_value": "0.00012207",
        "gate_rows_needed": "", "gate_holdout_rows": "62", "gate_holdout": "holdout",
    }
    assert result.flat_metrics() == {
        "gate_passed": 1.0, "gate_insufficient_evidence": 0.0,
        "gate_difference": pytest.approx(14 / 62), "gate_interval_low": c.low,
        "gate_interval_high": c.high, "gate_p_value": pytest.approx(2 * 0.5 ** 14)}
