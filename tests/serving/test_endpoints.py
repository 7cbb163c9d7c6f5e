"""/health, /ready, /model, /model/expectations, /metrics, OpenAPI, CORS."""

from __future__ import annotations

from datetime import datetime

from fastapi.testclient import TestClient

from tests.serving.conftest import IRIS_ROW, TOKEN, state_of


def test_health_and_ready(iris: TestClient) -> None:
    assert iris.get("/health").json() == {"status": "ok"}
    assert iris.get("/ready").json() == {
        "status": "ready", "model": {"name": "iris-classifier", "version": "1"}}


def test_model_describes_version_lineage_form_and_features(iris: TestClient, iris_model) -> None:
    body = iris.get("/model").json()
    assert body["name"] == "iris-classifier" and body["version"] == "1"
    assert body["run_id"] == iris_model.bundle.run_id
    assert body["aliases"] == ["champion"]
    assert body["pinned"] is False
    assert body["inference_form"] == "onnx"
    assert body["tags"]["trigger"] == "bootstrap"
    assert {"spec_hash", "data_fingerprint", "git_commit"} <= set(body["tags"])
    assert body["labels"] == ["setosa", "versicolor", "virginica"]
    assert body["features"] == {"numeric": ["sepal_length", "sepal_width", "petal_length",
                                            "petal_width"], "categorical": [],
                                "nullable": []}
    assert body["reference_rows"] == 150
    datetime.fromisoformat(body["loaded_at"])


def test_expectations_are_the_stored_suite(iris: TestClient, iris_model) -> None:
    body = iris.get("/model/expectations").json()
    assert body == iris_model.bundle.suite
    assert body["expectations"]


def test_metrics_cover_requests_predictions_model_log_and_drift(iris: TestClient) -> None:
    iris.post("/predict", json={"instances": [IRIS_ROW, [6.7, 3.0, 5.2, 2.3]]})
    iris.post("/predict", json={"features": [1, 2]})
    text = iris.get("/metrics").text
    for line in [
        'driftloop_requests_total{endpoint="/predict",method="POST",status="200"} 1.0',
        'driftloop_requests_total{endpoint="/predict",method="POST",status="422"} 1.0',
        'driftloop_request_duration_seconds_count{endpoint="/predict"} 2.0',
        'driftloop_predictions_total{label="setosa"} 1.0',
        'driftloop_predictions_total{label="virginica"} 1.0',
        'driftloop_model_info{inference_form="onnx",name="iris-classifier",run_id=',
        "driftloop_predlog_queue_rows ",
        "driftloop_predlog_dropped_rows_total 0.0",
        "driftloop_dataset_drift -1.0",
        "driftloop_live_accuracy NaN",
    ]:
        assert line in text, line
    assert 'version="1"' in text.split("driftloop_model_info")[-1].splitlines()[0]


def test_a_full_log_queue_pushes_back_before_answering_and_loses_nothing(
    make_client, iris_store, iris_model
) -> None:
    client = make_client(iris_store, iris_model, log_queue_max_rows=2, max_batch_rows=2,
                         log_flush_interval_s=1.0)
    state = state_of(client)
    writer = state.writer
    writer.stop()  # nothing drains the queue: it fills at 2 rows
    served = [client.post("/predict", json={"features": IRIS_ROW}) for _ in range(2)]
    assert [r.status_code for r in served] == [200, 200]
    assert all(r.json()["logged"] is True for r in served)
    calls_before = state.batcher.calls

    refused = client.post("/predict", json={"instances": [IRIS_ROW, IRIS_ROW]})
    assert refused.status_code == 503, refused.text
    assert 1 <= int(refused.headers["retry-after"]) <= 30
    detail = refused.json()["detail"]
    assert "prediction log is behind (2 rows waiting" in detail
    assert "neither answered nor logged" in detail and "Retry after" in detail
    assert state.batcher.calls == calls_before  # refused before the model ran
    assert writer.pending_rows == 2  # nothing of the refused call was queued

    text = client.get("/metrics").text
    assert "driftloop_predlog_refused_rows_total 2.0" in text
    assert "driftloop_predlog_dropped_rows_total 0.0" in text
    assert "driftloop_predlog_queue_rows 2.0" in text

    # The log catches up: the retry is answered and both served rows are written.
    writer._write_pending()
    retried = client.post("/predict", json={"instances": [IRIS_ROW, IRIS_ROW]})
    assert retried.status_code == 200 and retried.json()["logged"] is True
    writer._write_pending()
    ids = [p["request_id"] for r in [*served, retried] for p in r.json()["predictions"]]
    assert set(state.log.served(ids)) == set(ids)


def test_shed_answers_say_the_rows_were_not_logged(make_client, iris_store,
                                                   iris_model) -> None:
    client = make_client(iris_store, iris_model, log_queue_max_rows=2, max_batch_rows=2,
                         log_flush_interval_s=1.0, log_overflow="shed")
    state = state_of(client)
    state.writer.stop()
    answers = [client.post("/predict", json={"features": IRIS_ROW}) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert [r.json()["logged"] for r in answers] == [True, True, False]
    text = client.get("/metrics").text
    assert "driftloop_predlog_dropped_rows_total 1.0" in text
    assert "driftloop_predlog_refused_rows_total 0.0" in text
    state.writer._write_pending()
    ids = [r.json()["predictions"][0]["request_id"] for r in answers]
    assert set(state.log.served(ids)) == set(ids[:2])


def test_unknown_path_and_method_are_4xx(iris: TestClient) -> None:
    assert iris.get("/nope").status_code == 404
    assert iris.get("/nope").json()["detail"] == "Not Found"
    assert iris.get("/predict").status_code == 405
    assert iris.post("/health").status_code == 405
    assert 'endpoint="other"' in iris.get("/metrics").text


def test_openapi_documents_every_endpoint(iris: TestClient) -> None:
    spec = iris.get("/openapi.json").json()
    paths = spec["paths"]
    for path, method in [("/predict", "post"), ("/feedback", "post"), ("/health", "get"),
                         ("/ready", "get"), ("/model", "get"), ("/model/expectations", "get"),
                         ("/metrics", "get"), ("/drift/status", "get"), ("/drift/window", "get"),
                         ("/admin/reload", "post")]:
        assert method in paths[path], path
    predict = paths["/predict"]["post"]
    body_schema = predict["requestBody"]["content"]["application/json"]["schema"]
    # One variant per input form, each naming its form (tests/serving/test_openapi.py).
    assert [v["required"] for v in body_schema["oneOf"]] == [["features"], ["instances"],
                                                             ["records"]]
    assert {"200", "413", "422"} <= set(predict["responses"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_cors_is_off_unless_origins_are_set(make_client, iris_store, iris_model) -> None:
    plain = make_client(iris_store, iris_model)
    headers = {"Origin": "https://dash.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in plain.options("/predict", headers=headers).headers
    cors = make_client(iris_store, iris_model, cors_origins=["https://dash.example"])
    preflight = cors.options("/predict", headers=headers)
    assert preflight.headers["access-control-allow-origin"] == "https://dash.example"
    answer = cors.post("/predict", json={"features": IRIS_ROW},
                       headers={"Origin": "https://dash.example"})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "https://dash.example"


def test_retention_endpoint_needs_the_token_and_reports_what_it_removed(
    make_client, iris_store, iris_model
) -> None:
    from datetime import UTC, datetime, timedelta

    import numpy as np

    from driftloop.predlog import rows_for, to_micros

    client = make_client(iris_store, iris_model)
    log = state_of(client).log
    old = to_micros(datetime.now(UTC) - timedelta(days=45))
    log.write_rows(rows_for(old, ["old-1", "old-2"], "iris-classifier", "1",
                            np.ones((2, 4)), None, ["setosa"] * 2,
                            np.array([[1.0, 0, 0]] * 2), ["setosa", "versicolor", "virginica"]))
    fresh = client.post("/predict", json={"features": IRIS_ROW}).json()
    state_of(client).writer.flush()

    assert client.post("/admin/retention").status_code == 401
    answer = client.post("/admin/retention", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["retention_days"] == 30 and body["predictions_deleted"] == 2
    assert body["held_back_by"] is None and body["archived"] == []
    assert not log.served(["old-1", "old-2"])
    assert log.served([fresh["predictions"][0]["request_id"]])
    text = client.get("/metrics").text
    assert 'driftloop_predlog_retention_deleted_rows_total{table="predictions"} 2.0' in text


def test_retention_off_deletes_nothing_and_says_so(make_client, iris_store,
                                                   iris_model) -> None:
    client = make_client(iris_store, iris_model, log_retention_days=0)
    answer = client.post("/admin/retention", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert answer.json()["skipped"].startswith("retention is off")
