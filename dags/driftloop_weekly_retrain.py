"""Weekly forced retrain: fresh data gets a chance even when nothing drifted.

The task bodies live in the plugin package (``driftloop_airflow``); this file declares the
flow and imports nothing heavy.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag

from driftloop_airflow.config import REASON_SCHEDULE, RETRAIN_POOL, airflow_settings
from driftloop_airflow.dag_defaults import dag_args, retrain_params, window_params
from driftloop_airflow.operators.kfp import SubmitKfpRunOperator
from driftloop_airflow.tasks import (
    check_serving,
    outcome,
    resolve_window,
    retrain_parameters,
)

PERIOD = timedelta(weeks=1)
settings = airflow_settings()

DOC = """
### driftloop weekly retrain

Once a week, submit the KFP retrain pipeline with reason `schedule`, on the spec's data plus
the week's labeled production rows (the run's data interval, or the `window_start`/
`window_end` params). **The gate still decides**: the challenger is promoted only if it
passes the spec's gate against the champion.

It ignores the drift monitor's cooldown period, but never starts while a retrain is
running (that run is skipped, with the running run named). It shares the one-slot
`driftloop_retrain` pool with the drift monitor's submissions.

The `outcome` task, last, states the run's decision in one sentence in its XCom: the window,
and the retrain submitted (its KFP run) or skipped (and why).

It is **created paused** (a forced retrain should not start the moment Airflow first parses
this file): unpause it in the UI or with `airflow dags unpause driftloop_weekly_retrain`;
it then runs once for the last complete week and every Sunday 00:00 UTC after that.
"""


@dag(
    dag_id="driftloop_weekly_retrain",
    description="Weekly: forced retrain (reason=schedule); the gate decides promotion",
    **dag_args(cron="@weekly", tag="retrain"),
    is_paused_upon_creation=True,
    dagrun_timeout=timedelta(hours=4),
    doc_md=DOC,
    params={**window_params(), **retrain_params(settings)},
)
def driftloop_weekly_retrain() -> None:
    window = resolve_window(period_seconds=int(PERIOD.total_seconds()))
    serving = check_serving()
    window >> serving
    submit = SubmitKfpRunOperator(
        task_id="submit_retrain",
        parameters=retrain_parameters(window, serving, reason=REASON_SCHEDULE),
        display_name="driftloop-retrain-schedule-{{ run_id }}",
        cooldown_minutes=0,
        pool=RETRAIN_POOL,
        timeout=timedelta(minutes=settings.retrain_timeout_minutes),
    )
    submit >> outcome(decision="weekly scheduled retrain")


driftloop_weekly_retrain()
