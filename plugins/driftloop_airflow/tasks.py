"""TaskFlow tasks both DAGs use: the window, the server check, the retrain parameters.

Bodies import their hooks lazily, so importing this module (at DAG parse) stays cheap.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import get_current_context, task

from driftloop_airflow.config import SERVING_CONN_ID, airflow_settings


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
