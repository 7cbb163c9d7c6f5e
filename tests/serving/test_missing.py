"""Missing values end to end on a served model: a Palmer Penguins spec whose ``body_mass_g``
and ``sex`` may be missing (the real data misses ``sex`` in 9 rows), and whose other
features may not.

Nulls of nullable features are answered (the model imputes them, in its ONNX form too),
logged as null and read back as null; a null anywhere else is refused with a 422 naming the
feature, counted, and reported in the drift answer's ``refused``; a rising missing rate is
drift, named in ``changes``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from driftloop.settings import Settings
from serving.served import ServedModel, load
from tests.conftest import PENGUINS_SPEC
from tests.serving.conftest import logged_rows, state_of

NULLABLE = ["body_mass_g", "sex"]


@pytest.fixture(scope="module")
def gappy_store(tmp_path_factory: pytest.TempPathFactory, _migrated_mlflow_db: Path) -> Settings:
    from driftloop.bootstrap import bootstrap

    state = tmp_path_factory.mktemp("penguins-nullable")
    shutil.copyfile(_migrated_mlflow_db, state / "mlflow.db")
    shutil.copytree(PENGUINS_SPEC.parent / "data", state / "data")
    text = PENGUINS_SPEC.read_text().replace(
        "categorical: [island, sex]", f"categorical: [island, sex]\n  nullable: {NULLABLE}")
    spec = state / "penguins-nullable.yaml"
    spec.write_text(text.replace("name: penguins-classifier", "name: penguins-nullable"))
    settings = Settings(state_dir=state, spec_path=spec)
    bootstrap(settings)
    return settings


@pytest.fixture(scope="module")
def gappy_model(gappy_store: Settings) -> ServedModel:
    return load(gappy_store)


@pytest.fixture
def gappy(make_client: Callable[..., TestClient], gappy_store: Settings,
          gappy_model: ServedModel) -> TestClient:
    return make_client(gappy_store, gappy_model)


def _rows(model: ServedModel, n: int, seed: int) -> list[dict[str, Any]]:
    """Reference rows as records, with their own missing values (None) as they are."""
    frame = model.bundle.reference.sample(n, replace=True, random_state=seed)
    records = frame.to_dict("records")
    for row in records:
        for name, value in row.items():
            if value != value or value == "__driftloop_missing__":
                row[name] = None
    return records


def test_the_model_learns_missing_values_and_keeps_its_onnx_form(
        gappy: TestClient, gappy_model: ServedModel) -> None:
    info = gappy.get("/model").json()
    assert info["features"]["nullable"] == NULLABLE
    # The imputer converted and passed parity on rows with gaps.
    assert info["inference_form"] == "onnx"
    parity = gappy_model.bundle.metadata["onnx_parity"]
    assert parity["ok"] is True and parity["rows_checked"] > 2000
    # The real data's 9 rows without `sex` were kept for training: it is nullable.
    reference = gappy_model.bundle.reference
    assert (reference["sex"] == "__driftloop_missing__").sum() > 0


def test_nulls_of_nullable_features_are_answered_logged_and_read_back_as_null(
        gappy: TestClient) -> None:
    row = {"bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181.0,
           "body_mass_g": None, "island": "Torgersen", "sex": None}
    start = datetime.now(UTC) - timedelta(seconds=5)
    answer = gappy.post("/predict", json={"records": [row]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0]["label"] == "Adelie"
    positional = gappy.post("/predict", json={"features": [39.1, 18.7, 181.0, None,
                                                           "Torgersen", None]})
    assert positional.status_code == 200
    assert positional.json()["predictions"][0]["probabilities"] == pytest.approx(
        answer.json()["predictions"][0]["probabilities"])
    assert logged_rows(gappy) == 2
    page = gappy.get("/drift/window", params={
        "start": start.isoformat(), "end": (datetime.now(UTC) + timedelta(seconds=5))
        .isoformat()}).json()
    assert [(r["body_mass_g"], r["sex"], r["island"]) for r in page["rows"]] == \
        [(None, None, "Torgersen")] * 2


@pytest.mark.parametrize(("body", "feature", "reason"), [
    ({"features": [None, 18.7, 181.0, 3750.0, "Torgersen", "male"]}, "bill_length_mm",
     "missing"),
    ({"records": [{"bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181.0,
                   "body_mass_g": 3750.0, "island": None, "sex": "male"}]}, "island",
     "missing"),
    ({"features": [39.1, "18.7", 181.0, 3750.0, "Torgersen", "male"]}, "bill_depth_mm",
     "type"),
])
def test_a_null_where_the_spec_allows_none_is_refused_counted_and_reported(
        gappy: TestClient, body: dict, feature: str, reason: str) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    refused = gappy.post("/predict", json=body)
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert f"feature '{feature}'" in detail
    if reason == "missing":
        assert "does not list it in features.nullable" in detail
    assert logged_rows(gappy) == 0  # nothing of a refused batch is logged
    metrics = gappy.get("/metrics").text
    assert re.search(rf'^driftloop_refused_values_total{{feature="{feature}",'
                     rf'reason="{reason}"}} 1\.0$', metrics, re.MULTILINE), metrics[-2000:]
    state_of(gappy).writer.flush()
    end = datetime.now(UTC) + timedelta(minutes=2)
    status = gappy.get("/drift/status", params={"start": start.isoformat(),
                                                "end": end.isoformat()}).json()
    assert status["status"] == "insufficient_data"
    assert status["refused"]["by_feature"] == {feature: {reason: 1}}
    assert status["refused"]["rows"] == 1 and status["refused"]["rate"] == 1.0
    assert f"1 row(s) refused for bad values (100% of the window): {feature}" in \
        status["message"]


def test_a_rising_missing_rate_is_drift_named_in_changes(
        gappy: TestClient, gappy_model: ServedModel) -> None:
    rng = np.random.default_rng(3)
    calm = _rows(gappy_model, 400, seed=1)
    assert gappy.post("/predict", json={"records": calm}).status_code == 200
    assert logged_rows(gappy) == 400
    quiet = gappy.get("/drift/status").json()
    assert quiet["status"] == "ok" and quiet["dataset_drift"] is False, quiet["changes"]
    mass = next(f for f in quiet["features"] if f["feature"] == "body_mass_g")
    assert mass["missing_rate"] == 0.0 and mass["reference_missing_rate"] == 0.0
    assert mass["missing_p_value_adjusted"] == 1.0
    # Upstream loses a third of the masses: the same rows otherwise.
    gappy_rows = _rows(gappy_model, 400, seed=2)
    for row in gappy_rows:
        if rng.random() < 0.3:
            row["body_mass_g"] = None
    assert gappy.post("/predict", json={"records": gappy_rows}).status_code == 200
    assert logged_rows(gappy) == 800
    status = gappy.get("/drift/status", params={"rows": 400}).json()
    assert status["dataset_drift"] is True
    assert status["drifted_features"] == ["body_mass_g"]
    change = status["changes"][0]
    assert change["feature"] == "body_mass_g" and change["drifted"] is True
    assert 0.25 < change["missing_rate"] < 0.35
    assert change["description"] == f"missing 0% -> {change['missing_rate']:.0%}"
    metrics = gappy.get("/metrics").text
    found = re.search(r'^driftloop_drift_missing_rate\{feature="body_mass_g"\} (\S+)$', metrics,
                      re.MULTILINE)
    assert found and float(found.group(1)) == pytest.approx(change["missing_rate"])


def test_the_openapi_schema_allows_null_exactly_for_the_nullable_features(
        gappy: TestClient) -> None:
    doc = gappy.get("/openapi.json").json()
    body = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    records = next(form for form in body["schema"]["oneOf"] if form["title"] == "records")
    properties = records["properties"]["records"]["items"]["properties"]
    allows_null = {name for name, schema in properties.items()
                   if {"type": "null"} in schema.get("anyOf", [])}
    assert allows_null == set(NULLABLE)
    # The example "Try it out" sends is answered.
    example = body["example"] if "example" in body else next(iter(body["examples"].values()))[
        "value"]
    assert gappy.post("/predict", json=example).status_code == 200
