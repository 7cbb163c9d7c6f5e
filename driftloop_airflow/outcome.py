"""What a DAG run decided, in one line on the run itself.

Each driftloop DAG ends with an ``outcome`` task (trigger rule ``all_done``) that reads what
the run's tasks recorded (the window, the drift verdict, the validation, the branch's reason,
the submission or its skip reason) and returns one sentence as its XCom, for instance::

    window 2026-12-03T01:00:00+00:00 → 02:00:00+00:00 (412 rows): drift in petal_length
    (corrected p < 0.01 and effect >= 0.1 on 412 rows); data valid; retrain skipped: cooldown:
    ... no new retrain before 2026-12-03T03:10:00+00:00

so the grid shows the decision without opening a task log (Airflow 3.3 has no way for a task
to set the DAG run's note: apache/airflow#64890). When a task of the run failed, ``outcome``
fails too, with the same sentence: the run's state stays what its work made it.

The text is built by :func:`describe`, a plain function of plain values, tested directly.
"""

from __future__ import annotations

from typing import Any

FAILED = ("failed", "upstream_failed")
#: A retrain's outcome (the version's `retrain_outcome` tag) in words.
RETRAIN_OUTCOMES = {"promoted": "promoted", "rejected": "rejected by the gate",
                    "insufficient_evidence": "not promoted: the gate had too few rows to decide",
                    "rolled_back": "rolled back: its deploy failed",
                    "shadow": "in shadow as challenger (the live gate decides)"}


def window_text(window: dict[str, str] | None, rows: int | None = None) -> str:
    if not window:
        return "window unknown"
    start, end = window.get("start", "?"), window.get("end", "?")
    # The end repeats only what differs from the start (same day: the time alone).
    if start[:11] == end[:11]:
        end = end[11:]
    counted = f" ({rows} rows)" if rows is not None else ""
    return f"window {start} → {end}{counted}"


def _retrain(states: dict[str, str | None], submit: dict[str, Any]) -> str | None:
    state = states.get("submit_retrain")
    run_id = submit.get("kfp_run_id") or (submit.get("run") or {}).get("run_id")
    if state == "success":
        result = (submit.get("run") or {}).get("result") or {}
        said = f"retrain submitted: KFP run {run_id} succeeded"
        version = result.get("new_version") or result.get("version")
        if result.get("outcome") and version:
            said += f": v{version} {RETRAIN_OUTCOMES.get(result['outcome'], result['outcome'])}"
            before, after = result.get("champion_before"), result.get("champion_after")
            if before and after and before != after:
                said += f" (champion v{before} → v{after})"
        return said
    if state == "skipped" and submit.get("skipped_reason"):
        return f"retrain skipped: {submit['skipped_reason']}"
    if state == "failed":
        return (f"retrain failed: KFP run {run_id} (its error is in submit_retrain's log)"
                if run_id else "retrain not submitted: submit_retrain failed (see its log)")
    return None


def describe(*, window: dict[str, str] | None, states: dict[str, str | None],
             verdict: dict[str, Any] | None = None, validation: dict[str, Any] | None = None,
             decision: str | None = None, submit: dict[str, Any] | None = None,
             ) -> tuple[str, list[str]]:
    """(the run's sentence, the tasks that failed). ``states`` is task id → final state."""
    submit = submit or {}
    rows = (verdict or {}).get("rows")
    parts: list[str] = [window_text(window, rows)]
    failed = sorted(task for task, state in states.items()
                    if state in FAILED and task != "outcome")
    first_failures = [t for t in failed if states[t] == "failed"]
    if validation and validation.get("validated") and validation.get("success") is False:
        parts.append(f"data refused, no retrain: {validation.get('summary')}")
    elif decision:
        parts.append(decision)
    retrain = _retrain(states, submit)
    if retrain:
        parts.append(retrain)
    elif states.get("no_retrain") == "success" and not decision:
        parts.append("no retrain")
    other = [t for t in first_failures if t not in ("validate_window", "submit_retrain")]
    if other:
        parts.append(f"failed at {', '.join(other)} (see the task log)")
    elif failed and len(parts) == 1:
        parts.append(f"failed at {', '.join(failed)}")
    return "; ".join(parts), failed


def task_states(ti: Any, dag_id: str, run_id: str) -> dict[str, str | None]:
    """Task id → state for this run, through the Task SDK (no metadata DB access)."""
    found = ti.get_task_states(dag_id=dag_id, run_ids=[run_id]) or {}
    by_task = found.get(run_id, found)
    return {str(task): (None if state is None else str(getattr(state, "value", state)))
            for task, state in by_task.items()}


def describe_action(action: str | None, state: str | None, result: dict[str, Any] | None,
                    error: str | None) -> tuple[str, bool]:
    """(the manual action's sentence, whether it failed), for the manual promotion DAG."""
    what = action or "action"
    if state == "success" and result:
        deploy = result.get("deploy") or {}
        text = (f"{what}: v{result.get('version')} is champion (was "
                f"v{result.get('champion_before') or 'none'}; previous now "
                f"v{result.get('previous_after') or 'none'}); served via "
                f"{deploy.get('target', '?')}: {deploy.get('status', '?')}; tagged by "
                f"{result.get('actor')}: {result.get('reason')}")
        return text, False
    if error:
        unchanged = "" if "nothing changed" in error else "; nothing changed"
        return f"{what} refused: {error}{unchanged}", True
    return f"{what} did not run ({state or 'no state'}; see the task log)", True


def describe_live(state: str | None, decision: dict[str, Any] | None,
                  error: str | None) -> tuple[str, bool]:
    """(the live gate run's sentence, whether it failed)."""
    if state == "success" and decision:
        return f"{decision.get('action')}: {decision.get('reason')}", False
    if error:
        return f"live gate failed: {error}", True
    return f"live gate did not run ({state or 'no state'}; see the task log)", True
