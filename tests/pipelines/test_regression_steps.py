"""The retrain pipeline's steps on the bundled regression spec, in process, against a real
MLflow store and prediction log: labels logged as text come back as numbers, the target's
range is validated, the gate judges RMSE lower-is-better on the fresh rows, the report plots
predicted against actual, and the live gate compares logged values.

(The same steps as one KFP local run, from the drift monitor DAG: make test-full's
tests/integration/test_demo_regression.py.)
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftloop import retrain, run_context
from driftloop.errors import DataError
from driftloop.settings import Settings
from tests.conftest import MASS_SPEC

WINDOW = ("2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z")
#: A colony of larger birds: every measurement 20 % larger, the same weights.
GROWTH = 1.2


@pytest.fixture
def ctx(tmp_path: Path, _migrated_mlflow_db: Path,
        monkeypatch: pytest.MonkeyPatch) -> run_context.Context:
    from driftloop.bootstrap import bootstrap

    shutil.copyfile(_migrated_mlflow_db, tmp_path / "mlflow.db")
    monkeypatch.setenv("DRIFTLOOP_STATE_DIR", str(tmp_path))
    bootstrap(Settings(state_dir=tmp_path, spec_path=MASS_SPEC))
    return run_context.context("", str(MASS_SPEC))


def _log_labeled(ctx: run_context.Context, n: int, seed: int,
                 label: object = None) -> pd.DataFrame:
    """Grown birds served by the champion (as the server logs them) with their true mass
    as feedback (``label`` replaces every label when given)."""
    from driftloop.data import load_training_data
    from driftloop.onnx_form import split_frame
    from driftloop.predlog import PredictionLog, rows_for, to_micros
    from driftloop.registry import connect, load_bundle

    spec = ctx.spec
    rows = load_training_data(spec).frame.sample(n, replace=True, random_state=seed)
    rows = rows.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    for col in spec.features.numeric:
        rows[col] = (rows[col] * GROWTH * rng.normal(1, 0.03, n)).round(3)
    bundle = load_bundle(connect(ctx.settings), ctx.name, "1")
    numeric, categorical = split_frame(spec, rows)
    outputs = bundle.predictor.outputs(numeric, categorical)
    predicted, _ = spec.task_impl.decode(outputs, np.array(bundle.labels, dtype=object))
    start, end = (to_micros(w) for w in WINDOW)
    step = (end - start) // (n + 1)
    ids = [uuid.uuid4().hex for _ in range(n)]
    out = []
    for i, rid in enumerate(ids):
        out += rows_for(start + (i + 1) * step, [rid], ctx.name, "1", numeric[i : i + 1],
                        categorical[i : i + 1], [predicted[i]], outputs[i : i + 1],
                        bundle.labels)
    log = PredictionLog(ctx.settings.log_url)
    log.write_rows(out)
    truth = rows[spec.target] if label is None else pd.Series([label] * n)
    log.add_feedback([(rid, spec.task_impl.parse_label(value, bundle.labels))
                      for rid, value in zip(ids, truth, strict=True)])
    log.dispose()
    return rows


def test_a_regression_retrain_step_by_step(ctx: run_context.Context, tmp_path: Path) -> None:
    _log_labeled(ctx, 240, seed=5)
    lin = run_context.Lineage("drift", *WINDOW, "r1")
    data = tmp_path / "data"
    meta = retrain.load_data(ctx, lin, data)
    assert meta["rows_production"] == 240
    frame = pd.read_parquet(data)
    assert frame["body_mass_g"].dtype == np.float64  # logged as text, back as numbers

    checked = retrain.validate_data(ctx, data, tmp_path / "validation.html")
    assert checked["valid"] and checked["expectations"]["production"]["success"]
    # 16 on the six features, and the target's range.
    assert checked["expectations"]["production"]["evaluated"] == 17
    assert "every production label is a finite number" in \
        (tmp_path / "validation.html").read_text()

    info = retrain.train(ctx, lin, data, tmp_path / "model")
    assert info["labels"] == ["body_mass_g"] and info["inference_form"] == "onnx"
    assert {"rmse", "mae", "mape", "r2"} <= set(info["metrics"])

    report = tmp_path / "evaluation.html"
    ev = retrain.evaluate(ctx, data, info["model_uri"], min_value=None, max_regression=None,
                          min_fresh_rows=30, report_path=report)
    gate = ev.gate
    assert gate.holdout == "fresh labeled" and gate.metric == "rmse"
    assert gate.outcome == "passed", gate.reason
    assert gate.challenger < gate.champion and gate.high < 25
    assert not gate.higher_is_better and gate.max_value == 450 and gate.min_value is None
    flat = ev.flat_metrics()
    assert {"challenger_gate_rmse", "champion_gate_mae", "challenger_holdout_r2"} <= set(flat)
    assert "challenger_gate_accuracy" not in flat
    html = report.read_text()
    assert "predicted vs actual, and residuals" in html and "data:image/png;base64," in html
    assert "ceiling (max_value)" in html and "lower is better" in html
    assert "live mae" in html  # the served champion's error on the window's labeled rows


def test_labels_out_of_the_target_range_fail_validation(ctx: run_context.Context,
                                                        tmp_path: Path) -> None:
    _log_labeled(ctx, 60, seed=6, label=4_200_000.0)  # grams sent as milligrams
    retrain.load_data(ctx, run_context.Lineage("drift", *WINDOW), tmp_path / "data")
    with pytest.raises(DataError, match=r"production rows: .*body_mass_g"):
        retrain.validate_data(ctx, tmp_path / "data", tmp_path / "report.html")
    assert "body_mass_g" in (tmp_path / "report.html").read_text()


def test_the_live_gate_compares_logged_values_in_the_metric_direction() -> None:
    from driftloop.gate import GateThresholds
    from driftloop.promotion.live import _gate
    from driftloop.spec import load_spec

    spec = load_spec(MASS_SPEC)
    rng = np.random.default_rng(2)
    truth = rng.normal(4200, 500, 200)
    champion = truth + rng.normal(0, 150, 200)
    worse = truth + rng.normal(0, 600, 200)
    def text(values: np.ndarray) -> list[str]:  # as the log stores them
        return [repr(float(x)) for x in values]

    gate = _gate(spec.task_impl, GateThresholds.from_spec(spec), text(truth), text(champion),
                 text(worse), "1")
    assert gate.significantly_worse() and gate.outcome == "rejected"
    assert gate.difference > 0  # rmse went up
