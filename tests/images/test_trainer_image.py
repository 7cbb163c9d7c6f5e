"""The trainer image runs the retrain pipeline's steps exactly as the KFP executor calls
them: each step's container command and arguments taken from the compiled
kfp_pipelines/retrain_pipeline.yaml, with an executor input naming local paths, against an
MLflow store on a mounted state volume. load_data then train_model: their output artifacts
and parameters exist, and the model is logged in the mounted store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftloop.settings import PROJECT_ROOT
from tests.images.conftest import built, owned_dir, run

pytestmark = pytest.mark.images

UID = 10001
PACKAGE = PROJECT_ROOT / "kfp_pipelines" / "retrain_pipeline.yaml"
STATE = "/home/driftloop/.driftloop"
OUT = "/work"


def _executor(step: str) -> dict[str, Any]:
    documents = list(yaml.safe_load_all(PACKAGE.read_text()))
    executors = documents[0]["deploymentSpec"]["executors"]
    return executors[f"exec-{step.replace('_', '-')}"]["container"]


def _run_step(image: str, out: Path, state: Path, step: str,
              executor_input: dict[str, Any]) -> dict[str, Any]:
    """One component, as the KFP launcher runs it: the executor's command, its arguments
    with ``{{$}}`` replaced by the executor input."""
    spec = _executor(step)
    args = [json.dumps(executor_input) if a == "{{$}}" else a for a in spec["args"]]
    proc = run("run", "--rm", "--network", "none", "-v", f"{out}:{OUT}",
               "-v", f"{state}:{STATE}", "--entrypoint", spec["command"][0], image,
               *spec["command"][1:], *args, timeout=900)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    executor_output = Path(str(out) + executor_input["outputs"]["outputFile"][len(OUT):])
    return json.loads(executor_output.read_text()) if executor_output.is_file() else {}


def _params(step: str, out: str, **names: str) -> dict[str, Any]:
    return {name: {"outputFile": f"{out}/{step}/{name}"} for name in names}


def _artifact(name: str, schema: str, uri: str) -> dict[str, Any]:
    """One artifact of an executor input, at a local path."""
    return {name: {"artifacts": [{"name": name, "type": {"schemaTitle": schema},
                                  "uri": uri, "metadata": {}}]}}


def test_load_data_then_train_model_run_in_the_trainer_image(tmp_path: Path) -> None:
    image = built("trainer")
    out = owned_dir(tmp_path / "out", UID)
    state = owned_dir(tmp_path / "state", UID)
    for step in ("load_data", "train_model"):
        owned_dir(out / step, UID)

    loaded = _run_step(image, out, state, "load_data", {
        "inputs": {"parameterValues": {
            "model_name": "", "spec": "", "trigger": "manual", "window_start": "",
            "window_end": "", "airflow_run_id": "", "deploy_target": "local",
            "kfp_run_id": "image-test", "kfp_run_name": "image-test"}},
        "outputs": {
            "artifacts": _artifact("data", "system.Dataset", f"{OUT}/load_data/data"),
            "parameters": _params("load_data", OUT, run="", rows=""),
            "outputFile": f"{OUT}/load_data/executor_output.json"}})
    data = out / "load_data" / "data"
    assert data.is_file() and data.stat().st_size > 0  # the Parquet dataset
    # The executor reports output parameters in its output file, as KFP's launcher reads.
    assert loaded["parameterValues"]["rows"] == 150  # Iris, the image's default spec
    record = loaded["parameterValues"]["run"]
    assert json.loads(record)["trigger"] == "manual"
    assert loaded["artifacts"]["data"]["artifacts"][0]["metadata"]["rows_source"] == 150

    trained = _run_step(image, out, state, "train_model", {
        "inputs": {
            "parameterValues": {"run": record},
            "artifacts": _artifact("data", "system.Dataset", f"{OUT}/load_data/data")},
        "outputs": {
            "artifacts": _artifact("model", "system.Model", f"{OUT}/train_model/model"),
            "parameters": _params("train_model", OUT, model_uri="", run_id=""),
            "outputFile": f"{OUT}/train_model/executor_output.json"}})
    model_dir = out / "train_model" / "model"
    assert (model_dir / "model.onnx").is_file() and (model_dir / "metadata.json").is_file()
    run_id = trained["parameterValues"]["run_id"]
    assert trained["parameterValues"]["model_uri"].startswith("models:/")
    assert json.loads((model_dir / "metadata.json").read_text())["run_id"] == run_id
    assert trained["artifacts"]["model"]["artifacts"][0]["metadata"]["mlflow_run_id"] == run_id
    with sqlite3.connect(state / "mlflow.db") as db:  # logged in the mounted store
        (status,) = db.execute("SELECT status FROM runs WHERE run_uuid = ?",
                               (run_id,)).fetchone()
    assert status == "FINISHED"
