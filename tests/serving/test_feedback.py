"""POST /feedback: ground truth by request id, first label wins, never refused for an id
whose prediction is not in the log yet."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from driftloop.spec import load_spec
from tests.conftest import IRIS_SPEC
from tests.serving.conftest import IRIS_ROW, state_of


def _serve(client: TestClient, n: int) -> list[dict]:
    response = client.post("/predict", json={"instances": [IRIS_ROW] * n})
    assert response.status_code == 200
    return response.json()["predictions"]


def test_one_and_many_labels_and_repeats_are_idempotent(iris: TestClient) -> None:
    rows = _serve(iris, 3)
    ids = [r["request_id"] for r in rows]
    assert state_of(iris).writer.flush(timeout=10)  # the rows are in the log: all matched
    one = iris.post("/feedback", json={"request_id": ids[0], "label": "setosa"})
    assert one.status_code == 200, one.text
    assert one.json() == {"recorded": [ids[0]], "already_recorded": [], "not_yet_matched": []}
    many = iris.post("/feedback", json={"labels": [
        {"request_id": ids[0], "label": "virginica"},
        {"request_id": ids[1], "label": "versicolor"},
        {"request_id": ids[2], "label": "setosa"}]})
    assert many.json() == {"recorded": [ids[1], ids[2]], "already_recorded": [ids[0]],
                           "not_yet_matched": []}
    again = iris.post("/feedback", json={"request_id": ids[1], "label": "versicolor"})
    assert again.json() == {"recorded": [], "already_recorded": [ids[1]],
                            "not_yet_matched": []}
    # The first label is what the retrain pipeline reads.
    now = datetime.now(UTC)
    frame = state_of(iris).log.labeled_frame(now - timedelta(minutes=5),
                                             now + timedelta(minutes=5), load_spec(IRIS_SPEC))
    assert dict(zip(frame["request_id"], frame["species"], strict=True)) == {
        ids[0]: "setosa", ids[1]: "versicolor", ids[2]: "setosa"}
    # Live accuracy: the row is a setosa; two of three labels agree with the served label.
    metrics = iris.get("/metrics").text
    assert 'driftloop_feedback_total{outcome="correct"} 2.0' in metrics
    assert 'driftloop_feedback_total{outcome="incorrect"} 1.0' in metrics
    assert "driftloop_live_accuracy 0.666" in metrics
    assert "driftloop_live_labeled_rows 3.0" in metrics


def test_unknown_ids_are_kept_not_yet_matched_then_counted_as_orphans(
    make_client, iris_store, iris_model
) -> None:
    client = make_client(iris_store, iris_model, feedback_orphan_grace_s=0.01)
    ids = [r["request_id"] for r in _serve(client, 1)]
    assert state_of(client).writer.flush(timeout=10)
    response = client.post("/feedback", json={"labels": [
        {"request_id": ids[0], "label": "setosa"},
        {"request_id": "no-such-id", "label": "setosa"},
        {"request_id": "nor-this", "label": "virginica"}]})
    assert response.status_code == 200, response.text
    assert response.json() == {"recorded": [ids[0], "no-such-id", "nor-this"],
                               "already_recorded": [], "not_yet_matched": [
                                   "no-such-id", "nor-this"]}
    # First label wins for them too.
    again = client.post("/feedback", json={"request_id": "nor-this", "label": "setosa"})
    assert again.json()["already_recorded"] == ["nor-this"]
    time.sleep(0.05)  # past the 0.01 s grace period
    metrics = client.get("/metrics").text
    assert "driftloop_feedback_orphans 2.0" in metrics
    assert 'driftloop_feedback_total{outcome="not_yet_matched"} 2.0' in metrics
    assert "driftloop_live_labeled_rows 1.0" in metrics  # orphans never count as labeled


def test_feedback_right_after_predict_is_kept_and_joins_when_the_row_is_written(
    make_client, iris_store, iris_model
) -> None:
    client = make_client(iris_store, iris_model, log_flush_interval_s=1.0)
    writer = state_of(client).writer
    writer.flush_interval = 60.0  # once its current 1 s wait ends, the writer sleeps for long
    time.sleep(1.2)
    rid = _serve(client, 1)[0]["request_id"]
    assert writer.pending_rows == 1  # the row is still queued when its label arrives
    response = client.post("/feedback", json={"request_id": rid, "label": "setosa"})
    assert response.status_code == 200, response.text
    assert response.json() == {"recorded": [rid], "already_recorded": [],
                               "not_yet_matched": [rid]}
    assert writer.pending_rows == 1  # the label did not wait for the row
    assert writer.flush(timeout=10)
    now = datetime.now(UTC)
    frame = state_of(client).log.labeled_frame(now - timedelta(minutes=5),
                                               now + timedelta(minutes=5), load_spec(IRIS_SPEC))
    assert frame["request_id"].tolist() == [rid] and frame["species"].tolist() == ["setosa"]
    assert "driftloop_live_labeled_rows 1.0" in client.get("/metrics").text


def test_bad_feedback_is_a_clear_4xx(make_client, iris_store, iris_model) -> None:
    client = make_client(iris_store, iris_model, max_batch_rows=2)
    rid = _serve(client, 1)[0]["request_id"]
    cases = [
        ({"request_id": rid, "label": "tulip"}, 422,
         "unknown label 'tulip'; the model's labels are setosa"),
        ({"request_id": rid}, 422, "give 'request_id' and 'label'"),
        ({"labels": []}, 422, "empty batch"),
        ({"labels": [{"request_id": rid, "label": "setosa"}], "request_id": rid}, 422,
         "not both"),
        ({"labels": [{"request_id": rid, "label": "setosa"}] * 3}, 413, "limit of 2"),
        # A number is a regressor's label: a classifier names its classes.
        ({"request_id": rid, "label": 3}, 422, "unknown label 3; the model's labels are"),
        ({"request_id": "", "label": "setosa"}, 422, "request_id"),
        ({"request_id": rid, "label": "setosa", "x": 1}, 422, "x: unknown field"),
    ]
    for body, status, words in cases:
        response = client.post("/feedback", json=body)
        assert response.status_code == status, (body, response.text)
        assert words in response.json()["detail"], (body, response.json())
    response = client.post("/feedback", content="{", headers={"content-type": "application/json"})
    assert response.status_code == 400
    # None of it recorded anything.
    ok = client.post("/feedback", json={"request_id": rid, "label": "setosa"})
    assert ok.json()["recorded"] == [rid]
