"""Bootstrap into a real MLflow store (SQLite, and PostgreSQL when available)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from driftloop.bootstrap import bootstrap
from driftloop.errors import DataError, DriftloopError, RegistryError, SpecError
from driftloop.registry import (
    ALIAS_CHAMPION,
    ALIAS_PREVIOUS,
    alias_version,
    connect,
    load_bundle,
)
from driftloop.settings import PROJECT_ROOT, Settings
from tests.conftest import PENGUINS_SPEC


def _registry_is_empty(settings: Settings) -> bool:
    client = connect(settings)
    return not client.search_registered_models() and not client.search_model_versions()


def test_bootstrap_registers_champion_with_lineage_and_is_idempotent(
    mlflow_settings: Settings,
) -> None:
    first = bootstrap(mlflow_settings)
    assert first.created
    info = first.info
    assert info["name"] == "iris-classifier"
    assert info["version"] == "1"
    assert info["aliases"] == [ALIAS_CHAMPION]
    assert info["inference_form"] == "onnx"
    assert info["metrics"]["accuracy"] >= 0.85
    tags = info["tags"]
    assert tags["trigger"] == "bootstrap"
    assert len(tags["spec_hash"]) == 16 and len(tags["data_fingerprint"]) == 16
    assert tags["git_commit"]

    again = bootstrap(mlflow_settings)
    assert not again.created
    assert again.info["version"] == "1"
    client = connect(mlflow_settings)
    assert len(client.search_model_versions("name='iris-classifier'")) == 1

    forced = bootstrap(mlflow_settings, force=True)
    assert forced.created and forced.info["version"] == "2"
    assert forced.previous_version == "1"
    assert str(alias_version(client, "iris-classifier", ALIAS_CHAMPION).version) == "2"
    assert str(alias_version(client, "iris-classifier", ALIAS_PREVIOUS).version) == "1"


def test_bundle_round_trip_onnx_and_sklearn_agree(mlflow_settings: Settings) -> None:
    bootstrap(mlflow_settings)
    client = connect(mlflow_settings)
    onnx = load_bundle(client, "iris-classifier", "1")
    sk = load_bundle(client, "iris-classifier", "1", prefer_onnx=False)
    assert (onnx.form, sk.form) == ("onnx", "sklearn")
    assert onnx.labels == ["setosa", "versicolor", "virginica"]
    assert list(onnx.reference.columns) == onnx.spec.feature_names
    assert len(onnx.reference) == 150
    assert onnx.suite["expectations"]
    assert onnx.metadata["onnx_parity"]["ok"] is True
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])
    empty = np.empty((3, 0), dtype=object)
    p_onnx = onnx.predictor.outputs(rows, empty)
    p_sk = sk.predictor.outputs(rows, empty)
    np.testing.assert_allclose(p_onnx, p_sk, atol=1e-5)
    assert [onnx.labels[i] for i in p_onnx.argmax(axis=1)] == ["setosa", "virginica",
                                                               "versicolor"]


def test_champion_loads_in_a_new_process(mlflow_settings: Settings) -> None:
    bootstrap(mlflow_settings)
    code = (
        "import os, json, mlflow, pandas as pd\n"
        "os.environ['MLFLOW_ALLOW_PICKLE_DESERIALIZATION'] = 'true'\n"
        "mlflow.set_tracking_uri(os.environ['URI']); mlflow.set_registry_uri(os.environ['URI'])\n"
        "m = mlflow.sklearn.load_model('models:/iris-classifier@champion')\n"
        "row = pd.DataFrame([[5.1, 3.5, 1.4, 0.2]], columns=['sepal_length', 'sepal_width', "
        "'petal_length', 'petal_width'])\n"
        "print(json.dumps(list(m.predict(row))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "URI": mlflow_settings.tracking_uri}, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["setosa"]


def test_penguins_spec_bootstraps_with_categorical_features(settings: Settings) -> None:
    penguins = settings.model_copy(update={"spec_path": PENGUINS_SPEC})
    result = bootstrap(penguins)
    assert result.info["name"] == "penguins-classifier"
    bundle = load_bundle(connect(penguins), "penguins-classifier", result.info["version"])
    assert bundle.form == "onnx"
    assert bundle.metadata["categorical_features"] == ["island", "sex"]
    numeric = np.array([[39.1, 18.7, 181.0, 3750.0], [47.0, 14.5, 215.0, 5000.0]])
    categorical = np.array([["Torgersen", "male"], ["Atlantis", "female"]], dtype=object)
    labels = [bundle.labels[i] for i in
              bundle.predictor.outputs(numeric, categorical).argmax(axis=1)]
    assert labels == ["Adelie", "Gentoo"]


@pytest.mark.parametrize(
    ("spec_text", "error", "message"),
    [
        ("name: [", SpecError, "not valid YAML"),
        ("name: x\ndata: {source: nothere.csv}\ntarget: y\nfeatures: {numeric: [a]}\n"
         "estimator: {class: sklearn.tree.DecisionTreeClassifier}\n", DataError,
         "data file not found"),
        ("name: x\ndata: {source: sklearn:iris}\ntarget: label\nfeatures: {numeric: "
         "[sepal_length]}\nestimator: {class: sklearn.tree.DecisionTreeClassifier}\n",
         DataError, "target 'label' not in the data"),
        ("name: x\ndata: {source: sklearn:iris}\ntarget: species\nfeatures: {numeric: "
         "[sepal_length]}\nestimator: {class: sklearn.tree.NoTree}\n", SpecError,
         "cannot be imported"),
        ("name: x\ndata: {source: sklearn:iris}\ntarget: species\nfeatures: {numeric: "
         "[sepal_width]}\nestimator: {class: sklearn.dummy.DummyClassifier}\n"
         "gate: {min_value: 0.9}\n", DriftloopError, "does not clear the spec's floor 0.9"),
    ],
    ids=["yaml", "data-file", "target", "estimator", "below-floor"],
)
def test_bad_input_writes_nothing(
    settings: Settings, tmp_path: Path, spec_text: str, error: type, message: str
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(spec_text)
    bad = settings.model_copy(update={"spec_path": spec})
    with pytest.raises(error, match=message):
        bootstrap(bad)
    if Path(settings.tracking_uri.removeprefix("sqlite:///")).exists():
        assert _registry_is_empty(settings)


def test_unreachable_tracking_server_is_named(settings: Settings) -> None:
    remote = settings.model_copy(update={"mlflow_tracking_uri": "http://127.0.0.1:9"})
    with pytest.raises(RegistryError, match=r"MLflow tracking server http://127.0.0.1:9 is "
                                            r"unreachable"):
        bootstrap(remote)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "driftloop", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=300, cwd=PROJECT_ROOT)


def test_cli_bootstrap_info_and_one_line_errors(tmp_path: Path) -> None:
    env = {"DRIFTLOOP_STATE_DIR": str(tmp_path / "state")}
    out = _cli("bootstrap", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "champion created:" in out.stdout
    assert "version:         1" in out.stdout
    assert "MLflow UI:" in out.stdout
    assert "training RandomForestClassifier" in out.stderr  # progress lines
    info = _cli("info", "--json", env=env)
    assert info.returncode == 0, info.stderr[-2000:]
    assert json.loads(info.stdout)["aliases"] == ["champion"]

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    err = _cli("bootstrap", "--spec", str(bad), env=env)
    assert err.returncode == 1
    lines = err.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("driftloop: error: invalid model spec")

    remote = _cli("bootstrap", env={**env, "DRIFTLOOP_MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})
    assert remote.returncode == 1
    assert remote.stderr.strip().splitlines()[-1].startswith(
        "driftloop: error: MLflow tracking server http://127.0.0.1:9 is unreachable")
