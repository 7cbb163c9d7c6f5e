"""The run's one-sentence outcome: every decision the drift monitor can take, and failures."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from driftloop_airflow.outcome import describe, task_states, window_text

WINDOW = {"start": "2026-12-03T01:00:00+00:00", "end": "2026-12-03T02:00:00+00:00"}
OK = "success"
DRIFT = "drift in petal_length (corrected p < 0.01 and effect >= 0.1 on 412 rows); data valid"


def states(**overrides: str) -> dict[str, str | None]:
    base = {"resolve_window": OK, "check_serving": OK, "wait_for_rows": OK,
            "drift_status": OK, "serving_metrics": OK, "validate_window": OK, "decide": OK,
            "retrain_parameters": "skipped", "submit_retrain": "skipped", "no_retrain": OK,
            "apply_retention": OK, "outcome": "running"}
    return {**base, **overrides}


def test_the_window_is_named_and_its_end_shortened_on_the_same_day() -> None:
    assert window_text(WINDOW, 412) == (
        "window 2026-12-03T01:00:00+00:00 → 02:00:00+00:00 (412 rows)")
    week = {"start": "2026-03-02T00:00:00+00:00", "end": "2026-03-09T00:00:00+00:00"}
    assert window_text(week) == "window 2026-03-02T00:00:00+00:00 → 2026-03-09T00:00:00+00:00"
    assert window_text(None) == "window unknown"


@pytest.mark.parametrize(("kwargs", "said", "failed"), [
    ({"decision": "no drift: corrected p < 0.01 and effect >= 0.1 on 412 rows"},
     "(412 rows); no drift: corrected p < 0.01", []),
    ({"decision": "insufficient data: 3 rows in the window (status 'insufficient_data'); "
                  "nothing to decide"}, "; insufficient data: 3 rows", []),
    ({"decision": DRIFT, "states": states(submit_retrain=OK, retrain_parameters=OK,
                                          no_retrain="skipped"),
      "submit": {"kfp_run_id": "local-7"}},
     f"; {DRIFT}; retrain submitted: KFP run local-7 succeeded", []),
    ({"decision": DRIFT, "states": states(submit_retrain=OK, retrain_parameters=OK,
                                          no_retrain="skipped"),
      "submit": {"kfp_run_id": "local-7", "run": {"result": {
          "outcome": "promoted", "new_version": "2", "champion_before": "1",
          "champion_after": "2"}}}},
     "; retrain submitted: KFP run local-7 succeeded: v2 promoted (champion v1 → v2)", []),
    ({"decision": DRIFT, "states": states(submit_retrain=OK, retrain_parameters=OK,
                                          no_retrain="skipped"),
      "submit": {"kfp_run_id": "local-7", "run": {"result": {
          "outcome": "rejected", "new_version": "3", "champion_before": "2",
          "champion_after": "2"}}}},
     "; retrain submitted: KFP run local-7 succeeded: v3 rejected by the gate", []),
    ({"decision": DRIFT, "states": states(submit_retrain=OK, retrain_parameters=OK,
                                          no_retrain="skipped"),
      "submit": {"kfp_run_id": "local-7", "run": {"result": {
          "outcome": "insufficient_evidence", "new_version": "3", "champion_before": "2",
          "champion_after": "2"}}}},
     "; retrain submitted: KFP run local-7 succeeded: v3 not promoted: the gate had too few "
     "rows to decide", []),
    ({"decision": DRIFT, "states": states(retrain_parameters=OK, no_retrain="skipped"),
      "submit": {"skipped_reason": "cooldown: retrain local-7 was submitted at 01:10; no new "
                                   "retrain before 03:10 (cooldown 2:00:00)"}},
     f"; {DRIFT}; retrain skipped: cooldown: retrain local-7 was submitted at 01:10; no new "
     "retrain before 03:10", []),
    ({"decision": DRIFT, "states": states(submit_retrain="failed", retrain_parameters=OK,
                                          no_retrain="skipped"),
      "submit": {"kfp_run_id": "local-8"}},
     "; retrain failed: KFP run local-8 (its error is in submit_retrain's log)",
     ["submit_retrain"]),
    ({"validation": {"validated": True, "success": False,
                     "summary": "2 of 9 expectations failed: petal_length between 1 and 7"},
      "states": states(validate_window="failed", decide="upstream_failed",
                       no_retrain="upstream_failed", retrain_parameters="upstream_failed",
                       submit_retrain="upstream_failed")},
     "; data refused, no retrain: 2 of 9 expectations failed: petal_length between 1 and 7",
     ["decide", "no_retrain", "retrain_parameters", "submit_retrain", "validate_window"]),
    ({"states": states(check_serving="failed", wait_for_rows="upstream_failed",
                       drift_status="upstream_failed", decide="upstream_failed")},
     "; failed at check_serving (see the task log)",
     ["check_serving", "decide", "drift_status", "wait_for_rows"]),
])
def test_every_decision_reads_as_one_sentence(kwargs: dict, said: str,
                                              failed: list[str]) -> None:
    kwargs = {"states": states(), "verdict": {"rows": 412}, **kwargs}
    text, failures = describe(window=WINDOW, **kwargs)
    assert text.startswith("window 2026-12-03T01:00:00+00:00 → 02:00:00+00:00")
    assert said in text
    assert failures == failed


def test_states_come_from_the_task_sdk_keyed_by_run() -> None:
    asked = {}

    def get_task_states(**kwargs):
        asked.update(kwargs)
        return {"r1": {"decide": "success", "no_retrain": SimpleNamespace(value="skipped"),
                       "submit_retrain": None}}

    got = task_states(SimpleNamespace(get_task_states=get_task_states), "d", "r1")
    assert asked == {"dag_id": "d", "run_ids": ["r1"]}
    assert got == {"decide": "success", "no_retrain": "skipped", "submit_retrain": None}
