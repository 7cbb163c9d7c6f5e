"""Regression: one number per row (a price, a demand, a duration); the output is the value.

Gate metrics: ``rmse``, ``mae`` and ``mape`` (lower is better: the spec gives a ceiling,
``gate.max_value``, and ``max_regression`` is how much *higher* the challenger's error may
be) and ``r2`` (higher is better: a floor). All four are compared by the paired bootstrap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from driftloop.errors import DataError
from driftloop.tasks.base import GateMetric, Task, estimator_kind

#: ONNX runs in float32: values may differ from sklearn's float64 by this share of their
#: magnitude (float32 keeps ~7 digits; trees add a few roundings), or this much near zero.
RELATIVE_TOLERANCE = 1e-4
ABSOLUTE_TOLERANCE = 1e-4
#: Target values kept as the label-drift reference (a sample, as the text form logged).
REFERENCE_VALUES = 5000
#: MAPE skips rows whose true value is this close to zero (the error is not defined there).
MAPE_EPSILON = 1e-12


def value_text(value: float) -> str:
    """A value as the log stores it: ``repr`` (shortest round-trip text)."""
    return repr(float(value))


def errors_of(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, MAPE (fraction, over rows with a non-zero truth) and R²."""
    err = y_pred - y_true
    n = len(y_true)
    if n == 0:
        return {"rmse": math.nan, "mae": math.nan, "mape": math.nan, "r2": math.nan}
    nonzero = np.abs(y_true) > MAPE_EPSILON
    total = float(np.sum((y_true - y_true.mean()) ** 2))
    return {
        "rmse": float(np.sqrt(np.mean(err * err))),
        "mae": float(np.mean(np.abs(err))),
        "mape": float(np.mean(np.abs(err[nonzero]) / np.abs(y_true[nonzero])))
        if nonzero.any() else math.nan,
        "r2": 1.0 - float(np.sum(err * err)) / total if total > 0 else math.nan,
    }


class Regression(Task):
    name = "regression"
    metrics: ClassVar[dict[str, GateMetric]] = {
        "rmse": GateMetric("rmse", False, False, "root mean squared error", target_units=True),
        "mae": GateMetric("mae", False, False, "mean absolute error", target_units=True),
        "mape": GateMetric("mape", False, False, "mean absolute percentage error (fraction)"),
        "r2": GateMetric("r2", True, False, "coefficient of determination R²"),
    }
    default_metric = "rmse"
    estimator_method = "predict"
    exact_match = False
    live_figures: ClassVar[dict[str, str]] = {
        "mae": "Mean absolute error of the latest labeled predictions.",
        "rmse": "Root mean squared error of the latest labeled predictions.",
    }

    def fits(self, estimator_cls: type) -> bool:
        return estimator_kind(estimator_cls) == "regressor"

    def conform_target(self, values: pd.Series, origin: str) -> pd.Series:
        coerced = pd.to_numeric(values, errors="coerce")
        bad = coerced.isna() & values.notna()
        if bad.any():
            raise DataError(f"{origin}: a regression target must be numeric; it has "
                            f"non-numeric values (e.g. {values[bad].iloc[0]!r})")
        infinite = np.isinf(coerced.to_numpy(dtype=np.float64, na_value=np.nan))
        if infinite.any():
            raise DataError(f"{origin}: the regression target has infinite values")
        return coerced.astype("float64")

    def check_target(self, values: pd.Series, target: str, origin: str) -> None:
        if values.nunique() < 2:
            raise DataError(f"{origin}: target {target!r} is constant: nothing to learn")

    def labels_of(self, model: Any, target: str) -> list[str]:
        return [target]

    def score(self, y_true: Any, y_pred: Any, labels: list[str]) -> dict[str, Any]:
        truth = np.asarray(y_true, dtype=np.float64)
        predicted = np.asarray(y_pred, dtype=np.float64)
        return {**errors_of(truth, predicted), "support": len(truth)}

    def predict(self, model: Any, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(model.predict(x), dtype=np.float64).reshape(-1)

    def compare(self, metric: str, truth: Sequence[Any], champion: Sequence[Any],
                challenger: Sequence[Any], labels: list[str], *, confidence: float) -> Any:
        from driftloop.gate.compare import compare_values

        return compare_values(metric, np.asarray(truth, dtype=np.float64),
                              np.asarray(champion, dtype=np.float64),
                              np.asarray(challenger, dtype=np.float64), confidence=confidence)

    def sklearn_outputs(self, model: Any, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(model.predict(frame), dtype=np.float64).reshape(-1, 1)

    def onnx_output(self, outputs: list[Any]) -> np.ndarray:
        return np.asarray(outputs[0], dtype=np.float64).reshape(-1, 1)  # (variable,)

    def parity(self, expected: np.ndarray, got: np.ndarray,
               labels: np.ndarray) -> tuple[int, float, float]:
        """Values agree within a relative tolerance: the worst ``|Δ| / max(1, |y|)``."""
        if not expected.size:
            return 0, 0.0, RELATIVE_TOLERANCE
        scale = np.maximum(np.abs(expected), ABSOLUTE_TOLERANCE / RELATIVE_TOLERANCE)
        diff = float(np.max(np.abs(got - expected) / scale))
        return 0, diff, RELATIVE_TOLERANCE

    def decode(self, outputs: np.ndarray, label_array: np.ndarray) -> tuple[list[str], Any]:
        values = outputs[:, 0].tolist()
        return [repr(v) for v in values], values

    def row_template(self, labels: Sequence[str]) -> str:
        return '{"request_id": "%s", "value": %r}'

    def render_rows(self, template: str, label_json: Sequence[str], ids: Sequence[str],
                    decoded: Any, outputs: np.ndarray) -> str:
        return ", ".join(template % (ids[i], v) for i, v in enumerate(decoded))

    def counter_indices(self, decoded: Any, outputs: int) -> np.ndarray:
        return np.array([len(decoded)])

    def parse_label(self, value: Any, labels: Sequence[str]) -> str:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"label {value!r} is not a number (a regression model's label "
                             "is its true value)")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"label {value!r} is not a number (a regression model's label "
                             "is its true value)") from None
        if not math.isfinite(number):
            raise ValueError(f"label {value!r} is not a finite number")
        return value_text(number)

    def label_schema(self, labels: Sequence[str]) -> dict[str, Any]:
        return {"type": "number", "description": f"The true {labels[0]}: a finite number "
                "(numeric text such as \"4200.5\" is accepted too)."}

    def label_example(self, labels: Sequence[str], predicted: dict[str, int]) -> Any:
        """The median of the model's own predictions on its reference: a plausible value."""
        values = sorted(float(v) for v in predicted)
        return round(values[len(values) // 2], 2) if values else 0.0

    def label_json(self, value: Any) -> Any:
        return float(value)

    def label_text(self, value: Any) -> str:
        return value_text(float(value))

    def answer_text(self, row: dict[str, Any]) -> str:
        return value_text(row["value"])

    def live(self, pairs: Sequence[tuple[str, str]]) -> dict[str, float | None]:
        if not pairs:
            return {"mae": None, "rmse": None}
        truth = np.array([float(label) for label, _ in pairs])
        predicted = np.array([float(p) for _, p in pairs])
        errors = errors_of(truth, predicted)
        return {"mae": errors["mae"], "rmse": errors["rmse"]}

    def reference_counts(self, values: pd.Series) -> dict[str, int]:
        numbers = pd.to_numeric(values, errors="coerce").dropna()
        if len(numbers) > REFERENCE_VALUES:
            numbers = numbers.sample(REFERENCE_VALUES, random_state=0)
        counts = numbers.map(value_text).value_counts().sort_index()
        return {str(k): int(v) for k, v in counts.items()}

    def output_drift(self, output: str, reference: dict[str, int], window: dict[str, int],
                     thresholds: Any) -> dict[str, Any]:
        from driftloop.drift.outputs import compare_values

        return compare_values(output, reference, window, thresholds)  # type: ignore[arg-type]

    def check_labels(self, values: pd.Series, labels: Sequence[str]) -> tuple[bool, str]:
        numbers = pd.to_numeric(values, errors="coerce")
        bad = values[numbers.isna() | ~np.isfinite(numbers.fillna(0.0))]
        if len(bad):
            return False, (f"{len(bad)} production rows carry labels that are not finite "
                           f"numbers: {sorted(map(str, bad.unique()))[:5]}")
        return True, "every production label is a finite number"

    def target_expectations(self, target: pd.Series, column: str) -> list[dict[str, Any]]:
        from driftloop.expectations import MOSTLY, RANGE_TOLERANCE, between_bounds

        low, high = between_bounds(pd.to_numeric(target, errors="coerce").dropna())
        return [{
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": column, "min_value": low, "max_value": high,
                       "mostly": MOSTLY},
            "meta": {"numeric_target": True,
                     "why": f"training target range [{target.min():g}, {target.max():g}] "
                            f"widened by {RANGE_TOLERANCE:.0%} of its span: labels in the "
                            "wrong unit fail"},
        }]
