"""Predictors: one interface over the ONNX form and the sklearn fallback."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd

from driftloop.onnx_form import make_session, onnx_feed
from driftloop.spec import ModelSpec


class Predictor(Protocol):
    """Class probabilities for rows given as numeric (n, k) and categorical (n, m) arrays."""

    form: str
    labels: list[str]

    def predict_proba(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray: ...


class OnnxPredictor:
    form = "onnx"

    def __init__(self, spec: ModelSpec, model_bytes: bytes, labels: list[str]) -> None:
        self._spec = spec
        self._session = make_session(model_bytes)
        self.labels = list(labels)

    def predict_proba(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        _, probabilities = self._session.run(None, onnx_feed(self._spec, numeric, categorical))
        return np.asarray(probabilities, dtype=np.float64)


class SklearnPredictor:
    form = "sklearn"

    def __init__(self, spec: ModelSpec, model: Any) -> None:
        self._spec = spec
        self._model = model
        self.labels = [str(c) for c in model.classes_]

    def predict_proba(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(numeric, columns=list(self._spec.features.numeric))
        for j, name in enumerate(self._spec.features.categorical):
            frame[name] = categorical[:, j]
        return np.asarray(self._model.predict_proba(frame[self._spec.feature_names]))
