"""POST /predict: the three input forms, the answer, the log, and every bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.serving.conftest import IRIS_ROW, logged_rows, state_of

NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _check_answer(body: dict, rows: int) -> None:
    assert body["model"] == {"name": "iris-classifier", "version": "1"}
    assert len(body["predictions"]) == rows
    assert body["latency_ms"] > 0
    for row in body["predictions"]:
        assert len(row["request_id"]) == 32
        probs = row["probabilities"]
        assert set(probs) == {"setosa", "versicolor", "virginica"}
        assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-5)
        assert row["label"] == max(probs, key=probs.get)
    ids = [row["request_id"] for row in body["predictions"]]
    assert len(set(ids)) == len(ids)


def test_one_positional_row_as_in_the_seeds(iris: TestClient) -> None:
    response = iris.post("/predict", json={"features": IRIS_ROW})
    assert response.status_code == 200, response.text
    body = response.json()
    _check_answer(body, 1)
    assert body["predictions"][0]["label"] == "setosa"


def test_batches_positional_and_named_agree_and_every_row_is_logged(iris: TestClient) -> None:
    rows = [IRIS_ROW, [6.7, 3.0, 5.2, 2.3], [5.9, 2.8, 4.3, 1.3]]
    positional = iris.post("/predict", json={"instances": rows})
    named = iris.post("/predict", json={"records": [dict(zip(NAMES, r, strict=True))
                                                    for r in rows]})
    # Named records in any key order.
    shuffled = iris.post("/predict", json={"records": [
        {k: dict(zip(NAMES, r, strict=True))[k] for k in reversed(NAMES)} for r in rows]})
    for response in (positional, named, shuffled):
        assert response.status_code == 200, response.text
        _check_answer(response.json(), 3)
    labels = [[p["label"] for p in r.json()["predictions"]] for r in (positional, named, shuffled)]
    assert labels[0] == labels[1] == labels[2] == ["setosa", "virginica", "versicolor"]
    assert logged_rows(iris) == 9
    # The log holds exactly the served rows, with the features bit for bit.
    state = state_of(iris)
    window = state.log.latest_window("iris-classifier", 100, 4, 0)
    np.testing.assert_array_equal(np.sort(window.numeric, axis=0),
                                  np.sort(np.array(rows * 3), axis=0))
    ids = [p["request_id"] for r in (positional, named, shuffled) for p in r.json()["predictions"]]
    served = state.log.served(ids)
    assert len(served) == 9
    assert {v[2] for v in served.values()} == {"setosa", "virginica", "versicolor"}


def test_integers_are_numbers(iris: TestClient) -> None:
    response = iris.post("/predict", json={"features": [5, 3, 1, 0]})
    assert response.status_code == 200


BAD_INPUTS = [
    # (body, status, words the message must contain)
    ({"features": [5.1, 3.5, 1.4]}, 422, ["3 values", "expects 4", "sepal_length"]),
    ({"instances": [IRIS_ROW, [1.0, 2.0]]}, 422, ["row 1", "2 values", "expects 4"]),
    ({"records": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4,
                   "petal_wdth": 0.2}]}, 422,
     ["record 0", "unknown feature(s) petal_wdth", "missing feature(s) petal_width"]),
    ({"records": [{"sepal_length": 5.1}]}, 422, ["missing feature(s) sepal_width"]),
    ({"features": [5.1, "3.5", 1.4, 0.2]}, 422, ["sepal_width", "expected a number",
                                                  "'3.5'"]),
    ({"features": [5.1, 3.5, True, 0.2]}, 422, ["features[2]", "valid number"]),
    ({"features": [5.1, None, 1.4, 0.2]}, 422, ["row 0, feature 'sepal_width' is missing (null)",
                                                "features.nullable"]),
    ({"features": [5.1, 3.5, 1.4, 1e39]}, 422, ["petal_width", "finite number"]),
    ({"instances": []}, 422, ["empty batch", "instances"]),
    ({"records": []}, 422, ["empty batch", "records"]),
    ({"features": []}, 422, ["0 values"]),
    ({}, 422, ["exactly one of", "got none"]),
    ({"features": IRIS_ROW, "instances": [IRIS_ROW]}, 422, ["exactly one of",
                                                            "features, instances"]),
    ({"features": IRIS_ROW, "extra": 1}, 422, ["extra", "unknown field"]),
    ({"instances": [IRIS_ROW] * 11}, 413, ["11 rows", "limit of 10"]),
    ([IRIS_ROW], 422, ["object"]),
    ({"instances": IRIS_ROW}, 422, ["instances[0]"]),
]


@pytest.mark.parametrize(("body", "status", "words"), BAD_INPUTS,
                         ids=[f"{i}-{s}" for i, (_, s, _) in enumerate(BAD_INPUTS)])
def test_bad_input_is_a_clear_4xx_and_nothing_is_logged(
    make_client, iris_store, iris_model, body: object, status: int, words: list[str]
) -> None:
    client = make_client(iris_store, iris_model, max_batch_rows=10)
    response = client.post("/predict", json=body)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    for word in words:
        assert word in detail, (word, detail)
    assert logged_rows(client) == 0


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_inf_are_refused(iris: TestClient, literal: str) -> None:
    raw = '{"features": [5.1, 3.5, LIT, 0.2]}'.replace("LIT", literal)
    response = iris.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert "petal_length" in response.json()["detail"]
    assert "not a finite number" in response.json()["detail"]
    assert logged_rows(iris) == 0


@pytest.mark.parametrize("raw", ['{"features": [5.1, 3.5', "", "not json", '{"features": [1,]}'])
def test_malformed_json_is_a_400_naming_the_parse_error(iris: TestClient, raw: str) -> None:
    response = iris.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith("malformed JSON body: ")
    assert logged_rows(iris) == 0


def test_body_over_the_size_limit_is_413_with_or_without_content_length(
    make_client, iris_store, iris_model
) -> None:
    client = make_client(iris_store, iris_model, max_body_bytes=2048)
    big = json.dumps({"instances": [IRIS_ROW] * 200})
    response = client.post("/predict", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "over the limit of 2048 bytes" in response.json()["detail"]

    def chunks():  # no Content-Length: the server counts while reading
        for i in range(0, len(big), 500):
            yield big[i : i + 500].encode()

    response = client.post("/predict", content=chunks(),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "over the limit of 2048 bytes" in response.json()["detail"]
    # The same limit holds on the other endpoints.
    response = client.post("/feedback", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert logged_rows(client) == 0


def test_categorical_features_and_unknown_categories_are_accepted_and_counted(
    penguins: TestClient,
) -> None:
    row = {"bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181.0,
           "body_mass_g": 3750.0, "island": "Torgersen", "sex": "male"}
    unseen = {**row, "island": "Atlantis"}
    response = penguins.post("/predict", json={"records": [row, unseen]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predictions"][0]["label"] == "Adelie"
    positional = penguins.post("/predict", json={"features": [39.1, 18.7, 181, 3750,
                                                              "Torgersen", "male"]})
    assert positional.json()["predictions"][0]["label"] == "Adelie"
    metrics = penguins.get("/metrics").text
    assert 'driftloop_unknown_categories_total{feature="island"} 1.0' in metrics
    assert 'feature="sex"' not in metrics.split("driftloop_unknown_categories_total")[-1]
    assert logged_rows(penguins) == 3
    window = state_of(penguins).log.latest_window("penguins-classifier", 10, 4, 2)
    assert sorted(window.categorical[:, 0]) == ["Atlantis", "Torgersen", "Torgersen"]


def test_a_number_for_a_categorical_feature_is_refused(penguins: TestClient) -> None:
    response = penguins.post("/predict", json={"features": [39.1, 18.7, 181, 3750, 3, "male"]})
    assert response.status_code == 422
    assert "'island' is categorical: expected a string" in response.json()["detail"]


def test_predict_answers_503_until_a_model_is_loaded(iris: TestClient) -> None:
    state = state_of(iris)
    model, state.holder.current = state.holder.current, None
    try:
        response = iris.post("/predict", json={"features": IRIS_ROW})
        assert response.status_code == 503
        assert "no model loaded" in response.json()["detail"]
        assert iris.get("/ready").status_code == 503
    finally:
        state.holder.current = model
