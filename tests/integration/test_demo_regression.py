"""The whole loop on the bundled regression spec (the penguins' body mass): what
`make demo SPEC=specs/penguins-mass.yaml` shows, asserted. Stable traffic retrains nothing;
drifted traffic (larger birds, same weights) raises the live error, the drift monitor
retrains on the KFP local runner, the gate (RMSE, lower is better) promotes and the error
falls; broken data is refused.

In `make test-full` (a second demo run would take `make test` past its 10 minutes); `make
test` covers the regression steps one by one (tests/serving/test_regression.py,
tests/unit/test_tasks.py, tests/pipelines/test_regression_retrain.py).
"""

from __future__ import annotations

import pytest

from tests.integration.test_demo import run_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run_demo(tmp_path_factory.mktemp("demo-regression"), "--spec",
                    "specs/penguins-mass.yaml")


def _mae(served: dict, version: str) -> float:
    pairs = served["pairs_by_version"][version]
    return sum(abs(float(label) - float(value)) for label, value in pairs) / len(pairs)


@pytest.mark.full
def test_stable_traffic_retrains_nothing(demo: dict) -> None:
    stable = demo["phases"]["stable"]
    assert stable["decision"] == "no_retrain"
    assert stable["dag_state"] == "success"
    assert stable["drift"]["dataset_drift"] is False


@pytest.mark.full
def test_drift_raises_the_error_and_the_gate_promotes_a_better_regressor(demo: dict) -> None:
    drift = demo["phases"]["drift"]
    assert drift["decision"] == "retrain_parameters"
    assert drift["tasks"]["submit_retrain"] == "success"
    result = drift["retrain"]["result"]
    assert result["outcome"] == "promoted"
    assert (demo["champion_before"], demo["champion_after"]) == ("1", "2")
    gate = result["gate"]  # the version's gate_* tags
    assert gate["metric"] == "rmse" and gate["direction"] == "lower"
    assert gate["test"] == "bootstrap" and gate["outcome"] == "passed"
    assert float(gate["challenger"]) < float(gate["champion"])
    high = float(gate["interval"].strip("[]").split(",")[1])
    assert high < 25  # the interval of challenger - champion lies below +max_regression
    assert "(lower is better)" in gate["reason"] and "ceiling 450 cleared" in gate["reason"]
    before = _mae(drift["served"], "1")
    after = _mae(demo["after"], "2")
    stable = _mae(demo["phases"]["stable"]["served"], "1")
    assert before > 2 * stable  # the drift hurt the champion
    assert after < 0.6 * before  # the new champion recovers most of it
    tags = demo["versions"]["2"]
    assert tags["gate_direction"] == "lower" and tags["gate_max_value"] == "450"


@pytest.mark.full
def test_broken_data_is_refused(demo: dict) -> None:
    broken = demo["phases"]["broken"]
    assert broken["decision"] == "refused"
    assert broken["tasks"]["validate_window"] == "failed"
    assert broken["tasks"].get("submit_retrain") in (None, "upstream_failed")
    assert "bill_length_mm" in broken["validation"]["summary"]
    assert demo["champion_after"] == "2"


@pytest.mark.full
def test_the_summary_speaks_of_errors_not_accuracy(demo: dict) -> None:
    out = demo["_stdout"]
    assert "regression quality on live traffic" in out
    assert "mae " in out and "accuracy" not in out.split("regression quality")[1]
    assert "evaluation report" in out
