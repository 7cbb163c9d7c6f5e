"""The compiled pipeline package: current, loadable by the kfp SDK, every task named, the
artifact types declared (what the KFP v2 samples' verify() checks on a finished run), the
cluster wiring (trainer image, no installs, settings from a ConfigMap and a Secret)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftloop.naming import images
from driftloop.settings import PROJECT_ROOT
from kfp_pipelines.retrain_pipeline import (
    PACKAGE_PATH,
    PARAMETERS,
    SETTINGS_CONFIG_MAP,
    SETTINGS_FROM_CONFIG_MAP,
    SETTINGS_FROM_SECRET,
    SETTINGS_SECRET,
    compile_pipeline,
)

TASKS = ["load-data", "validate-data", "train-model", "evaluate-model", "register-champion",
         "deploy-model", "record-rejection"]
#: task → {output artifact: schema title}
ARTIFACTS = {
    "load-data": {"data": "system.Dataset"},
    "validate-data": {"report": "system.HTML"},
    "train-model": {"model": "system.Model"},
    "evaluate-model": {"metrics": "system.Metrics", "confusion": "system.ClassificationMetrics",
                       "report": "system.HTML"},
    "register-champion": {}, "deploy-model": {}, "record-rejection": {},
}


@pytest.fixture(scope="module")
def package() -> Any:
    from kfp import components

    return components.load_component_from_file(str(PACKAGE_PATH))


def _walk(spec: Any) -> tuple[dict[str, tuple[Any, str]], dict[str, Any]]:
    """(container tasks: name → (task spec, the DAG it sits in), sub-DAG tasks: name → task
    spec), through the dsl.If/Else sub-DAGs."""
    tasks: dict[str, tuple[Any, str]] = {}
    dags: dict[str, Any] = {}

    def walk(dag: Any, where: str) -> None:
        for name, task in dag.tasks.items():
            component = spec.components[task.component_ref.name]
            if component.WhichOneof("implementation") == "dag":
                dags[task.task_info.name] = task
                walk(component.dag, task.task_info.name)
            else:
                tasks[name] = (task, where)

    walk(spec.root.dag, "root")
    return tasks, dags


def _all_tasks(spec: Any) -> dict[str, tuple[Any, str]]:
    return _walk(spec)[0]


def test_committed_package_is_current(tmp_path: Path) -> None:
    fresh = compile_pipeline(tmp_path / "retrain_pipeline.yaml")
    assert fresh.read_text() == PACKAGE_PATH.read_text(), (
        "kfp_pipelines/retrain_pipeline.yaml is stale: run `python -m kfp_pipelines compile` "
        "and commit it")


def test_compile_command_writes_the_package(tmp_path: Path) -> None:
    out = tmp_path / "p.yaml"
    proc = subprocess.run([sys.executable, "-m", "kfp_pipelines", "compile", "--output",
                           str(out)], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          check=True)
    assert proc.stderr.strip() == f"wrote {out}"
    assert out.read_text() == PACKAGE_PATH.read_text()


def test_package_names_every_task_with_conditions_around_promotion(package: Any) -> None:
    spec = package.pipeline_spec
    assert spec.pipeline_info.name == "driftloop-retrain"
    tasks = _all_tasks(spec)
    assert sorted(tasks) == sorted(TASKS)
    where = {name: dag for name, (_, dag) in tasks.items()}
    for name in TASKS[:4]:
        assert where[name] == "root"
    assert where["register-champion"] == where["deploy-model"] == "gate-passed"
    assert where["record-rejection"] == "gate-failed"
    dags = _walk(spec)[1]
    assert dags["gate-passed"].trigger_policy.condition == \
        "inputs.parameter_values['pipelinechannel--evaluate-model-passed'] == true"
    assert dags["gate-failed"].trigger_policy.condition == \
        "!(inputs.parameter_values['pipelinechannel--evaluate-model-passed'] == true)"
    # Display names for the KFP UI, and no caching anywhere (every step reads live state).
    assert {name: task.task_info.name for name, (task, _) in tasks.items()} == {
        "load-data": "load data", "validate-data": "validate data", "train-model": "train",
        "evaluate-model": "evaluate and gate", "register-champion": "register champion",
        "deploy-model": "deploy", "record-rejection": "record rejection",
    }
    for name, (task, _) in tasks.items():
        assert not task.caching_options.enable_cache, name
    # train waits for validate (and load, whose dataset it reads).
    assert sorted(spec.root.dag.tasks["train-model"].dependent_tasks) == ["load-data",
                                                                        "validate-data"]


def test_package_declares_the_artifact_types(package: Any) -> None:
    spec = package.pipeline_spec
    for name, (task, _) in _all_tasks(spec).items():
        component = spec.components[task.component_ref.name]
        declared = {out: art.artifact_type.schema_title
                    for out, art in component.output_definitions.artifacts.items()}
        assert declared == ARTIFACTS[name], name
    inputs = {name: {i: a.artifact_type.schema_title
                     for i, a in spec.components[task.component_ref.name]
                     .input_definitions.artifacts.items()}
              for name, (task, _) in _all_tasks(spec).items()}
    assert inputs["validate-data"] == {"data": "system.Dataset"}
    assert inputs["evaluate-model"] == {"data": "system.Dataset", "model": "system.Model",
                                        "validation_report": "system.HTML"}


def test_package_parameters_are_the_documented_contract(package: Any) -> None:
    params = package.pipeline_spec.root.input_definitions.parameters
    assert sorted(params) == sorted(PARAMETERS)
    from kfp.pipeline_spec import pipeline_spec_pb2

    kinds = {str: "STRING", float: "NUMBER_DOUBLE", int: "NUMBER_INTEGER"}
    for name, default in PARAMETERS.items():
        spec = params[name]
        assert spec.parameter_type == getattr(pipeline_spec_pb2.ParameterType,
                                              kinds[type(default)]), name
        assert spec.default_value == _proto_value(default), name
        assert spec.is_optional


def _proto_value(value: Any) -> Any:
    from google.protobuf import struct_pb2

    out = struct_pb2.Value()
    if isinstance(value, str):
        out.string_value = value
    else:
        out.number_value = float(value)
    return out


def test_executors_run_on_the_trainer_image_and_install_nothing() -> None:
    raw, _ = yaml.safe_load_all(PACKAGE_PATH.read_text())
    executors = raw["deploymentSpec"]["executors"]
    assert len(executors) == len(TASKS)
    for name, executor in executors.items():
        container = executor["container"]
        assert container["image"] == images()["DRIFTLOOP_TRAINER_IMAGE"], name
        script = " ".join(container["command"])
        assert "pip install" not in script, name
        assert "kfp.dsl.executor_main" in script, name
        # The component bodies call into driftloop: the embedded source stays thin.
        assert re.search(r"from driftloop import [a-z_, ]*\bretrain\b", script), name


def test_every_executor_reads_settings_from_the_configmap_and_secret() -> None:
    raw, platforms = yaml.safe_load_all(PACKAGE_PATH.read_text())
    platform = platforms["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert sorted(platform) == sorted(raw["deploymentSpec"]["executors"])
    for name, config in platform.items():
        (cm,) = config["configMapAsEnv"]
        assert cm["configMapName"] == SETTINGS_CONFIG_MAP and cm["optional"] is True, name
        assert [(k["configMapKey"], k["envVar"]) for k in cm["keyToEnv"]] == \
            [(k, k) for k in SETTINGS_FROM_CONFIG_MAP]
        (secret,) = config["secretAsEnv"]
        assert secret["secretName"] == SETTINGS_SECRET and secret["optional"] is True, name
        assert [(k["secretKey"], k["envVar"]) for k in secret["keyToEnv"]] == \
            [(k, k) for k in SETTINGS_FROM_SECRET]


def test_settings_keys_are_real_settings_fields() -> None:
    from driftloop.settings import Settings

    fields = {f"DRIFTLOOP_{name.upper()}" for name in Settings.model_fields}
    assert set(SETTINGS_FROM_CONFIG_MAP) | set(SETTINGS_FROM_SECRET) <= fields
