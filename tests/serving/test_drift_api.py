"""GET /drift/status and /drift/window: windows read from the prediction log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient

from driftloop.drift import Reference, Thresholds
from driftloop.predlog import rows_for, to_micros
from tests.serving.conftest import state_of

T0 = datetime(2031, 3, 1, 10, 0, tzinfo=UTC)
LABELS = ("setosa", "versicolor", "virginica")
NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _log(client: TestClient, numeric: np.ndarray, start: datetime, step: timedelta,
         model: str = "iris-classifier") -> list[str]:
    """Write rows straight into the log at chosen times (an hour of traffic in a test)."""
    log = state_of(client).log
    ids, rows = [], []
    for i, row in enumerate(numeric):
        rid = uuid.uuid4().hex
        ids.append(rid)
        rows += rows_for(to_micros(start + i * step), [rid], model, "1", row[None, :], None,
                         ["setosa"], np.array([[1.0, 0.0, 0.0]]), LABELS)
    log.write_rows(rows)
    return ids


def _reference_rows(client: TestClient, n: int, seed: int) -> np.ndarray:
    """Rows drawn from the model's own training reference (no drift by construction)."""
    ref = state_of(client).holder.current.bundle.reference[NAMES].to_numpy()
    return ref[np.random.default_rng(seed).integers(0, len(ref), n)]


def test_empty_and_small_windows_are_insufficient_data(iris: TestClient) -> None:
    body = iris.get("/drift/status").json()
    assert body["status"] == "insufficient_data"
    assert body["window"] == {"mode": "latest", "start": None, "end": None, "rows": 0,
                              "rows_total": 0, "sampled": False}
    assert "0 row(s)" in body["message"] and "minimum of 50" in body["message"]
    assert body["features"] == [] and body["dataset_drift"] is False
    _log(iris, _reference_rows(iris, 49, 0), T0, timedelta(seconds=1))
    body = iris.get("/drift/status").json()
    assert body["status"] == "insufficient_data" and body["window"]["rows"] == 49


def test_latest_window_from_served_traffic_without_and_with_drift(iris: TestClient) -> None:
    rows = _reference_rows(iris, 300, 1)
    assert iris.post("/predict", json={"instances": rows.tolist()}).status_code == 200
    state_of(iris).writer.flush()
    calm = iris.get("/drift/status").json()
    assert calm["status"] == "ok" and calm["dataset_drift"] is False, calm
    assert calm["window"]["mode"] == "latest" and calm["window"]["rows"] == 300
    assert calm["reference"] == {"model_version": "1", "rows": 150}
    assert calm["correction"] == "bonferroni"
    assert calm["thresholds"] == Thresholds().as_dict()
    assert calm["changes"] == [] and calm["prediction_drift"] is False
    assert calm["model"] == {"name": "iris-classifier", "version": "1"}
    assert [f["feature"] for f in calm["features"]] == NAMES
    assert all(f["test"] == "anderson" for f in calm["features"])  # the default

    shifted = rows.copy()
    shifted[:, 2] += 1.5  # petal_length moves
    assert iris.post("/predict", json={"instances": shifted.tolist()}).status_code == 200
    state_of(iris).writer.flush()
    loud = iris.get("/drift/status", params={"rows": 300}).json()
    assert loud["dataset_drift"] is True
    assert loud["drifted_features"] == ["petal_length"]
    (change,) = loud["changes"]
    assert change["feature"] == "petal_length" and change["drifted"] is True
    assert change["description"].startswith("mean +") and change["shift_sd"] > 0.25
    # The answer is the core library's, on exactly those rows.
    model = state_of(iris).holder.current
    direct = model.reference.evaluate(shifted, None, Thresholds())
    got = {f["feature"]: f for f in loud["features"]}
    for f in direct.features:
        assert got[f.feature]["statistic"] == pytest.approx(f.statistic, abs=1e-12)
        assert got[f.feature]["p_value"] == pytest.approx(f.p_value, rel=1e-9)
    # The gauges hold the last evaluation.
    text = iris.get("/metrics").text
    assert "driftloop_dataset_drift 1.0" in text
    assert 'driftloop_drift_feature_drifted{feature="petal_length"} 1.0' in text
    assert 'driftloop_drift_statistic{feature="petal_length",test="anderson"}' in text
    assert "driftloop_drift_window_rows 300.0" in text


def test_interval_windows_hold_exactly_the_rows_of_the_interval(iris: TestClient) -> None:
    # Three hours: calm, shifted, calm; one row every 30 s (120 per hour).
    hour = timedelta(hours=1)
    step = timedelta(seconds=30)
    calm = _reference_rows(iris, 120, 2)
    moved = _reference_rows(iris, 120, 3) + np.array([0, 0, 2.0, 0.8])
    _log(iris, calm, T0, step)
    _log(iris, moved, T0 + hour, step)
    _log(iris, _reference_rows(iris, 120, 4), T0 + 2 * hour, step)
    # Other models' rows in the same log are never part of a window.
    _log(iris, moved, T0, step, model="another-model")

    def status(start: datetime, end: datetime) -> dict:
        response = iris.get("/drift/status", params={"start": start.isoformat(),
                                                     "end": end.isoformat()})
        assert response.status_code == 200, response.text
        return response.json()

    first = status(T0, T0 + hour)
    assert first["window"]["mode"] == "interval"
    assert first["window"]["rows"] == 120 and first["window"]["rows_total"] == 120
    assert datetime.fromisoformat(first["window"]["start"]) == T0
    assert datetime.fromisoformat(first["window"]["end"]) == T0 + hour
    assert first["dataset_drift"] is False
    second = status(T0 + hour, T0 + 2 * hour)
    assert second["window"]["rows"] == 120
    assert set(second["drifted_features"]) == {"petal_length", "petal_width"}
    # [start, end): the row at exactly T0+1h belongs to the second hour only.
    edge = status(T0 + hour - timedelta(seconds=1), T0 + hour + timedelta(seconds=1))
    assert edge["window"]["rows"] == 1
    assert status(T0, T0 + 3 * hour)["window"]["rows"] == 360
    # A naive ISO time means UTC; other offsets are converted.
    naive = iris.get("/drift/status", params={"start": "2031-03-01T10:00:00",
                                              "end": "2031-03-01T12:00:00+01:00"}).json()
    assert naive["window"]["rows"] == 120
    # A backfill of a past interval gives the same answer every time.
    assert status(T0 + hour, T0 + 2 * hour) == second


def test_big_intervals_are_tested_on_an_even_sample(make_client, iris_store, iris_model) -> None:
    client = make_client(iris_store, iris_model, drift_max_window_rows=100)
    _log(client, _reference_rows(client, 1000, 5), T0, timedelta(seconds=1))
    body = client.get("/drift/status", params={"start": T0.isoformat(),
                                               "end": (T0 + timedelta(hours=1)).isoformat()}
                      ).json()
    assert body["window"]["rows_total"] == 1000
    assert body["window"]["sampled"] is True and body["window"]["rows"] <= 100


@pytest.mark.parametrize(("params", "words"), [
    ({"start": "2031-03-01T10:00:00Z"}, "both 'start' and 'end'"),
    ({"end": "2031-03-01T10:00:00Z"}, "both 'start' and 'end'"),
    ({"start": "2031-03-01T11:00:00Z", "end": "2031-03-01T10:00:00Z"}, "must be before"),
    ({"start": "2031-03-01T10:00:00Z", "end": "2031-03-01T10:00:00Z"}, "must be before"),
    ({"start": "yesterday", "end": "2031-03-01T10:00:00Z"}, "start: Input should be a valid"),
    ({"rows": 0}, "rows: Input should be greater than or equal to 1"),
    ({"rows": 10, "start": "2031-03-01T10:00:00Z", "end": "2031-03-01T11:00:00Z"},
     "cannot be combined"),
    ({"start": "0", "end": "2031-03-01T11:00:00Z"}, "start: expected an ISO 8601 date-time"),
])
def test_bad_drift_queries_are_422_naming_the_problem(iris: TestClient, params: dict,
                                                      words: str) -> None:
    response = iris.get("/drift/status", params=params)
    assert response.status_code == 422, response.text
    assert words in response.json()["detail"]


def test_drift_window_pages_through_an_interval_with_labels(iris: TestClient) -> None:
    rows = _reference_rows(iris, 25, 6)
    ids = _log(iris, rows, T0, timedelta(seconds=10))
    assert iris.post("/feedback", json={"request_id": ids[2], "label": "virginica"}
                     ).status_code == 200
    params = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat(),
              "limit": 10}
    pages, offset = [], 0
    while offset is not None:
        body = iris.get("/drift/window", params={**params, "offset": offset}).json()
        assert body["total"] == 25 and body["limit"] == 10
        pages.append(body)
        offset = body["next_offset"]
    assert [len(p["rows"]) for p in pages] == [10, 10, 5]
    got = [r for p in pages for r in p["rows"]]
    assert [r["request_id"] for r in got] == ids
    assert got[2]["label"] == "virginica" and got[3]["label"] is None
    assert [r["petal_length"] for r in got] == rows[:, 2].tolist()
    assert set(got[0]) == {"ts", "request_id", "model_version", *NAMES, "prediction", "label"}
    assert datetime.fromisoformat(got[1]["ts"]) == T0 + timedelta(seconds=10)
    empty = iris.get("/drift/window", params={"start": "2020-01-01T00:00:00Z",
                                              "end": "2020-01-02T00:00:00Z"}).json()
    assert empty == {"rows": [], "total": 0, "offset": 0, "limit": 1000, "next_offset": None}


@pytest.mark.parametrize(("params", "status", "words"), [
    ({}, 422, "start: Field required"),
    ({"start": "2031-03-01T10:00:00Z", "end": "2031-03-01T11:00:00Z", "limit": 0}, 422,
     "limit"),
    ({"start": "2031-03-01T10:00:00Z", "end": "2031-03-01T11:00:00Z", "limit": 10001}, 422,
     "limit"),
    ({"start": "2031-03-01T10:00:00Z", "end": "2031-03-01T11:00:00Z", "offset": -1}, 422,
     "offset"),
    ({"start": "2031-03-01T11:00:00Z", "end": "2031-03-01T10:00:00Z"}, 422, "must be before"),
    # A number is not read as Unix time: "2031" would silently mean 1970-01-01T00:33:51.
    ({"start": "2031", "end": "2031-03-01T10:00:00Z"}, 422,
     "start: expected an ISO 8601 date-time such as 2026-03-01T10:00:00Z, not the number "
     "'2031'"),
    ({"start": "2031-03-01T10:00:00Z", "end": "-1.5"}, 422, "end: expected an ISO 8601"),
])
def test_bad_window_queries_are_422(iris: TestClient, params: dict, status: int,
                                    words: str) -> None:
    response = iris.get("/drift/window", params=params)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]


def test_bh_correction_and_thresholds_come_from_settings(make_client, iris_store,
                                                         iris_model) -> None:
    client = make_client(iris_store, iris_model, drift_correction="bh", drift_min_rows=10,
                         drift_min_effect=0.3, drift_p_value=0.01)
    _log(client, _reference_rows(client, 20, 7), T0, timedelta(seconds=1))
    body = client.get("/drift/status").json()
    assert body["status"] == "ok"
    assert body["correction"] == "bh"
    assert body["thresholds"] == {**Thresholds().as_dict(), "p_value": 0.01, "min_effect": 0.3,
                                  "min_rows": 10}


def test_categorical_drift_uses_chi2(penguins: TestClient, penguins_model) -> None:
    ref = penguins_model.bundle.reference
    rng = np.random.default_rng(8)
    sample = ref.iloc[rng.integers(0, len(ref), 200)]
    records = sample.to_dict(orient="records")
    for r in records:
        r["island"] = "Biscoe"
    assert penguins.post("/predict", json={"records": records}).status_code == 200
    state_of(penguins).writer.flush()
    body = penguins.get("/drift/status").json()
    by_name = {f["feature"]: f for f in body["features"]}
    assert by_name["island"]["test"] == "chi2" and by_name["island"]["kind"] == "categorical"
    assert by_name["island"]["drifted"] is True
    assert by_name["sex"]["drifted"] is False
    assert by_name["bill_length_mm"]["test"] == "anderson"


def test_reference_is_prepared_once_per_model(iris: TestClient) -> None:
    model = state_of(iris).holder.current
    assert isinstance(model.reference, Reference)
    assert all(np.all(np.diff(b.sorted, axis=1) >= 0) for b in model.reference.blocks)


def test_prediction_and_label_drift_are_reported_beside_the_features(iris: TestClient) -> None:
    calm = _reference_rows(iris, 300, 7)
    answer = iris.post("/predict", json={"instances": calm.tolist()})
    assert answer.status_code == 200
    state_of(iris).writer.flush()
    body = iris.get("/drift/status", params={"rows": 300}).json()
    # The model's answers on reference-like rows look like its answers on the reference.
    assert body["prediction"]["status"] == "ok" and body["prediction"]["rows"] == 300
    assert body["prediction"]["drifted"] is False and body["prediction_drift"] is False
    # No feedback yet: no label verdict, and it says why.
    assert body["label"]["status"] == "insufficient_data" and body["label"]["rows"] == 0
    assert "0 label(s) in the window, fewer than 50" in body["label"]["message"]

    # Labels that come back all 'setosa' (a third of the training labels): label drift.
    ids = [p["request_id"] for p in answer.json()["predictions"]][:120]
    posted = iris.post("/feedback", json={"labels": [{"request_id": i, "label": "setosa"}
                                                     for i in ids]})
    assert posted.status_code == 200, posted.text
    body = iris.get("/drift/status", params={"rows": 300}).json()
    label = body["label"]
    assert label["status"] == "ok" and label["rows"] == 120 and body["label_drift"] is True
    assert label["test"] == "chi2" and label["effect_size"] == pytest.approx(2 / 3, abs=0.01)
    assert "'setosa' 33% -> 100%" in label["description"]
    # Inputs pushed towards virginica: the predictions follow.
    moved = calm + np.array([0.5, 0, 2.5, 1.0])
    assert iris.post("/predict", json={"instances": moved.tolist()}).status_code == 200
    state_of(iris).writer.flush()
    body = iris.get("/drift/status", params={"rows": 300}).json()
    assert body["prediction_drift"] is True
    assert "'virginica' 33% -> " in body["prediction"]["description"]
    text = iris.get("/metrics").text
    assert 'driftloop_output_drift{output="prediction"} 1.0' in text
    assert 'driftloop_drift_feature_changed{feature="petal_length"} 1.0' in text
