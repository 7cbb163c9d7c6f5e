"""Predictors: one interface over the ONNX form and the sklearn fallback."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd

from driftloop.onnx_form import make_session, onnx_feed
from driftloop.spec import ModelSpec


class Predictor(Protocol):
    """A model's outputs ``(n, len(labels))`` for rows given as numeric (n, k) and
    categorical (n, m) arrays: class probabilities, or a regressor's values
    (:mod:`driftloop.tasks`)."""

    form: str
    labels: list[str]

    def outputs(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray: ...


class OnnxPredictor:
    form = "onnx"

    def __init__(self, spec: ModelSpec, model_bytes: bytes, labels: list[str]) -> None:
        self._spec = spec
        self._session = make_session(model_bytes)
        self._task = spec.task_impl
        self.labels = list(labels)

    def outputs(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        return self._task.onnx_output(
            self._session.run(None, onnx_feed(self._spec, numeric, categorical)))


class SklearnPredictor:
    form = "sklearn"

    def __init__(self, spec: ModelSpec, model: Any) -> None:
        self._spec = spec
        self._model = model
        self._task = spec.task_impl
        self.labels = self._task.labels_of(model, spec.target)

    def outputs(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(numeric, columns=list(self._spec.features.numeric))
        for j, name in enumerate(self._spec.features.categorical):
            frame[name] = categorical[:, j]
        return self._task.sklearn_outputs(self._model, frame[self._spec.feature_names])
