"""A regressor served end to end: /predict returns values, /feedback takes numbers and
refuses anything else whole, live MAE and RMSE reach /metrics, the drift answer tests the
predicted values, and the docs show a number as the label."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from driftloop.spec import load_spec
from serving.served import ServedModel
from tests.conftest import MASS_SPEC
from tests.serving.conftest import logged_rows, state_of

RECORD = {"bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181.0,
          "species": "Adelie", "island": "Torgersen", "sex": "male"}


def _rows(n: int, seed: int = 0, scale: float = 1.0) -> tuple[list[dict], list[float]]:
    spec = load_spec(MASS_SPEC)
    frame = pd.read_csv(spec.data_path()).dropna().sample(n, replace=True, random_state=seed)
    records = []
    for _, row in frame.iterrows():
        records.append({**{c: float(row[c]) * scale for c in spec.features.numeric},
                        **{c: str(row[c]) for c in spec.features.categorical}})
    return records, frame[spec.target].astype(float).tolist()


def test_model_says_it_is_a_regressor(mass: TestClient) -> None:
    info = mass.get("/model").json()
    assert (info["task"], info["labels"]) == ("regression", ["body_mass_g"])


def test_the_model_is_a_regressor(mass_model: ServedModel) -> None:
    assert mass_model.task.name == "regression"
    assert mass_model.labels == ("body_mass_g",)
    assert mass_model.form == "onnx"  # HistGradientBoostingRegressor converts with parity
    # The prediction reference holds values (as logged), not classes.
    assert all(math.isfinite(float(v)) for v in mass_model.prediction_reference)


def test_predict_returns_values_and_logs_them(mass: TestClient) -> None:
    answer = mass.post("/predict", json={"records": [RECORD, {**RECORD, "sex": "female"}]})
    assert answer.status_code == 200, answer.text
    rows = answer.json()["predictions"]
    assert set(rows[0]) == {"request_id", "value"}
    values = [row["value"] for row in rows]
    assert all(2500 < v < 6500 for v in values)  # grams, as the training data
    assert values[0] != values[1]
    assert logged_rows(mass) == 2
    served = state_of(mass).log.served_predictions([r["request_id"] for r in rows])
    assert [float(served[r["request_id"]]) for r in rows] == values
    metrics = mass.get("/metrics").text
    assert 'driftloop_predictions_total{label="body_mass_g"} 2.0' in metrics


def test_feedback_takes_numbers_and_live_errors_reach_metrics(mass: TestClient) -> None:
    records, truth = _rows(40)
    answer = mass.post("/predict", json={"records": records})
    assert answer.status_code == 200
    rows = answer.json()["predictions"]
    logged_rows(mass)
    # Numbers and numeric text are both labels; the log keeps one text form.
    labels = [{"request_id": r["request_id"], "label": t if i % 2 else str(t)}
              for i, (r, t) in enumerate(zip(rows, truth, strict=True))]
    posted = mass.post("/feedback", json={"labels": labels})
    assert posted.status_code == 200, posted.text
    assert len(posted.json()["recorded"]) == 40
    predicted = np.array([r["value"] for r in rows])
    errors = predicted - np.array(truth)
    state_of(mass)._accuracy_at = 0.0  # read the log now, not at the next TTL
    metrics = mass.get("/metrics").text
    mae = float(next(line.split()[-1] for line in metrics.splitlines()
                     if line.startswith("driftloop_live_mae ")))
    rmse = float(next(line.split()[-1] for line in metrics.splitlines()
                      if line.startswith("driftloop_live_rmse ")))
    assert abs(mae - np.mean(np.abs(errors))) < 1e-6
    assert abs(rmse - np.sqrt(np.mean(errors ** 2))) < 1e-6
    assert "driftloop_live_accuracy NaN" in metrics
    # The drift monitor DAG's metrics pull carries them (its XCom: NaN becomes None).
    from driftloop_airflow.decisions import metrics_summary
    from driftloop_airflow.hooks.serving import parse_metrics

    pulled = metrics_summary(parse_metrics(metrics))
    assert pulled["driftloop_live_mae"] == mae and pulled["driftloop_live_rmse"] == rmse
    assert pulled["driftloop_live_accuracy"] is None
    assert pulled["driftloop_gate_ceiling{metric=rmse}"] == 450.0
    assert 'driftloop_gate_ceiling{metric="rmse"} 450.0' in metrics
    assert 'driftloop_feedback_total{outcome="matched"} 40.0' in metrics


def test_non_numeric_labels_are_refused_whole(mass: TestClient) -> None:
    rows = mass.post("/predict", json={"records": [RECORD, RECORD]}).json()["predictions"]
    bad = mass.post("/feedback", json={"labels": [
        {"request_id": rows[0]["request_id"], "label": 4200.0},
        {"request_id": rows[1]["request_id"], "label": "heavy"}]})
    assert bad.status_code == 422
    assert "'heavy' is not a number" in bad.json()["detail"]
    assert "nothing recorded" in bad.json()["detail"]
    for label in ("nan", "inf"):
        refused = mass.post("/feedback", json={"request_id": rows[0]["request_id"],
                                                "label": label})
        assert refused.status_code == 422
        assert "not a finite number" in refused.json()["detail"]
    # Nothing of the refused calls was stored: the first id still takes its label.
    ok = mass.post("/feedback", json={"request_id": rows[0]["request_id"], "label": 4200})
    assert ok.json()["recorded"] == [rows[0]["request_id"]]


def test_prediction_drift_tests_the_values(mass: TestClient) -> None:
    stable, _ = _rows(300, seed=1)
    assert mass.post("/predict", json={"records": stable}).status_code == 200
    logged_rows(mass)
    calm = mass.get("/drift/status", params={"rows": 300}).json()
    assert calm["prediction"]["status"] == "ok"
    assert calm["prediction"]["kind"] == "numeric"
    assert calm["prediction_drift"] is False
    grown, _ = _rows(300, seed=2, scale=1.3)
    assert mass.post("/predict", json={"records": grown}).status_code == 200
    logged_rows(mass)
    drifted = mass.get("/drift/status", params={"rows": 300}).json()
    assert drifted["prediction"]["drifted"] is True, drifted["prediction"]
    assert drifted["prediction"]["shift_sd"] > 0


def test_docs_show_a_number_as_the_label(mass: TestClient) -> None:
    document = mass.get("/openapi.json").json()
    body = document["paths"]["/feedback"]["post"]["requestBody"]["content"]
    one = body["application/json"]["schema"]["oneOf"][0]
    assert one["properties"]["label"]["type"] == "number"
    example = body["application/json"]["examples"]["one"]["value"]["label"]
    assert isinstance(example, float)
