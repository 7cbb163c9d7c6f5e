"""Hourly drift monitor: is last hour's live traffic still what the champion was trained on?

See ``DOC`` (shown in the Airflow UI) for the flow. The task bodies live in the plugin
package (``driftloop_airflow``); this file only declares the flow, and imports nothing heavy.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import Param, dag, get_current_context, task

from driftloop_airflow import decisions
from driftloop_airflow.config import (
    REASON_DRIFT,
    RETRAIN_POOL,
    SERVING_CONN_ID,
    airflow_settings,
)
from driftloop_airflow.dag_defaults import dag_args, retrain_params, window_params
from driftloop_airflow.operators.kfp import SubmitKfpRunOperator
from driftloop_airflow.operators.validation import ValidateWindowOperator
from driftloop_airflow.sensors.drift import DriftSensor
from driftloop_airflow.tasks import (
    apply_retention,
    check_serving,
    outcome,
    resolve_window,
    retrain_parameters,
)

log = logging.getLogger(__name__)
PERIOD = timedelta(hours=1)
settings = airflow_settings()

DOC = """
### driftloop drift monitor (hourly)

Each run looks at one window of the prediction log: its **data interval** (the past hour;
a backfill of past hours reads each hour as it was logged) or the `window_start`/`window_end`
params of a manual run.

1. `resolve_window` → `check_serving`: the server is alive and serving a model.
2. `wait_for_rows` (deferrable): the window holds `min_rows` rows, or has closed.
3. `drift_status` (per feature its registered test, by default Anderson-Darling for numeric
   features and chi² for categoricals, corrected across features; every changed feature named
   with how it moved; prediction and label drift beside them) and `serving_metrics` (the
   server's Prometheus metrics). Its log lists every change.
4. `validate_window`: Great Expectations, the champion's suite, on the window's rows.
   **Invalid data fails this task** with every failed expectation named, sends an alert,
   and nothing is retrained.
5. `decide`: drift of what the run acts on (`act_on`: the features by default; the
   predicted classes and the feedback labels on request) and valid data →
   `retrain_parameters` → `submit_retrain` (the KFP retrain pipeline, reason `drift`;
   deferrable, waits for the run); insufficient data or no drift → `no_retrain`.
6. `outcome` (always runs last): **the run's decision in one sentence**, in its XCom: the
   window judged and its rows, drift or not, data refused, retrain submitted or skipped (with
   the cooldown's end). It fails when another task failed, so the run keeps its state.

Beside them, `apply_retention`: rows older than `DRIFTLOOP_LOG_RETENTION_DAYS` (30 by
default) leave the prediction log, except the champion's and previous version's training
windows; its XCom says what was removed.

**Cooldown**: `submit_retrain` runs in the one-slot `driftloop_retrain` pool and skips while
a retrain is running or within `cooldown_minutes` of the last one.
Params: `force` (retrain without drift), `act_on`, `p_value`/`min_effect` (re-decide drift
with other thresholds), `min_rows`, window override, gate thresholds.
"""


@dag(
    dag_id="driftloop_drift_monitor",
    description="Hourly: drift + metrics + data validation of the last hour; retrain on drift",
    **dag_args(cron="@hourly", tag="drift"),
    is_paused_upon_creation=False,
    dagrun_timeout=timedelta(hours=3),
    doc_md=DOC,
    params={
        "force": Param(False, type="boolean",
                       description="Submit a retrain even without drift (data must validate; "
                       "the cooldown still applies)."),
        "min_rows": Param(settings.drift_min_rows, type="integer", minimum=1,
                          description="Rows the window needs before drift is decided."),
        "p_value": Param(None, type=["null", "number"], exclusiveMinimum=0, maximum=1,
                         description="Re-decide drift at this corrected p-value. "
                         "Empty: the server's threshold."),
        "min_effect": Param(None, type=["null", "number"], minimum=0, maximum=1,
                            description="Re-decide drift with this effect-size floor. "
                            "Empty: the server's."),
        "act_on": Param(["features"], type="array",
                        items={"type": "string", "enum": list(decisions.ACT_ON)},
                        examples=list(decisions.ACT_ON),
                        description="What drift moves this run to retrain: the input "
                        "features, the predicted classes (prediction), the feedback labels "
                        "(label)."),
        **window_params(),
        **retrain_params(settings),
    },
)
def driftloop_drift_monitor() -> None:
    @task
    def drift_status(window: dict[str, str]) -> dict:
        from driftloop_airflow.hooks.serving import ServingHook

        params = get_current_context()["params"]
        report = ServingHook(SERVING_CONN_ID).drift_status(window["start"], window["end"])
        verdict = decisions.drift_verdict(report, p_value=params.get("p_value"),
                                          min_effect=params.get("min_effect"),
                                          act_on=params.get("act_on") or ["features"])
        for change in verdict["changes"]:
            log.info("%s %s: %s", "DRIFT" if change["drifted"] else "changed",
                     change["feature"], change["description"])
        for name in ("prediction", "label"):
            part = verdict[name]
            log.info("%s drift: %s", name, part.get("description") if part.get("status") == "ok"
                     else f"no verdict ({part.get('message')})")
        if verdict["refused"].get("rows"):  # never the alarm, never silent
            log.warning("refused inputs: %s", verdict["refused"]["description"])
        return verdict

    @task
    def serving_metrics() -> dict:
        from driftloop_airflow.hooks.serving import ServingHook

        return decisions.metrics_summary(ServingHook(SERVING_CONN_ID).metrics())

    @task.branch
    def decide(verdict: dict, rows_check: dict, validation: dict) -> str:
        params = get_current_context()["params"]
        target, why = decisions.decide(verdict, rows_check, validation,
                                       force=bool(params.get("force")))
        log.info("decision: %s: %s", target, why)
        get_current_context()["ti"].xcom_push(key="decision", value=why)
        return target

    window = resolve_window(period_seconds=int(PERIOD.total_seconds()))
    serving = check_serving()
    rows_check = DriftSensor(
        task_id="wait_for_rows", window_start=window["start"], window_end=window["end"],
        min_rows="{{ params.min_rows }}", poke_interval=30, timeout=2 * 3600,
    )
    verdict = drift_status(window)
    metrics = serving_metrics()
    validation = ValidateWindowOperator(
        task_id="validate_window", window_start=window["start"], window_end=window["end"],
        min_rows="{{ params.min_rows }}",
        report_dir=str(settings.state_dir / "reports" / "airflow"),
    )
    parameters = retrain_parameters(window, serving, reason=REASON_DRIFT)
    submit = SubmitKfpRunOperator(
        task_id="submit_retrain",
        parameters=parameters,
        display_name="driftloop-retrain-drift-{{ run_id }}",
        cooldown_minutes="{{ params.cooldown_minutes }}",
        pool=RETRAIN_POOL,
        timeout=timedelta(minutes=settings.retrain_timeout_minutes),
    )
    no_retrain = EmptyOperator(task_id="no_retrain")

    retention = apply_retention()
    window >> serving >> rows_check >> [verdict, metrics]
    serving >> retention
    [verdict, metrics] >> validation
    branch = decide(verdict, rows_check.output, validation.output)
    branch >> [parameters, no_retrain]
    parameters >> submit
    [submit, no_retrain, retention] >> outcome()


driftloop_drift_monitor()
