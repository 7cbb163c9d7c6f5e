"""How a missing value looks in each place it travels, so that every place agrees.

On the wire (JSON in ``/predict``, out of ``/drift/window``) and in the prediction log a
missing value is ``null``. In memory a missing numeric value is ``NaN``, which the model's
imputer (the training median, :func:`driftloop.training.build_pipeline`) fills in sklearn
and ONNX alike. A missing categorical value is :data:`MISSING_CATEGORY`: ONNX string
tensors have no null, so the model learns "missing" as one more category, and the drift
reference counts it apart from the real categories.

Only features the spec lists in ``features.nullable`` may be missing; anywhere else a null
is refused (``/predict``) or the row dropped (training data), and said so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: A missing categorical value in memory (never a real category: the name is reserved).
MISSING_CATEGORY = "__driftloop_missing__"


def is_missing(value: Any) -> bool:
    """None, NaN (float or pandas NA) or the in-memory missing category."""
    if value is None:
        return True
    if isinstance(value, str):
        return value == MISSING_CATEGORY
    try:
        return bool(value != value)  # NaN compares unequal to itself
    except TypeError:  # pd.NA: its truth value is ambiguous
        return True


def fill_categorical(values: Any) -> np.ndarray:
    """An object array with every missing entry (None, NaN, NA) as MISSING_CATEGORY and
    every other entry as its string."""
    out = np.asarray(values, dtype=object).copy()
    flat = out.reshape(-1)
    for i, value in enumerate(flat):
        flat[i] = MISSING_CATEGORY if is_missing(value) else str(value)
    return out


def to_wire(value: Any) -> Any:
    """A value as JSON carries it: None for NaN or the missing category."""
    if value is None or value == MISSING_CATEGORY:
        return None
    if isinstance(value, float) and value != value:
        return None
    return value
