"""Classification: a class per row, with the class probabilities as the model's outputs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from driftloop.errors import DataError
from driftloop.missing import MISSING_CATEGORY
from driftloop.tasks.base import GateMetric, Task, estimator_kind

#: Largest |Δp| between the ONNX form's probabilities and sklearn's (and no label may differ).
PROBABILITY_TOLERANCE = 1e-5


class Classification(Task):
    name = "classification"
    metrics: ClassVar[dict[str, GateMetric]] = {
        "accuracy": GateMetric("accuracy", True, True, "accuracy"),
        "f1_weighted": GateMetric("f1_weighted", True, True, "support-weighted F1"),
        "precision_weighted": GateMetric("precision_weighted", True, True,
                                         "support-weighted precision"),
        "recall_weighted": GateMetric("recall_weighted", True, True,
                                      "support-weighted recall"),
    }
    default_metric = "accuracy"
    estimator_method = "predict_proba"
    exact_match = True
    live_figures: ClassVar[dict[str, str]] = {
        "accuracy": "Share of the latest labeled predictions that were right."}

    def fits(self, estimator_cls: type) -> bool:
        return estimator_kind(estimator_cls) == "classifier"

    def conform_target(self, values: pd.Series, origin: str) -> pd.Series:
        """Classes as text; the missing category (read back from the log) is missing."""
        out = values.astype("string").astype(object)
        return out.mask(out.isin([MISSING_CATEGORY]), None)

    def check_target(self, values: pd.Series, target: str, origin: str) -> None:
        if values.nunique() < 2:
            raise DataError(f"{origin}: target {target!r} has fewer than two classes")

    def stratify(self, y: pd.Series) -> pd.Series | None:
        return y if y.value_counts().min() >= 2 else None

    def labels_of(self, model: Any, target: str) -> list[str]:
        return [str(c) for c in model.classes_]

    def evaluation_labels(self, models: Sequence[Any], target: str,
                          truth: pd.Series) -> list[str]:
        """Every class either model or the data knows (a class may be new in fresh rows)."""
        return sorted({*map(str, truth.unique()),
                       *(label for m in models for label in self.labels_of(m, target))})

    def score(self, y_true: Any, y_pred: Any, labels: list[str]) -> dict[str, Any]:
        """Accuracy, weighted F1/precision/recall and the confusion matrix (rows: truth)."""
        from sklearn.metrics import (
            accuracy_score,
            confusion_matrix,
            f1_score,
            precision_score,
            recall_score,
        )

        y_true = np.asarray(y_true, dtype=object).astype(str)
        y_pred = np.asarray(y_pred, dtype=object).astype(str)
        kw: dict[str, Any] = {"average": "weighted", "zero_division": 0, "labels": labels}
        return {
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "f1_weighted": float(f1_score(y_true, y_pred, **kw)),
            "precision_weighted": float(precision_score(y_true, y_pred, **kw)),
            "recall_weighted": float(recall_score(y_true, y_pred, **kw)),
            "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
            "labels": list(labels),
            "support": len(y_true),
        }

    def predict(self, model: Any, x: pd.DataFrame) -> np.ndarray:
        return np.asarray([str(p) for p in model.predict(x)], dtype=object)

    def compare(self, metric: str, truth: Sequence[Any], champion: Sequence[Any],
                challenger: Sequence[Any], labels: list[str], *, confidence: float) -> Any:
        from driftloop.gate.compare import compare_classes

        return compare_classes(metric, [str(v) for v in truth], [str(v) for v in champion],
                               [str(v) for v in challenger], labels, confidence=confidence)

    def sklearn_outputs(self, model: Any, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(model.predict_proba(frame), dtype=np.float64)

    def onnx_output(self, outputs: list[Any]) -> np.ndarray:
        return np.asarray(outputs[1], dtype=np.float64)  # (label, probabilities)

    def parity(self, expected: np.ndarray, got: np.ndarray,
               labels: np.ndarray) -> tuple[int, float, float]:
        diff = float(np.max(np.abs(got - expected))) if expected.size else 0.0
        mismatches = int(np.sum(labels[np.argmax(got, axis=1)]
                                != labels[np.argmax(expected, axis=1)]))
        return mismatches, diff, PROBABILITY_TOLERANCE

    def decode(self, outputs: np.ndarray, label_array: np.ndarray) -> tuple[list[str], Any]:
        best = outputs.argmax(axis=1)
        return label_array[best].tolist(), best

    def row_template(self, labels: Sequence[str]) -> str:
        return ('{"request_id": "%s", "label": %s, "probabilities": {' + ", ".join(
            json.dumps(label).replace("%", "%%") + ": %r" for label in labels) + "}}")

    def render_rows(self, template: str, label_json: Sequence[str], ids: Sequence[str],
                    decoded: Any, outputs: np.ndarray) -> str:
        # Probabilities are finite (checked), so repr is valid JSON.
        return ", ".join(template % (ids[i], label_json[b], *p) for i, (b, p) in
                         enumerate(zip(decoded.tolist(), outputs.tolist(), strict=True)))

    def counter_indices(self, decoded: Any, outputs: int) -> np.ndarray:
        return np.bincount(decoded, minlength=outputs)

    def parse_label(self, value: Any, labels: Sequence[str]) -> str:
        if not isinstance(value, str) or value not in labels:
            raise ValueError(f"unknown label {value!r}; the model's labels are "
                             f"{', '.join(labels)}")
        return value

    def label_schema(self, labels: Sequence[str]) -> dict[str, Any]:
        return {"type": "string", "enum": list(labels)}

    def label_example(self, labels: Sequence[str], predicted: dict[str, int]) -> Any:
        return labels[0]

    def label_json(self, value: Any) -> Any:
        return str(value)

    def label_text(self, value: Any) -> str:
        return str(value)

    def answer_text(self, row: dict[str, Any]) -> str:
        return str(row["label"])

    def live(self, pairs: Sequence[tuple[str, str]]) -> dict[str, float | None]:
        right = sum(label == predicted for label, predicted in pairs)
        return {"accuracy": right / len(pairs) if pairs else None}

    def reference_counts(self, values: pd.Series) -> dict[str, int]:
        counts = values.astype(str).value_counts().sort_index()
        return {str(k): int(v) for k, v in counts.items()}

    def output_drift(self, output: str, reference: dict[str, int], window: dict[str, int],
                     thresholds: Any) -> dict[str, Any]:
        from driftloop.drift.outputs import compare_counts

        return compare_counts(output, reference, window, thresholds)  # type: ignore[arg-type]

    def check_labels(self, values: pd.Series, labels: Sequence[str]) -> tuple[bool, str]:
        seen = values.astype(str)
        unknown = seen[~seen.isin(labels)]
        if len(unknown):
            return False, (f"{len(unknown)} production rows carry labels the model does not "
                           f"know: {sorted(unknown.unique())[:5]} (known: {list(labels)})")
        return True, f"labels within {list(labels)}"
