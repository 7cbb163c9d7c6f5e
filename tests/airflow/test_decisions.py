"""The drift monitor's pure decisions: the window, the drift verdict, the branch, metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from driftloop_airflow import decisions
from driftloop_airflow.hooks.serving import parse_metrics
from driftloop_airflow.triggers.drift import window_verdict
from driftloop_airflow.window import Window, WindowError, iso, resolve_window

HOUR = timedelta(hours=1)
T10 = datetime(2026, 1, 1, 10, tzinfo=UTC)


def test_window_is_the_data_interval_unless_overridden() -> None:
    context = {"data_interval_start": T10, "data_interval_end": T10 + HOUR}
    assert resolve_window(context, {}, period=HOUR) == Window(T10, T10 + HOUR)
    override = {"window_start": "2026-01-01T12:30:00Z", "window_end": "2026-01-01T12:45:00"}
    assert resolve_window(context, override, period=HOUR).as_dict() == {
        "start": "2026-01-01T12:30:00+00:00", "end": "2026-01-01T12:45:00+00:00"}


def test_a_run_without_data_interval_takes_the_last_complete_period() -> None:
    """REST-triggered runs with logical_date null have no data interval."""
    run = SimpleNamespace(run_after=datetime(2026, 1, 1, 10, 42, tzinfo=UTC))
    context = {"data_interval_start": None, "data_interval_end": None, "dag_run": run}
    assert resolve_window(context, {}, period=HOUR) == Window(T10 - HOUR, T10)
    weekly = SimpleNamespace(timetable=SimpleNamespace(expression="0 0 * * 0"))
    week = resolve_window({**context, "dag": weekly}, {}, period=timedelta(weeks=1))
    # 2026-01-01 is a Thursday: the last complete Sunday-to-Sunday week.
    assert week == Window(datetime(2025, 12, 21, tzinfo=UTC), datetime(2025, 12, 28, tzinfo=UTC))
    on_the_hour = {**context, "dag_run": SimpleNamespace(run_after=T10),
                   "dag": SimpleNamespace(timetable=SimpleNamespace(expression="0 * * * *"))}
    assert resolve_window(on_the_hour, {}, period=HOUR) == Window(T10 - HOUR, T10)


def test_bad_window_overrides_say_what_is_wrong() -> None:
    with pytest.raises(WindowError, match="set both window_start and window_end"):
        resolve_window({}, {"window_start": "2026-01-01T10:00:00Z"}, period=HOUR)
    with pytest.raises(WindowError, match="'yesterday' is not an ISO-8601 timestamp"):
        resolve_window({}, {"window_start": "yesterday", "window_end": "today"}, period=HOUR)
    with pytest.raises(WindowError, match="is not after its start"):
        Window.of("2026-01-01T11:00:00Z", "2026-01-01T10:00:00Z")
    assert iso("2026-01-01T11:00:00+02:00") == "2026-01-01T09:00:00+00:00"


def _report(status: str = "ok", drifted: tuple[str, ...] = ("petal_length",)) -> dict:
    features = [
        {"feature": "petal_length", "test": "ks", "statistic": 0.4, "p_value": 0.001,
         "p_value_adjusted": 0.004, "effect_size": 0.4, "drifted": True},
        {"feature": "sepal_width", "test": "ks", "statistic": 0.12, "p_value": 0.01,
         "p_value_adjusted": 0.04, "effect_size": 0.12, "drifted": True},
        {"feature": "sepal_length", "test": "ks", "statistic": 0.05, "p_value": 0.5,
         "p_value_adjusted": 1.0, "effect_size": 0.05, "drifted": False},
    ]
    return {"status": status, "dataset_drift": bool(drifted), "drifted_features": list(drifted),
            "features": features, "window": {"rows": 120},
            "thresholds": {"p_value": 0.05, "min_effect": 0.1, "min_rows": 50},
            "model": {"name": "iris-classifier", "version": "1"}}


def test_verdict_is_the_servers_unless_thresholds_are_overridden() -> None:
    report = _report(drifted=("petal_length", "sepal_width"))
    assert decisions.drift_verdict(report)["drifted_features"] == ["petal_length",
                                                                   "sepal_width"]
    stricter = decisions.drift_verdict(report, p_value=0.01)
    assert stricter["drifted_features"] == ["petal_length"]
    assert stricter["thresholds"]["p_value"] == 0.01 and stricter["thresholds"]["overridden"]
    none = decisions.drift_verdict(report, min_effect=0.5)
    assert none["dataset_drift"] is False and none["drifted_features"] == []
    insufficient = decisions.drift_verdict(_report(status="insufficient_data", drifted=()),
                                           p_value=0.5)
    assert insufficient["dataset_drift"] is False


VALID = {"validated": True, "success": True}
ENOUGH = {"rows": 120, "enough": True}


@pytest.mark.parametrize(("verdict", "rows", "validation", "force", "target", "why"), [
    (_report(), ENOUGH, VALID, False, "retrain_parameters", "drift in petal_length"),
    (_report(drifted=()), ENOUGH, VALID, False, "no_retrain", "no drift"),
    (_report(status="insufficient_data", drifted=()), {"rows": 3, "enough": False},
     {"validated": False}, False, "no_retrain", "insufficient data"),
    (_report(), {"rows": 3, "enough": False}, VALID, False, "no_retrain", "insufficient"),
    (_report(), ENOUGH, {"validated": False}, False, "no_retrain", "not validated"),
    (_report(drifted=()), ENOUGH, VALID, True, "retrain_parameters", "forced"),
])
def test_branch(verdict: dict, rows: dict, validation: dict, force: bool, target: str,
                why: str) -> None:
    verdict = decisions.drift_verdict(verdict)
    chosen, reason = decisions.decide(verdict, rows, validation, force=force)
    assert chosen == target
    assert why in reason


def test_retrain_parameters_are_typed_and_default_to_the_served_model() -> None:
    window = {"start": "2026-01-01T10:00:00+00:00", "end": "2026-01-01T11:00:00+00:00"}
    params = decisions.retrain_parameters(
        window=window, reason="drift", airflow_run_id="scheduled__x",
        model_name="iris-classifier", deploy_target="local",
        params={"gate_min_value": 0.9, "min_fresh_rows": 10, "model_name": ""})
    assert params["model_name"] == "iris-classifier"
    assert params["min_value"] == 0.9 and isinstance(params["min_value"], float)
    assert params["max_regression"] == -1.0
    assert params["min_fresh_rows"] == 10 and isinstance(params["min_fresh_rows"], int)
    assert (params["window_start"], params["window_end"]) == (window["start"], window["end"])
    assert (params["trigger"], params["airflow_run_id"]) == ("drift", "scheduled__x")
    override = decisions.retrain_parameters(
        window=window, reason="schedule", airflow_run_id="r", model_name="iris-classifier",
        deploy_target="local", params={"model_name": "other", "deploy_target": "none"})
    assert (override["model_name"], override["deploy_target"]) == ("other", "none")


def test_metrics_are_parsed_with_prometheus_clients_parser() -> None:
    text = "\n".join([
        "# HELP driftloop_predictions_total Rows served.",
        "# TYPE driftloop_predictions_total counter",
        'driftloop_predictions_total{model_version="1"} 42.0',
        "# HELP driftloop_latency_seconds Latency.",
        "# TYPE driftloop_latency_seconds histogram",
        'driftloop_latency_seconds_bucket{le="0.1"} 3.0',
        'driftloop_latency_seconds_bucket{le="+Inf"} 4.0',
        "driftloop_latency_seconds_count 4.0",
        "driftloop_latency_seconds_sum 0.2",
        "# HELP driftloop_live_accuracy Accuracy on labeled rows (NaN before any label).",
        "# TYPE driftloop_live_accuracy gauge",
        "driftloop_live_accuracy NaN",
        "# HELP python_gc_objects_collected_total GC.",
        "# TYPE python_gc_objects_collected_total counter",
        'python_gc_objects_collected_total{generation="0"} 1.0',
        ""])
    families = parse_metrics(text)
    assert set(families) == {"driftloop_predictions", "driftloop_latency_seconds",
                             "driftloop_live_accuracy"}
    assert decisions.metrics_summary(families) == {
        "driftloop_live_accuracy": None,
        "driftloop_predictions_total{model_version=1}": 42.0,
        "driftloop_latency_seconds_count": 4.0,
        "driftloop_latency_seconds_sum": 0.2,
    }


def test_window_verdict_waits_only_while_rows_can_still_arrive() -> None:
    end = "2026-01-01T11:00:00+00:00"
    before_end = datetime(2026, 1, 1, 10, 59, tzinfo=UTC).timestamp()
    settled = datetime(2026, 1, 1, 11, 0, 6, tzinfo=UTC).timestamp()
    assert window_verdict(60, 50, end, 5, before_end)["enough"] is True
    assert window_verdict(10, 50, end, 5, before_end) is None
    assert window_verdict(10, 50, end, 5, settled - 2) is None  # flush grace
    assert window_verdict(10, 50, end, 5, settled) == {
        "status": "ok", "rows": 10, "enough": False, "min_rows": 50}


def _served_report(window_channels: list[int], numeric_shift: float = 0.0,
                   predictions: dict[str, int] | None = None) -> dict:
    """A report as the server builds it: the core's drift answer on real arrays."""
    import numpy as np

    from driftloop.drift import Reference, Thresholds
    from driftloop.drift.outputs import compare_counts

    rng = np.random.default_rng(3)
    channels = ["web", "store", "phone", "partner"]
    ref = Reference.from_arrays(
        ["x"], rng.lognormal(3, 0.5, (10_000, 1)), ["channel"],
        np.repeat(channels, [4500, 3000, 1500, 1000])[:, None])
    x = rng.lognormal(3, 0.5, (5000, 1))
    x[: int(5000 * numeric_shift)] *= 3  # a longer tail on a share of the rows
    report = ref.evaluate(x, np.repeat(channels, window_channels)[:, None]).as_dict()
    reference_predictions = {"a": 500, "b": 300, "c": 200}
    prediction = compare_counts("prediction", reference_predictions,
                                predictions or {"a": 2500, "b": 1500, "c": 1000}, Thresholds())
    return {**report, "prediction": prediction, "label": compare_counts(
        "label", {}, {}, Thresholds()), "window": {"rows": 5000}}


def test_a_run_acts_on_prediction_drift_only_when_asked() -> None:
    report = _served_report([2250, 1500, 750, 500],
                            predictions={"a": 1000, "b": 1500, "c": 2500})
    features_only = decisions.drift_verdict(report)
    assert features_only["dataset_drift"] is False and features_only["drift"] is False
    assert features_only["prediction"]["drifted"] is True
    target, why = decisions.decide(features_only, {"enough": True}, VALID)
    assert target == decisions.NO_RETRAIN and why.startswith("no drift:")
    both = decisions.drift_verdict(report, act_on=["features", "prediction"])
    target, why = decisions.decide(both, {"enough": True}, VALID)
    assert target == decisions.SUBMIT
    assert why.startswith("prediction drift ('a' 50% -> 20%, 'c' 20% -> 50%)")
    with pytest.raises(ValueError, match="act_on: unknown inputs"):
        decisions.drift_verdict(report, act_on=["inputs"])


def test_redeciding_keeps_the_distance_and_unseen_category_alarms() -> None:
    # 10 % of rows three times as long: few rows cross any one value, they moved far.
    report = _served_report([2250, 1500, 750, 500], numeric_shift=0.10)
    x = next(f for f in report["features"] if f["feature"] == "x")
    assert x["drifted"] and x["effect_size"] < 0.1 and x["shift_sd"] >= 0.25
    stricter = decisions.drift_verdict(report, p_value=0.001, min_effect=0.5)
    assert stricter["drifted_features"] == ["x"] and stricter["drift"] is True
    target, why = decisions.decide(stricter, {"enough": True}, VALID)
    assert target == decisions.SUBMIT and why.startswith("drift in x (mean +")


def test_no_drift_still_names_what_changed_below_the_alarm() -> None:
    report = _served_report([1950, 1500, 1050, 500])
    verdict = decisions.drift_verdict(report)
    target, why = decisions.decide(verdict, {"enough": True}, VALID)
    assert target == decisions.NO_RETRAIN
    assert why.endswith("; changed: channel ('phone' 15% -> 21%, 'web' 45% -> 39%, below the "
                        "alarm)")


def _gappy_report(window_missing: float, refused: dict[str, int] | None = None) -> dict:
    """A nullable feature ``x`` missing in 2 % of the reference, ``window_missing`` of the
    window, and the server's refused rows: the core's answer on real arrays."""
    import numpy as np

    from driftloop.drift import Reference

    rng = np.random.default_rng(5)
    ref = rng.normal(size=(10_000, 2))
    ref[rng.random(10_000) < 0.02, 0] = np.nan
    window = rng.normal(size=(2000, 2))
    window[rng.random(2000) < window_missing, 0] = np.nan
    reference = Reference.from_arrays(["x", "y"], ref, nullable=["x"])
    report = reference.evaluate(window, refused=refused).as_dict()
    rows = sum((refused or {}).values())
    report["refused"] = {"rows": rows, "rate": rows / (rows + 2000),
                         "description": f"{rows} row(s) refused for bad values "
                                        f"({rows / (rows + 2000):.0%} of the window): y"}
    return {**report, "window": {"rows": 2000}}


def test_redeciding_keeps_the_missing_rate_alarm() -> None:
    report = _gappy_report(0.12)
    assert report["drifted_features"] == ["x"]
    verdict = decisions.drift_verdict(report, p_value=0.01, min_effect=0.9)
    assert verdict["drifted_features"] == ["x"] and verdict["drift"] is True
    target, why = decisions.decide(verdict, {"enough": True}, VALID)
    assert target == decisions.SUBMIT and why.startswith("drift in x (missing 2% -> 1")
    # A missing rate as in the reference is no drift, however strict or loose the run.
    calm = decisions.drift_verdict(_gappy_report(0.02), p_value=0.2, min_effect=0.01)
    assert "x" not in calm["drifted_features"]


def test_refused_rows_are_said_but_never_the_alarm() -> None:
    verdict = decisions.drift_verdict(_gappy_report(0.02, refused={"y": 300}))
    assert verdict["drift"] is False and verdict["refused"]["rows"] == 300
    y = next(f for f in verdict["features"] if f["feature"] == "y")
    assert y["refused_rate"] == pytest.approx(300 / 2300) and y["drifted"] is False
    target, why = decisions.decide(verdict, {"enough": True}, VALID)
    assert target == decisions.NO_RETRAIN
    assert "changed: y (13% of rows refused (bad or missing value), below the alarm)" in why
    assert why.endswith("; 300 row(s) refused for bad values (13% of the window): y")
