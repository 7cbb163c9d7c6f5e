"""TaskFlow tasks the DAGs use: the window, the server check, the retrain parameters, and each
run's closing ``outcome``.

Bodies import their hooks lazily, so importing this module (at DAG parse) stays cheap.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import get_current_context, task

from driftloop_airflow.config import SERVING_CONN_ID, airflow_settings

log = logging.getLogger(__name__)


@task
def resolve_window(period_seconds: int) -> dict[str, str]:
    """The run's window: the `window_start`/`window_end` params, else its data interval."""
    from datetime import timedelta

    from driftloop_airflow.window import resolve_window as resolve

    context = get_current_context()
    window = resolve(context, context["params"], period=timedelta(seconds=period_seconds))
    return window.as_dict()


@task
def check_serving() -> dict[str, Any]:
    """The server is alive and ready; which model it serves (the retrain's default model)."""
    from driftloop_airflow.hooks.serving import ServingHook

    hook = ServingHook(SERVING_CONN_ID)
    return {**hook.health(), "model": hook.model()}


@task
def retrain_parameters(window: dict[str, str], serving: dict[str, Any],
                       reason: str) -> dict[str, Any]:
    """The pipeline's parameters for this run (typed as the pipeline declares them)."""
    from driftloop_airflow.decisions import retrain_parameters as build

    context = get_current_context()
    return build(window=window, reason=reason, airflow_run_id=context["run_id"],
                 model_name=(serving.get("model") or {}).get("name", ""),
                 params=context["params"], deploy_target=airflow_settings().deploy_target)


@task
def apply_retention() -> dict[str, Any]:
    """Rows past the retention period leave the prediction log. The server does it (it
    holds the log and the registry), in bounded batches; the summary is this task's XCom."""
    from driftloop_airflow.hooks.serving import ServingHook

    summary = ServingHook(SERVING_CONN_ID).apply_retention()
    if summary.get("skipped"):
        log.info("retention: %s", summary["skipped"])
    else:
        log.info("retention: removed %d prediction(s), %d label(s), %d report(s) older than "
                 "%s%s", summary["predictions_deleted"], summary["labels_deleted"],
                 summary["reports_deleted"], summary["cutoff"],
                 f" (held back by {summary['held_back_by']})" if summary.get("held_back_by")
                 else "")
    return summary


def _close(ti: Any, text: str, failed: bool) -> str:
    """An ``outcome`` task's end: the sentence is its XCom; when the run failed the task
    fails with it, so the run keeps its state (the failed task alerted already)."""
    from airflow.sdk.exceptions import AirflowFailException

    log.info("outcome: %s", text)
    if failed:
        ti.xcom_push(key="return_value", value=text)
        raise AirflowFailException(text)
    return text


@task(trigger_rule="all_done", retries=0, on_failure_callback=[])
def outcome(decision: str | None = None) -> str:
    """The run's decision in one sentence (this task's XCom; see driftloop_airflow.outcome).
    Runs last, whatever happened before; fails when another task of the run failed, so the
    run keeps its state (the failed task has already alerted: no second alert here)."""
    from driftloop_airflow.outcome import describe, task_states

    context = get_current_context()
    ti = context["ti"]

    def pull(task_id: str, key: str = "return_value") -> Any:
        return ti.xcom_pull(task_ids=task_id, key=key)

    text, failed = describe(
        window=pull("resolve_window"),
        states=task_states(ti, ti.dag_id, ti.run_id),
        verdict=pull("drift_status"),
        validation=pull("validate_window", "validation"),
        decision=pull("decide", "decision") or decision,
        submit={"skipped_reason": pull("submit_retrain", "skipped_reason"),
                "kfp_run_id": pull("submit_retrain", "kfp_run_id"),
                "run": pull("submit_retrain")},
    )
    return _close(ti, text, failed)


@task(task_id="outcome", trigger_rule="all_done", retries=0, on_failure_callback=[])
def action_outcome(action_task: str = "act") -> str:
    """The manual action's result in one sentence; fails when the action failed (which has
    alerted already), so the run keeps its state."""
    from driftloop_airflow.outcome import describe_action, task_states

    context = get_current_context()
    ti = context["ti"]
    text, failed = describe_action(
        context["params"].get("action"),
        task_states(ti, ti.dag_id, ti.run_id).get(action_task),
        ti.xcom_pull(task_ids=action_task), ti.xcom_pull(task_ids=action_task, key="error"))
    return _close(ti, text, failed)


@task(task_id="outcome", trigger_rule="all_done", retries=0, on_failure_callback=[])
def live_gate_outcome(gate_task: str = "judge") -> str:
    """The live gate's decision in one sentence; fails when the decision could not be taken
    (which has alerted already)."""
    from driftloop_airflow.outcome import describe_live, task_states

    context = get_current_context()
    ti = context["ti"]
    text, failed = describe_live(task_states(ti, ti.dag_id, ti.run_id).get(gate_task),
                                 ti.xcom_pull(task_ids=gate_task),
                                 ti.xcom_pull(task_ids=gate_task, key="error"))
    return _close(ti, text, failed)
