"""A local driftloop for pipeline tests: MLflow (SQLite) with an Iris champion v1, a
prediction log, and ``python -m kfp_pipelines run-local`` run the way Airflow runs it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftloop.settings import PROJECT_ROOT, Settings
from tests.conftest import IRIS_SPEC
from tests.processes import wait_until_answers

ESTIMATORS_DIR = Path(__file__).parent / "estimators"
MODEL = "iris-classifier"
WINDOW = ("2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z")
#: A recalibrated petal sensor: the champion gets ~40% of these right, a model retrained
#: on them ~97%, and the champion's expectation suite still accepts them (drift, not breakage).
PETAL_SHIFT = {"petal_length": 1.5, "petal_width": 0.6}


def iris_spec_with(path: Path, estimator: str, params: str) -> Path:
    """The Iris spec (same name, data and gate) with another estimator, written to ``path``."""
    path.write_text(f"""
name: {MODEL}
data: {{source: sklearn:iris}}
target: species
features: {{numeric: [sepal_length, sepal_width, petal_length, petal_width]}}
estimator: {{class: {estimator}, params: {params}}}
gate: {{metric: accuracy, min_value: 0.85, max_regression: 0.02}}
""")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def iris_rows(n: int, seed: int, shift: dict[str, float] | None = None,
              scale: dict[str, float] | None = None) -> pd.DataFrame:
    """Iris-like rows with their true species: resampled, jittered, optionally shifted."""
    from driftloop.data import load_builtin

    base = load_builtin("iris")
    rng = np.random.default_rng(seed)
    rows = base.sample(n, replace=True, random_state=seed).reset_index(drop=True)
    for col in ("sepal_length", "sepal_width", "petal_length", "petal_width"):
        rows[col] = (rows[col] + rng.normal(0, 0.05, n)).clip(lower=0.05)
    for col, delta in (shift or {}).items():
        rows[col] = rows[col] + delta
    for col, factor in (scale or {}).items():
        rows[col] = rows[col] * factor
    return rows


@dataclass
class LocalLoop:
    """One test's driftloop state directory and the environment its processes share."""

    state: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return Settings(state_dir=self.state, spec_path=IRIS_SPEC)

    def client(self) -> Any:
        from driftloop.registry import connect

        return connect(self.settings)

    def alias(self, alias: str) -> str | None:
        from driftloop.registry import alias_version

        mv = alias_version(self.client(), MODEL, alias)
        return None if mv is None else str(mv.version)

    def versions(self) -> dict[str, dict[str, str]]:
        found = self.client().search_model_versions(f"name = '{MODEL}'")
        return {str(mv.version): dict(mv.tags) for mv in found}

    def log_labeled_rows(self, rows: pd.DataFrame, window: tuple[str, str] = WINDOW,
                         served_version: str = "1") -> None:
        """Write rows into the prediction log as the server does (the champion's predictions,
        spread over the window) and record their true species as feedback."""
        from driftloop.predlog import PredictionLog, rows_for, to_micros
        from driftloop.registry import load_bundle

        bundle = load_bundle(self.client(), MODEL, served_version)
        features = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
        numeric = rows[features].to_numpy(dtype=np.float64)
        proba = bundle.predictor.outputs(numeric, np.empty((len(rows), 0), dtype=object))
        predicted = [bundle.labels[i] for i in proba.argmax(axis=1)]
        start, end = (to_micros(w) for w in window)
        step = (end - start) // (len(rows) + 1)
        log = PredictionLog(self.settings.log_url)
        ids = [uuid.uuid4().hex for _ in range(len(rows))]
        out = []
        for i, rid in enumerate(ids):
            out += rows_for(start + (i + 1) * step, [rid], MODEL, served_version,
                            numeric[i : i + 1], None, [predicted[i]], proba[i : i + 1],
                            bundle.labels)
        log.write_rows(out)
        log.add_feedback(list(zip(ids, rows["species"].astype(str), strict=True)))
        log.dispose()

    def run_pipeline(self, *params: str, env: dict[str, str] | None = None,
                     timeout: float = 600) -> tuple[dict[str, Any], subprocess.CompletedProcess]:
        """``python -m kfp_pipelines run-local --param ...`` as the Airflow side runs it;
        returns the final JSON line and the process."""
        command = [sys.executable, "-m", "kfp_pipelines", "run-local"]
        for param in params:
            command += ["--param", param]
        proc = subprocess.run(command, cwd=PROJECT_ROOT, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)
        lines = proc.stdout.strip().splitlines()
        assert lines, f"run-local printed nothing on stdout; stderr:\n{proc.stderr[-4000:]}"
        return json.loads(lines[-1]), proc


def base_env(state: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_")}
    env.update(DRIFTLOOP_STATE_DIR=str(state), DRIFTLOOP_SPEC_PATH=str(IRIS_SPEC),
               PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT), str(ESTIMATORS_DIR)]), **extra)
    return env


@pytest.fixture(scope="session")
def champion_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state directory whose MLflow store holds the bootstrapped Iris champion (v1).

    Tests copy its store (the artifacts stay here, where the store points): bootstrapping
    once saves ~10 s per test.
    """
    from driftloop.bootstrap import bootstrap

    state = tmp_path_factory.mktemp("champion-template") / "state"
    bootstrap(Settings(state_dir=state, spec_path=IRIS_SPEC))
    return state


def make_loop(champion_template: Path, where: Path) -> LocalLoop:
    state = where / "state"
    state.mkdir(parents=True)
    shutil.copyfile(champion_template / "mlflow.db", state / "mlflow.db")
    return LocalLoop(state, base_env(state))


@pytest.fixture
def loop(champion_template: Path, tmp_path: Path) -> LocalLoop:
    return make_loop(champion_template, tmp_path)


@dataclass
class Server:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str) -> Any:
        import httpx

        return httpx.get(self.url + path, timeout=30)

    def post(self, path: str, body: Any) -> Any:
        import httpx

        return httpx.post(self.url + path, json=body, timeout=60)

    def served_version(self) -> str:
        response = self.get("/model")
        assert response.status_code == 200, response.text
        return str(response.json()["version"])

    def predict_and_label(self, rows: pd.DataFrame) -> list[str]:
        """Serve the rows (``records``), then send their true species as feedback;
        returns the served labels."""
        features = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
        served: list[str] = []
        for start in range(0, len(rows), 100):
            chunk = rows.iloc[start : start + 100]
            answer = self.post("/predict", {"records": chunk[features].to_dict("records")})
            assert answer.status_code == 200, answer.text
            predictions = answer.json()["predictions"]
            labels = [{"request_id": p["request_id"], "label": truth}
                      for p, truth in zip(predictions, chunk["species"], strict=True)]
            sent = self.post("/feedback", {"labels": labels})
            assert sent.status_code == 200, sent.text
            served += [p["label"] for p in predictions]
        return served


@contextmanager
def running_server(loop: LocalLoop, log_dir: Path, token: str = "s3cret") -> Iterator[Server]:
    """``driftloop serve`` on the loop's state, on a free port, without the test
    estimators on its path; the loop's pipeline env points at it."""

    port = free_port()
    env = base_env(loop.state, DRIFTLOOP_ADMIN_TOKEN=token)
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    log = log_dir / f"server-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "driftloop", "serve", "--host", "127.0.0.1", "--port",
             str(port)], cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(process, url + "/ready", log, timeout=120, interval=0.3)
        loop.env.update(DRIFTLOOP_SERVER_URL=url, DRIFTLOOP_ADMIN_TOKEN=token)
        yield Server(url, token, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def window_after(minutes: int) -> tuple[str, str]:
    """A window that ends now + ``minutes`` (for rows the server logs with real times)."""
    now = datetime.now(UTC).replace(microsecond=0)
    return ((now - timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
            (now + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z"))


def assert_retrain_artifacts(summary: dict[str, Any], production_rows: int) -> None:
    """A promoting drift retrain's KFP artifacts (``summary``: run-local's result line):
    dataset provenance, the evaluation report with its drift table and plots, the metrics
    and the confusion matrix KFP's UI shows."""
    gate = summary["gate"]
    run_dir = Path(summary["artifacts"])
    load_out = json.loads((run_dir / "load-data" / "executor_output.json").read_text())
    meta = load_out["artifacts"]["data"]["artifacts"][0]["metadata"]
    assert (meta["rows_source"], meta["rows_production"]) == (150, production_rows)
    assert json.loads(meta["production_rows_by_served_version"]) == {"1": production_rows}
    report = (run_dir / "evaluate-model" / "report").read_text()
    assert "Drift: fresh rows against the champion" in report
    assert report.count("<td>DRIFT</td>") >= 2  # petal_length and petal_width
    assert report.count("<img alt=") == 4  # one distribution plot per feature
    assert "Served predictions in the window, against feedback" in report
    evaluate_out = json.loads((run_dir / "evaluate-model" /
                               "executor_output.json").read_text())
    metrics = evaluate_out["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert metrics["gate_passed"] == 1.0
    assert metrics["challenger_gate_accuracy"] == pytest.approx(float(gate["challenger"]))
    confusion = evaluate_out["artifacts"]["confusion"]["artifacts"][0]["metadata"]
    matrix = confusion["confusionMatrix"]
    assert [c["displayName"] for c in matrix["annotationSpecs"]] == \
        ["setosa", "versicolor", "virginica"]
    assert sum(map(sum, (r["row"] for r in matrix["rows"]))) == int(gate["holdout_rows"])
