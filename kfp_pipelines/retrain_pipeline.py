"""The retrain pipeline: load → validate → train → evaluate and gate → register → deploy.

The parameters are a contract (Airflow submits them, the README documents them); keep
their names stable. Thresholds below zero mean "the spec's gate".

No ``from __future__ import annotations`` here nor in the components: KFP reads the
parameter and artifact types from real annotations.
"""

from pathlib import Path

from kfp import dsl, kubernetes

from driftloop import naming
from kfp_pipelines.components import (
    deploy_model,
    evaluate_model,
    load_data,
    record_rejection,
    register_champion,
    train_model,
    validate_data,
)

PIPELINE_NAME = "driftloop-retrain"
PACKAGE_PATH = Path(__file__).with_name("retrain_pipeline.yaml")

#: Parameter name → default, in the order of the pipeline's signature.
PARAMETERS = {
    "model_name": "",
    "spec": "",
    "trigger": "manual",
    "window_start": "",
    "window_end": "",
    "airflow_run_id": "",
    "deploy_target": "none",
    "min_value": -1.0,
    "max_regression": -1.0,
    "min_fresh_rows": 30,
    "deploy_timeout_s": 300,
}


#: In the cluster every task reads its DRIFTLOOP_* settings from this ConfigMap (keys are
#: the variable names, as in k8s/base/configmap.yaml) and this Secret, in the namespace the
#: KFP runs use. All keys are optional: what is absent keeps the Settings default. The
#: local runner ignores this and passes the caller's environment instead.
SETTINGS_CONFIG_MAP = naming.SETTINGS_CONFIG_MAP
SETTINGS_FROM_CONFIG_MAP = (
    "DRIFTLOOP_MLFLOW_TRACKING_URI", "DRIFTLOOP_MLFLOW_ARTIFACT_ROOT",
    "DRIFTLOOP_MLFLOW_EXPERIMENT", "DRIFTLOOP_SPEC_PATH", "DRIFTLOOP_MODEL_NAME",
    "DRIFTLOOP_SERVER_URL", "DRIFTLOOP_DRIFT_P_VALUE", "DRIFTLOOP_DRIFT_CORRECTION",
    "DRIFTLOOP_DRIFT_MIN_EFFECT", "DRIFTLOOP_DRIFT_MIN_ROWS", "DRIFTLOOP_REFERENCE_MAX_ROWS",
)
SETTINGS_SECRET = "driftloop-pipeline"
SETTINGS_FROM_SECRET = ("DRIFTLOOP_PREDICTION_LOG_URL", "DRIFTLOOP_ADMIN_TOKEN")


def _task(task: dsl.PipelineTask, display: str) -> dsl.PipelineTask:
    # Every step reads live state (data source, prediction log, registry): a cached result
    # would retrain on stale data or skip a promotion, so caching is off everywhere.
    task.set_caching_options(False)
    task.set_display_name(display)
    kubernetes.use_config_map_as_env(task, SETTINGS_CONFIG_MAP,
                                     {k: k for k in SETTINGS_FROM_CONFIG_MAP}, optional=True)
    kubernetes.use_secret_as_env(task, SETTINGS_SECRET, {k: k for k in SETTINGS_FROM_SECRET},
                                 optional=True)
    return task


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="driftloop retrain: load the spec's data and the window's labeled production "
    "rows, validate them, train a challenger, gate it against the champion, register it in "
    "MLflow and roll it out (or record why not).",
)
def retrain_pipeline(
    model_name: str = "",
    spec: str = "",
    trigger: str = "manual",
    window_start: str = "",
    window_end: str = "",
    airflow_run_id: str = "",
    deploy_target: str = "none",
    min_value: float = -1.0,
    max_regression: float = -1.0,
    min_fresh_rows: int = 30,
    deploy_timeout_s: int = 300,
) -> None:
    load = _task(load_data(
        model_name=model_name, spec=spec, trigger=trigger, window_start=window_start,
        window_end=window_end, airflow_run_id=airflow_run_id, deploy_target=deploy_target,
        kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, kfp_run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
    ), "load data")
    run = load.outputs["run"]
    validate = _task(validate_data(run=run, data=load.outputs["data"]), "validate data")
    train = _task(train_model(run=run, data=load.outputs["data"]), "train")
    train.after(validate)
    evaluate = _task(evaluate_model(
        run=run, data=load.outputs["data"], model=train.outputs["model"],
        validation_report=validate.outputs["report"], min_value=min_value,
        max_regression=max_regression, min_fresh_rows=min_fresh_rows,
    ), "evaluate and gate")
    with dsl.If(evaluate.outputs["passed"] == True, name="gate-passed"):  # noqa: E712
        register = _task(register_champion(
            run=run, run_id=train.outputs["run_id"], model_uri=train.outputs["model_uri"],
            gate=evaluate.outputs["gate"],
        ), "register champion")
        _task(deploy_model(
            run=run, deploy_target=deploy_target, version=register.outputs["deploy_version"],
            old_champion=register.outputs["old_champion"],
            old_previous=register.outputs["old_previous"], timeout_s=deploy_timeout_s,
        ), "deploy")
    with dsl.Else(name="gate-failed"):
        _task(record_rejection(
            run=run, run_id=train.outputs["run_id"], model_uri=train.outputs["model_uri"],
            gate=evaluate.outputs["gate"],
        ), "record rejection")


def compile_pipeline(path: Path = PACKAGE_PATH) -> Path:
    """Write the pipeline package (YAML) that the KFP API server accepts."""
    from kfp import compiler

    compiler.Compiler().compile(retrain_pipeline, package_path=str(path))
    return path
