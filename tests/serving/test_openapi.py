"""The OpenAPI document is the served model's contract, and the server keeps it both ways.

Each body below is checked twice: against the request schema the server publishes, and by
sending it. Schema-valid must mean answered 2xx, schema-invalid must mean a 4xx; a case where
the two disagree is a broken promise to every generated client (and to the fuzzer).
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from serving import openapi
from serving.inputs import FLOAT32_MAX
from serving.served import ServedModel
from tests.serving.conftest import IRIS_ROW

ROW = {"bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181.0,
       "body_mass_g": 3750.0, "island": "Torgersen", "sex": "male"}
POSITIONAL = list(ROW.values())


def _body(document: dict[str, Any], path: str) -> dict[str, Any]:
    return document["paths"][path]["post"]["requestBody"]["content"]["application/json"]


def _valid(schema: dict[str, Any], body: Any) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(body)


def _schema_and_server_agree(client: TestClient, path: str, case: str, body: Any,
                             valid: bool) -> None:
    """The published schema and the server both say ``valid``: 200, or a 422 with a detail."""
    schema = _body(client.get("/openapi.json").json(), path)["schema"]
    assert _valid(schema, body) is valid, f"{case}: the schema says {not valid}"
    response = client.post(path, json=body)
    assert response.status_code == (200 if valid else 422), response.text
    if not valid:
        assert response.json()["detail"]


PREDICT_BODIES: list[tuple[str, Any, bool]] = [
    ("records", {"records": [ROW]}, True),
    ("features", {"features": POSITIONAL}, True),
    ("instances", {"instances": [POSITIONAL, POSITIONAL]}, True),
    ("integers are numbers", {"features": [39, 18, 181, 3750, "Dream", "female"]}, True),
    ("an unknown category is accepted", {"records": [{**ROW, "island": "Atlantis"}]}, True),
    ("the other forms as null", {"features": POSITIONAL, "instances": None, "records": None},
     True),
    ("the float32 limit itself", {"features": [FLOAT32_MAX, 18.7, 181.0, 3750.0, "Dream",
                                               "male"]}, True),
    ("two forms", {"features": POSITIONAL, "records": [ROW]}, False),
    ("no form", {}, False),
    ("an unknown field", {"features": POSITIONAL, "extra": 1}, False),
    ("a missing feature", {"records": [{k: v for k, v in ROW.items() if k != "sex"}]}, False),
    ("an unknown feature", {"records": [{**ROW, "beak": 1.0}]}, False),
    ("too few values", {"features": POSITIONAL[:-1]}, False),
    ("too many values", {"features": [*POSITIONAL, "x"]}, False),
    ("a string for a number", {"features": ["39.1", *POSITIONAL[1:]]}, False),
    ("a number for a category", {"features": [*POSITIONAL[:4], 3, "male"]}, False),
    ("a boolean for a number", {"features": [True, *POSITIONAL[1:]]}, False),
    ("null for a number", {"features": [None, *POSITIONAL[1:]]}, False),
    ("beyond float32", {"features": [1e39, *POSITIONAL[1:]]}, False),
    ("an empty batch", {"instances": []}, False),
    ("an empty row", {"features": []}, False),
]


@pytest.mark.parametrize(("case", "body", "valid"), PREDICT_BODIES,
                         ids=[case for case, _, _ in PREDICT_BODIES])
def test_predict_schema_and_server_agree(penguins: TestClient, case: str, body: Any,
                                         valid: bool) -> None:
    _schema_and_server_agree(penguins, "/predict", case, body, valid)


FEEDBACK_BODIES: list[tuple[str, Any, bool]] = [
    ("one label", {"request_id": "r-1", "label": "Adelie"}, True),
    ("labels", {"labels": [{"request_id": "r-2", "label": "Gentoo"}]}, True),
    ("one label, labels null", {"request_id": "r-3", "label": "Chinstrap", "labels": None},
     True),
    ("a label the model does not know", {"request_id": "r-4", "label": "Emperor"}, False),
    ("both forms", {"request_id": "r-5", "label": "Adelie",
                    "labels": [{"request_id": "r-6", "label": "Adelie"}]}, False),
    ("an id without its label", {"request_id": "r-7"}, False),
    ("an empty list", {"labels": []}, False),
    ("an empty id", {"request_id": "", "label": "Adelie"}, False),
    ("an id over 64 characters", {"request_id": "r" * 65, "label": "Adelie"}, False),
    ("an unknown field in an item", {"labels": [{"request_id": "r-8", "label": "Adelie",
                                                 "x": 1}]}, False),
]


@pytest.mark.parametrize(("case", "body", "valid"), FEEDBACK_BODIES,
                         ids=[case for case, _, _ in FEEDBACK_BODIES])
def test_feedback_schema_and_server_agree(penguins: TestClient, case: str, body: Any,
                                          valid: bool) -> None:
    _schema_and_server_agree(penguins, "/feedback", case, body, valid)


@pytest.mark.parametrize("path", ["/predict", "/feedback"])
def test_every_docs_example_is_valid_and_answered(penguins: TestClient, path: str) -> None:
    """What "Try it out" in /docs sends: valid, and accepted (ids in feedback examples are
    placeholders, which the server stores as not yet matched)."""
    body = _body(penguins.get("/openapi.json").json(), path)
    assert len(body["examples"]) >= 2
    for name, example in body["examples"].items():
        assert _valid(body["schema"], example["value"]), name
        response = penguins.post(path, json=example["value"])
        assert response.status_code == 200, f"{name}: {response.text}"


def test_the_examples_are_typical_rows_of_the_model(penguins: TestClient) -> None:
    example = _body(penguins.get("/openapi.json").json(), "/predict")["examples"]["records"]
    row = example["value"]["records"][0]
    assert list(row) == list(ROW)
    assert 40 < row["bill_length_mm"] < 48 and row["island"] == "Biscoe"  # median, mode
    assert penguins.post("/predict", json=example["value"]).json()["predictions"][0]["label"]


def test_the_document_follows_the_served_version(iris_model: ServedModel,
                                                 penguins_model: ServedModel) -> None:
    app = FastAPI()
    app.post("/predict")(lambda: None)
    app.post("/feedback")(lambda: None)
    served: list[ServedModel | None] = [None]
    openapi.install(app, lambda: served[0])
    assert "requestBody" not in app.openapi()["paths"]["/predict"]["post"]  # generic

    served[0] = iris_model
    iris_doc = app.openapi()
    assert app.openapi() is iris_doc  # built once per version
    schema = _body(iris_doc, "/predict")["schema"]
    assert _valid(schema, {"features": IRIS_ROW})
    assert not _valid(schema, {"features": POSITIONAL})
    assert "iris-classifier version 1" in iris_doc["info"]["description"]

    served[0] = penguins_model
    schema = _body(app.openapi(), "/predict")["schema"]
    assert _valid(schema, {"features": POSITIONAL})
    assert not _valid(schema, {"features": IRIS_ROW})


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_docs_load_everything_from_the_server_itself(iris: TestClient,
                                                             page: str) -> None:
    """Issue: /docs was blank offline (Swagger UI came from a CDN). Every script, style and
    icon the page references is served by this server, and none is fetched elsewhere."""
    import re

    html = iris.get(page)
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    assets = re.findall(r"""(?:src|href)\s*[=:]\s*["']([^"']+)["']""", html.text)
    assert assets, html.text[:500]
    external = [a for a in assets if re.match(r"(https?:)?//", a)]
    assert external == [], f"{page} loads assets from elsewhere: {external}"
    assert "/openapi.json" in html.text
    for asset in assets:
        answer = iris.get(asset)
        assert answer.status_code == 200 and len(answer.content) > 100, asset
