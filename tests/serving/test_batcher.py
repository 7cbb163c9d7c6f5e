"""Micro-batching: concurrent requests share model calls and get exactly their own answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest

from driftloop.settings import Settings
from serving.app import create_app
from serving.batcher import Batcher
from serving.served import ServedModel
from tests.serving.conftest import serving_settings


def _rows(model: ServedModel, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    ref = model.bundle.reference
    sample = ref.iloc[np.random.default_rng(seed).integers(0, len(ref), n)]
    numeric = sample[list(model.numeric)].to_numpy(dtype=np.float64)
    numeric = numeric + np.random.default_rng(seed).normal(0, 0.3, numeric.shape)
    categorical = sample[list(model.categorical)].to_numpy(dtype=object)
    return numeric, categorical


@pytest.mark.parametrize("which", ["iris", "penguins"])
def test_batched_rows_get_the_probabilities_of_their_own_call(
    which: str, iris_model: ServedModel, penguins_model: ServedModel
) -> None:
    model = iris_model if which == "iris" else penguins_model
    parts = [_rows(model, n, seed) for seed, n in enumerate([1, 3, 1, 7, 2])]
    batcher = Batcher()

    async def run() -> list[np.ndarray]:
        futures = [batcher.predict(model, num, cat) for num, cat in parts]
        return list(await asyncio.gather(*futures))

    got = asyncio.run(run())
    assert batcher.calls == 1 and batcher.rows == 14  # one model call for all five requests
    for (num, cat), proba in zip(parts, got, strict=True):
        alone = np.asarray(model.outputs(num, cat), dtype=np.float64)
        if which == "iris":  # a tree ensemble: rows are computed alone, bit for bit
            np.testing.assert_array_equal(proba, alone)
        else:  # a float32 matrix product may round the last bit differently per batch size
            np.testing.assert_allclose(proba, alone, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(proba.argmax(axis=1), alone.argmax(axis=1))


def test_batches_never_mix_models_and_errors_reach_every_caller(
    iris_model: ServedModel,
) -> None:
    from dataclasses import replace

    other = replace(iris_model)  # another model object: a reload happened in between
    num, cat = _rows(iris_model, 2, 0)
    batcher = Batcher()

    class Broken:
        form = "onnx"
        labels = iris_model.labels

        def outputs(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
            raise RuntimeError("predictor exploded")

    broken = replace(iris_model, bundle=replace(iris_model.bundle, predictor=Broken()))

    async def run() -> list[object]:
        futures = [batcher.predict(iris_model, num, cat), batcher.predict(other, num, cat),
                   batcher.predict(broken, num, cat), batcher.predict(broken, num, cat)]
        return list(await asyncio.gather(*futures, return_exceptions=True))

    a, b, c, d = asyncio.run(run())
    assert batcher.calls == 2  # one per working model object; the broken one raised
    np.testing.assert_array_equal(a, b)
    assert isinstance(c, RuntimeError) and isinstance(d, RuntimeError)


def test_concurrent_requests_through_the_app_share_calls(
    iris_store: Settings, iris_model: ServedModel, tmp_path: Path
) -> None:
    app = create_app(serving_settings(iris_store, tmp_path), model=iris_model)
    rows = _rows(iris_model, 40, 1)[0].tolist()

    async def run() -> tuple[list[httpx.Response], list[httpx.Response]]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                together = await asyncio.gather(*[
                    client.post("/predict", json={"features": row}) for row in rows])
                alone = [await client.post("/predict", json={"features": row}) for row in rows]
                return list(together), alone

    # TestClient would serialize the calls; an ASGI transport in one loop does not.
    together, alone = asyncio.run(run())
    state = app.state.driftloop
    assert state.batcher.rows == 80
    assert state.batcher.calls < 80  # the concurrent half shared calls
    for a, b in zip(together, alone, strict=True):
        assert a.status_code == b.status_code == 200
        pa, pb = a.json()["predictions"][0], b.json()["predictions"][0]
        assert pa["label"] == pb["label"] and pa["probabilities"] == pb["probabilities"]
