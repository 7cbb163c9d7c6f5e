"""The retrain pipeline's components: typed KFP v2 lightweight components, kept thin.

Each body imports inside the function (KFP embeds the source, not the module) and calls the
step in :mod:`driftloop.retrain`; the base image is the trainer image from
``docker/images.env``, which carries driftloop and the kfp SDK, so no component installs
anything (``packages_to_install=[]``, ``install_kfp_package=False``): the local runner uses
the development environment as it is.

Between steps a JSON *run record* (model, spec, trigger, window, Airflow and KFP run ids,
normalised by load_data) travels as one string parameter.

No ``from __future__ import annotations``: KFP reads the types from real annotations.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from driftloop.naming import images

TRAINER_IMAGE = images()["DRIFTLOOP_TRAINER_IMAGE"]


def component(func):  # type: ignore[no-untyped-def]
    """``@dsl.component`` on the trainer image, installing nothing."""
    return dsl.component(func, base_image=TRAINER_IMAGE, packages_to_install=[],
                         install_kfp_package=False)


@component
def load_data(
    model_name: str, spec: str, trigger: str, window_start: str, window_end: str,
    airflow_run_id: str, deploy_target: str, kfp_run_id: str, kfp_run_name: str,
    data: Output[Dataset],
) -> NamedTuple("LoadOutputs", [("run", str), ("rows", int)]):
    """The spec's data source (re-read) plus the window's labeled production rows."""
    from collections import namedtuple
    from pathlib import Path

    from driftloop import retrain, run_context

    with retrain.step("load_data"):
        run_context.check_deploy_target(deploy_target)  # fail now, not after training
        ctx = run_context.context(model_name, spec)
        lin = run_context.Lineage(trigger, window_start, window_end, airflow_run_id,
                              kfp_run_id, kfp_run_name)
        meta = retrain.load_data(ctx, lin, Path(data.path))
        data.metadata.update(meta)
        print(f"load_data: {meta['rows_source']} source rows + {meta['rows_production']} "
              f"labeled production rows")
        out = namedtuple("LoadOutputs", ["run", "rows"])
        return out(run_context.run_record(ctx.name, spec, lin), int(meta["rows_total"]))


@component
def validate_data(run: str, data: Input[Dataset], report: Output[HTML]) -> None:
    """Schema checks and the champion's Great Expectations suite; fails on invalid data."""
    from pathlib import Path

    from driftloop import retrain, run_context

    with retrain.step("validate_data"):
        ctx, _ = run_context.from_run_record(run)
        summary = retrain.validate_data(ctx, Path(data.path), Path(report.path))
        report.metadata.update({"valid": summary["valid"], "suite": summary["suite"]})
        print(f"validate_data: {summary['rows']} rows valid against the suite "
              f"{summary['suite']}")


@component
def train_model(
    run: str, data: Input[Dataset], model: Output[Model],
) -> NamedTuple("TrainOutputs", [("run_id", str), ("model_uri", str)]):
    """The spec's estimator → an MLflow run (model, ONNX form, reference, new suite)."""
    from collections import namedtuple
    from pathlib import Path

    from driftloop import retrain, run_context

    with retrain.step("train_model"):
        ctx, lin = run_context.from_run_record(run)
        info = retrain.train(ctx, lin, Path(data.path), Path(model.path))
        model.metadata.update({
            "mlflow_run_id": info["run_id"], "model_uri": info["model_uri"],
            "inference_form": info["inference_form"], "framework": "scikit-learn",
            **{f"holdout_{k}": v for k, v in info["metrics"].items()},
        })
        print(f"train_model: MLflow run {info['run_id']}, {info['inference_form']} form")
        out = namedtuple("TrainOutputs", ["run_id", "model_uri"])
        return out(info["run_id"], info["model_uri"])


@component
def evaluate_model(
    run: str, data: Input[Dataset], model: Input[Model], validation_report: Input[HTML],
    min_value: float, max_regression: float, min_fresh_rows: int, metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics], report: Output[HTML],
) -> NamedTuple("EvaluateOutputs", [("passed", bool), ("reason", str),
                                    ("gate", str)]):
    """Challenger vs champion on the same holdout, then the gate (thresholds < 0: the
    spec's). Both reports also go on the challenger's MLflow run (reports/*.html). The
    confusion matrix is a classifier's; a regressor leaves it empty (its predicted-vs-actual
    and residual plots are in the report)."""
    import json
    from collections import namedtuple
    from pathlib import Path

    from driftloop import retrain, run_context

    with retrain.step("evaluate_model"):
        ctx, _ = run_context.from_run_record(run)
        result = retrain.evaluate(
            ctx, Path(data.path), model.metadata["model_uri"],
            min_value=None if min_value < 0 else min_value,
            max_regression=None if max_regression < 0 else max_regression,
            min_fresh_rows=min_fresh_rows, report_path=Path(report.path),
            run_id=model.metadata["mlflow_run_id"],
            validation_report=Path(validation_report.path),
        )
        for key, value in result.flat_metrics().items():
            metrics.log_metric(key, value)
        matrix = result.scores["challenger"]["gate"].get("confusion_matrix")
        if matrix is not None:  # a classifier's; a regressor's plots are in the report
            confusion.log_confusion_matrix(result.labels, matrix)
        report.metadata["gate_passed"] = result.gate.passed
        print(f"evaluate_model: {result.gate.reason}")
        out = namedtuple("EvaluateOutputs", ["passed", "reason", "gate"])
        return out(result.gate.passed, result.gate.reason, json.dumps(result.gate.as_dict()))


@component
def register_champion(
    run: str, run_id: str, model_uri: str, gate: str,
) -> NamedTuple("RegisterOutputs", [("version", str), ("deploy_version", str),
                                    ("old_champion", str), ("old_previous", str)]):
    """Register the challenger and alias it ``champion`` (old champion → ``previous``)."""
    import json
    from collections import namedtuple

    from driftloop import promotion, retrain, run_context
    from driftloop.gate import GateResult

    with retrain.step("register_champion"):
        ctx, lin = run_context.from_run_record(run)
        outcome = promotion.register(ctx, lin, run_id, model_uri,
                                   GateResult.from_dict(json.loads(gate)), promote=True)
        print(f"register_champion: {outcome.note}")
        out = namedtuple("RegisterOutputs",
                         ["version", "deploy_version", "old_champion", "old_previous"])
        return out(outcome.version, outcome.deploy_version, outcome.old_champion,
                   outcome.old_previous)


@component
def record_rejection(run: str, run_id: str, model_uri: str, gate: str) -> str:
    """Register the rejected challenger without alias, tagged with the reason."""
    import json

    from driftloop import promotion, retrain, run_context
    from driftloop.gate import GateResult

    with retrain.step("record_rejection"):
        ctx, lin = run_context.from_run_record(run)
        outcome = promotion.register(ctx, lin, run_id, model_uri,
                                   GateResult.from_dict(json.loads(gate)), promote=False)
        print(f"record_rejection: {outcome.note}")
        return outcome.version


@component
def deploy_model(
    run: str, deploy_target: str, version: str, old_champion: str, old_previous: str,
    timeout_s: int,
) -> str:
    """Serve the new champion (local hot reload or Kubernetes rollout); on failure the
    aliases go back and the old model keeps serving."""
    from driftloop import promotion, retrain, run_context

    with retrain.step("deploy_model"):
        ctx, _ = run_context.from_run_record(run)
        result = promotion.deploy(ctx, deploy_target, version, old_champion=old_champion,
                                old_previous=old_previous, timeout_s=float(timeout_s))
        print(f"deploy_model: {result.status}: {result.detail}")
        return result.status
