"""The DAGs end to end with ``dag.test()``: a live ``driftloop serve``, the real prediction
log, Great Expectations, and the retrain pipeline through the KFP local runner.

Every branch of the drift monitor: no drift; drift → retrain → new champion served;
invalid data → refused with an alert and no retrain; insufficient data; backfilled past
hours; two concurrent runs → one submission, then the cooldown; a failed retrain fails the
task with the run's error; the weekly DAG submits a scheduled retrain.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from driftloop_airflow.local_runs import (
    DagRunOutcome,
    run_drift_monitor,
    run_weekly_retrain,
)
from tests.airflow.conftest import Live
from tests.airflow.kfp_api import recording_server
from tests.local_stack import shown_end
from tests.pipelines.conftest import PETAL_SHIFT, assert_retrain_artifacts, iris_rows
from tests.processes import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("airflow_db")]

RETRAIN = ["retrain_parameters", "submit_retrain"]


def serve_traffic(live: Live, rows: Any, *, label: bool = True) -> tuple[str, str]:
    """Serve ``rows`` through /predict (and their species through /feedback); the window
    that holds exactly them."""
    start = datetime.now(UTC) - timedelta(milliseconds=1)
    if label:
        live.server.predict_and_label(rows)
    else:
        features = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
        answer = live.server.post("/predict", {"records": rows[features].to_dict("records")})
        assert answer.status_code == 200, answer.text
    end = datetime.now(UTC)  # every row was answered, so logged with an earlier time
    window = (start.isoformat(), end.isoformat())

    def logged() -> int:
        return live.server.get(f"/drift/window?start={start.isoformat().replace('+', '%2B')}"
                               f"&end={end.isoformat().replace('+', '%2B')}&limit=1"
                               ).json()["total"]

    wait_until(lambda: logged() >= len(rows), f"{len(rows)} rows in the log", timeout=30)
    assert logged() == len(rows)
    return window


def assert_states(run: DagRunOutcome, /, **expected: str) -> None:
    got = {task: run.tasks.get(task) for task in expected}
    assert got == expected, f"task states {run.tasks}"


def test_no_drift_means_no_retrain(shared_live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    shared_live.connections(monkeypatch)
    window = serve_traffic(shared_live, iris_rows(200, seed=11))
    outcome = run_drift_monitor(*window)
    assert outcome.state == "success", outcome.tasks
    assert_states(outcome, check_serving="success", wait_for_rows="success",
                  drift_status="success", serving_metrics="success",
                  validate_window="success", decide="success", no_retrain="success",
                  retrain_parameters="skipped", submit_retrain="skipped",
                  apply_retention="success", outcome="success")
    said = outcome.value("outcome")
    assert said.startswith(f"window {window[0]} → ") and "(200 rows)" in said
    assert "no drift: corrected p < 0.05 and effect >= 0.1 on 200 rows" in said
    retention = outcome.value("apply_retention")
    assert retention["retention_days"] == 30 and retention["predictions_deleted"] == 0
    assert retention["held_back_by"] is None
    verdict = outcome.value("drift_status")
    assert verdict["status"] == "ok" and verdict["dataset_drift"] is False
    assert verdict["rows"] == 200
    assert outcome.value("validate_window")["success"] is True
    assert outcome.value("wait_for_rows") == {"rows": 200, "enough": True, "min_rows": 50}
    metrics = outcome.value("serving_metrics")
    assert any(key.startswith("driftloop_") for key in metrics)
    assert shared_live.kfp_runs() == []


def test_invalid_data_is_refused_with_an_alert_and_no_retrain(
        shared_live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """A petal sensor reporting millimetres: drift *and* broken data. No retrain on it."""
    shared_live.connections(monkeypatch)
    window = serve_traffic(shared_live, iris_rows(120, seed=12, scale={"petal_length": 10}),
                           label=False)
    with recording_server(lambda *_: (200, {})) as (hook_url, alerts):
        monkeypatch.setenv("DRIFTLOOP_ALERT_WEBHOOK_URL", hook_url)
        outcome = run_drift_monitor(*window)
    assert outcome.state == "failed"
    assert_states(outcome, drift_status="success", validate_window="failed",
                  decide="upstream_failed", retrain_parameters="upstream_failed",
                  submit_retrain="upstream_failed", no_retrain="upstream_failed",
                  outcome="failed")
    said = outcome.value("outcome")
    assert "(120 rows); data refused, no retrain:" in said and "expectation" in said
    assert outcome.value("drift_status")["dataset_drift"] is True  # drift alone would retrain
    report = outcome.value("validate_window", "validation")
    assert report["success"] is False and report["rows"] == 120
    assert any(f["column"] == "petal_length" and f["expectation"] ==
               "expect_column_values_to_be_between" for f in report["failures"])
    (alert,) = [a.body for a in alerts]  # one alert: `outcome` fails without another
    assert alert["task_id"] == "validate_window"
    assert "data validation failed for window" in alert["text"]
    assert "no retrain" in alert["text"] and "petal_length" in alert["text"]
    assert Path(report["report"]).read_text().count("petal_length") >= 1
    # The same report, stored with the prediction log: one link away once the pod is gone.
    assert report["report_error"] is None
    assert report["report_url"].startswith(shared_live.server.url + "/reports/validation/")
    stored = httpx.get(report["report_url"], timeout=30)
    assert stored.status_code == 200 and stored.headers["content-type"].startswith("text/html")
    assert stored.text == Path(report["report"]).read_text()
    assert shared_live.kfp_runs() == []


def test_backfill_evaluates_each_past_hour_from_the_log(
        shared_live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past hours run as scheduled runs do (data interval = the hour): each reads its own
    rows of the prediction log, however long ago they were served."""
    shared_live.connections(monkeypatch)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    hours = [(hour + timedelta(hours=i), hour + timedelta(hours=i + 1)) for i in range(2)]
    shared_live.loop.log_labeled_rows(iris_rows(150, seed=21),
                                      window=tuple(h.isoformat() for h in hours[0]))
    shared_live.loop.log_labeled_rows(iris_rows(12, seed=22),
                                      window=tuple(h.isoformat() for h in hours[1]))
    first, second = (run_drift_monitor(*h) for h in hours)
    for outcome, (start, end) in zip((first, second), hours, strict=True):
        assert outcome.state == "success", outcome.tasks
        assert outcome.value("resolve_window") == {"start": start.isoformat(),
                                                   "end": end.isoformat()}
        assert outcome.tasks["submit_retrain"] == "skipped"
        # The backfilled run names the hour it judged, not the hour it ran after.
        assert outcome.value("outcome").startswith(f"window {start.isoformat()} → "
                                                   f"{shown_end(start, end)} (")
    assert first.value("drift_status")["rows"] == 150
    assert first.value("drift_status")["dataset_drift"] is False
    assert second.value("wait_for_rows") == {"rows": 12, "enough": False, "min_rows": 50}
    assert second.value("drift_status")["status"] == "insufficient_data"
    assert second.value("validate_window")["validated"] is False
    assert_states(second, decide="success", no_retrain="success")
    assert "(12 rows); insufficient data: 12 rows in the window" in second.value("outcome")


def test_drift_retrains_promotes_and_the_server_swaps(
        live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    live.connections(monkeypatch)
    window = serve_traffic(live, iris_rows(240, seed=31, shift=PETAL_SHIFT))
    outcome = run_drift_monitor(*window)
    assert outcome.state == "success", outcome.tasks
    assert_states(outcome, validate_window="success", decide="success",
                  retrain_parameters="success", submit_retrain="success",
                  no_retrain="skipped", outcome="success")
    verdict = outcome.value("drift_status")
    assert verdict["dataset_drift"] is True
    assert {"petal_length", "petal_width"} <= set(verdict["drifted_features"])
    run = outcome.value("submit_retrain")
    said = outcome.value("outcome")
    assert "(240 rows); drift in petal_length" in said and "; data valid;" in said
    assert said.endswith(f"retrain submitted: KFP run {run['run_id']} succeeded: v2 promoted "
                         "(champion v1 → v2)")
    assert run["state"] == "SUCCEEDED" and run["backend"] == "local"
    assert run["result"]["promoted"] is True
    assert (run["result"]["champion_before"], run["result"]["champion_after"]) == ("1", "2")
    assert live.server.served_version() == "2", "hot swap through /admin/reload"
    (record,) = live.kfp_runs()
    params = record["parameters"]
    assert params["trigger"] == "drift" and params["airflow_run_id"] == outcome.run_id
    assert (params["window_start"], params["window_end"]) == window
    assert params["model_name"] == "iris-classifier" and params["deploy_target"] == "local"
    tags = live.loop.versions()["2"]
    assert tags["trigger"] == "drift" and tags["airflow_run_id"] == outcome.run_id
    # What the run left for the KFP UI: provenance, the evaluation report, the metrics.
    assert_retrain_artifacts(run["result"], production_rows=240)


def test_a_failed_retrain_fails_the_task_with_the_runs_error(
        shared_live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """Also the weekly DAG's submission (what a successful weekly run does after it is in
    test_weekly_retrain_submits_a_scheduled_retrain, make reliability)."""
    shared_live.connections(monkeypatch)
    window = ("2026-03-02T00:00:00+00:00", "2026-03-09T00:00:00+00:00")
    before = {r["run_id"] for r in shared_live.kfp_runs()}
    with recording_server(lambda *_: (200, {})) as (hook_url, alerts):
        monkeypatch.setenv("DRIFTLOOP_ALERT_WEBHOOK_URL", hook_url)
        outcome = run_weekly_retrain(*window, spec="/nonexistent/spec.yaml",
                                     deploy_target="none")
    assert outcome.state == "failed"
    assert outcome.tasks["submit_retrain"] == "failed"
    assert outcome.tasks["outcome"] == "failed"
    said = outcome.value("outcome")
    assert said.startswith("window 2026-03-02T00:00:00+00:00 → 2026-03-09T00:00:00+00:00; ")
    assert "weekly scheduled retrain; retrain failed: KFP run local-" in said
    (record,) = [r for r in shared_live.kfp_runs() if r["run_id"] not in before]
    assert record["parameters"]["trigger"] == "schedule"
    assert (record["parameters"]["window_start"], record["parameters"]["window_end"]) == window
    assert record["parameters"]["deploy_target"] == "none"
    (alert,) = [a.body for a in alerts]
    assert alert["task_id"] == "submit_retrain"
    assert "KFP run local-" in alert["text"] and "failed: step load_data" in alert["text"]
    assert "/nonexistent/spec.yaml" in alert["text"]


@pytest.mark.full
def test_weekly_retrain_submits_a_scheduled_retrain(
        shared_live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """Forced (no drift needed); the gate still decides. Runs last: it registers a version.
    make reliability only: make test checks the weekly submission (a failing run) above and
    a whole successful retrain from a DAG in test_drift_retrains_promotes_and_the_server_swaps.
    """
    shared_live.connections(monkeypatch)
    window = serve_traffic(shared_live, iris_rows(60, seed=51))
    before = {r["run_id"] for r in shared_live.kfp_runs()}
    outcome = run_weekly_retrain(*window, deploy_target="none")
    assert outcome.state == "success", outcome.tasks
    (record,) = [r for r in shared_live.kfp_runs() if r["run_id"] not in before]
    assert record["parameters"]["trigger"] == "schedule"
    assert (record["parameters"]["window_start"], record["parameters"]["window_end"]) == window
    result = outcome.value("submit_retrain")["result"]
    assert result["status"] == "succeeded" and result["gate"] is not None
    version = result["version"]
    assert shared_live.loop.versions()[version]["trigger"] == "schedule"
    assert shared_live.server.served_version() == "1", "deploy_target=none: nothing rolled out"
