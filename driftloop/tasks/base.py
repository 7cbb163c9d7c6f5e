"""What a task (classification, regression) decides for the rest of driftloop.

Everything that differs between predicting a class and predicting a number lives behind this
interface: which estimators and gate metrics are allowed (and which way each metric is
better), how a target is checked, how a model's raw outputs become a prediction, how that
prediction is logged and compared with its label, and how a champion and a challenger are
compared on the same rows. The rest of driftloop asks the spec's task and never checks a
type (issue 18).

A model's *outputs* are an ``(n, k)`` float array, one column per entry of its ``labels``:
the class probabilities of a classifier (``labels``: its classes), the predicted value of a
regressor (``labels``: the target's name, ``k = 1``). The server, the batcher and the
shadow scorer move outputs around without knowing which.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class GateMetric:
    """A metric the promotion gate may judge on."""

    name: str
    #: accuracy, F1, R²: higher is better; RMSE, MAE, MAPE: lower is.
    higher_is_better: bool
    #: Bounded in [0, 1] (accuracy and friends): thresholds and margins must be too.
    unit_interval: bool
    title: str
    #: In the target's units (RMSE, MAE): no threshold or margin can be guessed for it.
    target_units: bool = False

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"


def estimator_kind(estimator_cls: type) -> str | None:
    """``classifier``, ``regressor`` or None, as scikit-learn's own tags say (read from a
    default instance: scikit-learn >= 1.6 keeps them there); a class that cannot be built
    without arguments is judged by its methods."""
    from sklearn.base import is_classifier, is_regressor

    try:
        instance = estimator_cls()
    except Exception:
        return "classifier" if hasattr(estimator_cls, "predict_proba") else None
    try:
        if is_classifier(instance):
            return "classifier"
        if is_regressor(instance):
            return "regressor"
    except Exception:
        return None
    return None


class Task(ABC):
    """One kind of supervised model. Subclasses register in :mod:`driftloop.tasks`."""

    name: ClassVar[str]
    #: The gate metrics this task offers, by name.
    metrics: ClassVar[dict[str, GateMetric]]
    #: The gate metric a spec that names none gets.
    default_metric: ClassVar[str]
    #: The estimator method that makes this task's outputs.
    estimator_method: ClassVar[str]
    #: A label equal to its prediction is "correct" (classes); else labels are measured.
    exact_match: ClassVar[bool]
    #: The live figures ``/metrics`` exports for this task (name -> help text).
    live_figures: ClassVar[dict[str, str]]

    # --- the spec and the data ------------------------------------------------------------

    @abstractmethod
    def fits(self, estimator_cls: type) -> bool:
        """Whether an estimator class is of this task (scikit-learn's estimator type)."""

    @abstractmethod
    def conform_target(self, values: pd.Series, origin: str) -> pd.Series:
        """The target column as this task trains on it (DataError naming the problem)."""

    @abstractmethod
    def check_target(self, values: pd.Series, target: str, origin: str) -> None:
        """Refuse a complete target this task cannot learn from (DataError)."""

    def stratify(self, y: pd.Series) -> pd.Series | None:
        """The column a holdout split is stratified on, or None."""
        return None

    # --- training and evaluation ----------------------------------------------------------

    @abstractmethod
    def labels_of(self, model: Any, target: str) -> list[str]:
        """The names of a fitted model's output columns."""

    def evaluation_labels(self, models: Sequence[Any], target: str,
                          truth: pd.Series) -> list[str]:
        """The output names two models are scored with on the same rows."""
        return self.labels_of(models[0], target)

    @abstractmethod
    def score(self, y_true: Any, y_pred: Any, labels: list[str]) -> dict[str, Any]:
        """Every metric of :attr:`metrics` (plus task extras) on one set of rows."""

    @abstractmethod
    def predict(self, model: Any, x: pd.DataFrame) -> np.ndarray:
        """A fitted pipeline's predictions (classes, or values) of ``x``."""

    @abstractmethod
    def compare(self, metric: str, truth: Sequence[Any], champion: Sequence[Any],
                challenger: Sequence[Any], labels: list[str], *,
                confidence: float) -> Any:
        """The paired comparison (:class:`driftloop.gate.compare.Comparison`)."""

    # --- serving --------------------------------------------------------------------------

    @abstractmethod
    def sklearn_outputs(self, model: Any, frame: pd.DataFrame) -> np.ndarray:
        """A fitted pipeline's outputs ``(n, k)`` (the ONNX form must match them)."""

    @abstractmethod
    def onnx_output(self, outputs: list[Any]) -> np.ndarray:
        """The outputs ``(n, k)`` among an ONNX session's results."""

    @abstractmethod
    def parity(self, expected: np.ndarray, got: np.ndarray,
               labels: np.ndarray) -> tuple[int, float, float]:
        """``(mismatches, max difference, tolerance)`` of the ONNX outputs against sklearn's."""

    @abstractmethod
    def decode(self, outputs: np.ndarray, label_array: np.ndarray) -> tuple[list[str], Any]:
        """Predictions as logged (text), and what the answer renders (class index or value)."""

    @abstractmethod
    def row_template(self, labels: Sequence[str]) -> str:
        """One row of the ``/predict`` answer as a %-format (request id, then the rest)."""

    @abstractmethod
    def render_rows(self, template: str, label_json: Sequence[str], ids: Sequence[str],
                    decoded: Any, outputs: np.ndarray) -> str:
        """The answer's rows, as JSON text."""

    @abstractmethod
    def counter_indices(self, decoded: Any, outputs: int) -> np.ndarray:
        """Per output label, the rows counted in ``driftloop_predictions_total``."""

    @abstractmethod
    def parse_label(self, value: Any, labels: Sequence[str]) -> str:
        """A ``/feedback`` label as stored, or ValueError saying why it is refused."""

    @abstractmethod
    def label_schema(self, labels: Sequence[str]) -> dict[str, Any]:
        """The JSON schema of a ``/feedback`` label, for the served model's docs."""

    @abstractmethod
    def label_example(self, labels: Sequence[str], predicted: dict[str, int]) -> Any:
        """A label for the docs' examples (``predicted``: the prediction reference)."""

    @abstractmethod
    def label_json(self, value: Any) -> Any:
        """A true target value as a client sends it to ``/feedback``."""

    @abstractmethod
    def label_text(self, value: Any) -> str:
        """A label as the log stores it."""

    @abstractmethod
    def answer_text(self, row: dict[str, Any]) -> str:
        """A ``/predict`` answer row's prediction as the log stores it."""

    @abstractmethod
    def live(self, pairs: Sequence[tuple[str, str]]) -> dict[str, float | None]:
        """Live figures (:attr:`live_figures`) from ``(label, served prediction)`` pairs."""

    @abstractmethod
    def reference_counts(self, values: pd.Series) -> dict[str, int]:
        """A target's (or predictions') reference for label and prediction drift, as counts
        of the logged text form."""

    @abstractmethod
    def output_drift(self, output: str, reference: dict[str, int], window: dict[str, int],
                     thresholds: Any) -> dict[str, Any]:
        """Prediction or label drift of a window's counts against the reference's."""

    @abstractmethod
    def check_labels(self, values: pd.Series, labels: Sequence[str]) -> tuple[bool, str]:
        """Whether a retrain's production labels are ones this model can learn from, and
        what was found (the retrain's schema checks)."""

    def target_expectations(self, target: pd.Series, column: str) -> list[dict[str, Any]]:
        """Great Expectations checks on the target (``column``): a regressor's range. A
        classifier has none: ``/feedback`` refuses a class the model does not know, and a new
        class in the source data is the retrain's to learn."""
        return []
