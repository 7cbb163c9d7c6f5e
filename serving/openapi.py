"""The OpenAPI document, made exact for the served model.

The generic request schemas of ``POST /predict`` and ``POST /feedback`` accept any row and
any label, so generated clients, the ``/docs`` "Try it out" button and fuzzers mostly build
requests the server must refuse. The served model knows its features (names, order, kinds)
and its labels; this module rewrites both request bodies from them each time the served
version changes:

- ``/predict``: exactly one of ``features`` (a positional row of exactly k values, each typed
  by its feature), ``instances`` (one or more such rows) or ``records`` (rows naming every
  feature, and only those); numbers within float32 range; null only for the spec's
  nullable features.
- ``/feedback``: either ``request_id`` + ``label`` or ``labels``; each label one of the
  model's.

Every bound declared here is one the server enforces (serving/inputs.py, the feedback
router), so a client may trust the schema both ways: what it allows is answered 200, what it
forbids is refused with a 4xx naming the problem. The batch limit stays undeclared: it is a
setting (``DRIFTLOOP_MAX_BATCH_ROWS``), answered with 413.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from serving.inputs import FLOAT32_MAX
from serving.served import ServedModel

#: ``FastAPI.openapi``'s signature: the document as a dict.
OpenApi = Callable[[], dict[str, Any]]


def _value_schemas(model: ServedModel) -> list[dict[str, Any]]:
    """One schema per feature: a number in float32 range or a string, or null too for the
    spec's nullable features (``{"anyOf": [..., {"type": "null"}]}``, OpenAPI 3.1)."""
    number = {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
    schemas = [dict(number, title=name) for name in model.numeric] + \
        [{"type": "string", "title": name} for name in model.categorical]
    return [{"anyOf": [{k: v for k, v in schema.items() if k != "title"}, {"type": "null"}],
             "title": schema["title"]} if schema["title"] in model.nullable else schema
            for schema in schemas]


def _only(name: str, schema: dict[str, Any], others: tuple[str, ...]) -> dict[str, Any]:
    """An object carrying ``name`` (required); the other forms may only appear as null (the
    server treats a null form as absent)."""
    properties = {name: schema, **{other: {"type": "null"} for other in others}}
    return {"type": "object", "title": name, "properties": properties, "required": [name],
            "additionalProperties": False}


def _example_row(model: ServedModel) -> list[Any]:
    """A typical row: each numeric feature's reference median, each categorical's most
    frequent category."""
    ref = model.reference
    row: list[Any] = [None if v is None else round(v, 4) for v in ref.medians()]
    for categories, counts in ref.categories:
        row.append(str(categories[int(counts.argmax())]) if len(categories) else "")
    return row


def predict_body(model: ServedModel) -> dict[str, Any]:
    """The ``application/json`` request body of ``POST /predict`` for this model."""
    values = _value_schemas(model)
    k = len(values)
    row = {"type": "array", "prefixItems": values, "minItems": k, "maxItems": k,
           "description": f"One row, positional: {', '.join(model.feature_names)}."}
    record = {"type": "object", "properties": {v["title"]: v for v in values},
              "required": model.feature_names, "additionalProperties": False}
    forms = ("features", "instances", "records")
    schema = {"oneOf": [
        _only("features", row, forms[1:]),
        _only("instances", {"type": "array", "items": row, "minItems": 1}, ("features",
                                                                            "records")),
        _only("records", {"type": "array", "items": record, "minItems": 1}, forms[:2]),
    ]}
    example = _example_row(model)
    named = dict(zip(model.feature_names, example, strict=True))
    return {"required": True, "content": {"application/json": {
        "schema": schema,
        "examples": {
            "records": {"summary": "rows by feature name", "value": {"records": [named]}},
            "features": {"summary": "one positional row", "value": {"features": example}},
            "instances": {"summary": "positional rows", "value": {"instances": [example]}},
        },
    }}}


def feedback_body(model: ServedModel) -> dict[str, Any]:
    """The ``application/json`` request body of ``POST /feedback`` for this model."""
    request_id = {"type": "string", "minLength": 1, "maxLength": 64}
    label = model.task.label_schema(model.labels)
    item = {"type": "object", "properties": {"request_id": request_id, "label": label},
            "required": ["request_id", "label"], "additionalProperties": False}
    one = {"type": "object", "title": "one label",
           "properties": {"request_id": request_id, "label": label, "labels": {"type": "null"}},
           "required": ["request_id", "label"], "additionalProperties": False}
    many = {"type": "object", "title": "labels",
            "properties": {"labels": {"type": "array", "items": item, "minItems": 1},
                           "request_id": {"type": "null"}, "label": {"type": "null"}},
            "required": ["labels"], "additionalProperties": False}
    first = model.task.label_example(model.labels, model.prediction_reference)
    return {"required": True, "content": {"application/json": {
        "schema": {"oneOf": [one, many]},
        "examples": {
            "one": {"summary": "one label",
                    "value": {"request_id": "<request_id from /predict>", "label": first}},
            "many": {"summary": "labels",
                     "value": {"labels": [{"request_id": "<request_id from /predict>",
                                           "label": first}]}},
        },
    }}}


def specialise(document: dict[str, Any], model: ServedModel) -> dict[str, Any]:
    """A copy of the generic document with both request bodies made exact for ``model``."""
    out = copy.deepcopy(document)
    paths = out["paths"]
    paths["/predict"]["post"]["requestBody"] = predict_body(model)
    paths["/feedback"]["post"]["requestBody"] = feedback_body(model)
    out["info"]["description"] = out["info"].get("description", "") + (
        f"\n\nRequest schemas are those of the served model, **{model.name} version "
        f"{model.version}** (features: {', '.join(model.feature_names)}; labels: "
        f"{', '.join(model.labels)}); they change when another version is served.")
    return out


def install(app: FastAPI, current: Callable[[], ServedModel | None]) -> None:
    """Serve the specialised document at ``/openapi.json`` (and so in ``/docs``), rebuilt
    once per served version; the generic one while no model is loaded."""
    generic: OpenApi = app.openapi
    built: dict[tuple[str, str], dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        model = current()
        if model is None:
            return generic()
        key = (model.name, model.version)
        if key not in built:
            built.clear()
            built[key] = specialise(generic(), model)
        return built[key]

    app.openapi = openapi  # type: ignore[method-assign]
