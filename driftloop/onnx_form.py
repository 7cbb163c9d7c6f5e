"""The fast inference form: the fitted pipeline converted to ONNX, accepted only on parity.

sklearn costs milliseconds per call; ONNX Runtime answers in microseconds. A conversion is
kept only if it gives the same outputs as sklearn on the holdout plus random rows in and
around the training ranges (a classifier: the same labels and probabilities within 1e-5; a
regressor: values within a relative 1e-4, float32's rounding; the task says,
:meth:`driftloop.tasks.base.Task.parity`); otherwise the reason is recorded and the server
uses sklearn.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from driftloop.missing import MISSING_CATEGORY
from driftloop.spec import ModelSpec

#: Random rows drawn for the parity check, beside the holdout.
PARITY_RANDOM_ROWS = 2000
#: Random rows extend this fraction of each numeric range beyond the training min and max.
PARITY_MARGIN = 0.25
UNKNOWN_CATEGORY = "__driftloop_unseen__"


@dataclass
class ParityReport:
    ok: bool
    rows_checked: int
    label_mismatches: int
    #: The largest difference of an output (a probability; a regressor's relative value).
    max_abs_proba_diff: float
    tolerance: float = 0.0
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OnnxConversion:
    model_bytes: bytes | None
    parity: ParityReport

    @property
    def ok(self) -> bool:
        return self.model_bytes is not None and self.parity.ok


def input_types(spec: ModelSpec) -> list[tuple[str, Any]]:
    """One [N, 1] input per feature: float for numeric, string for categorical."""
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    return [(c, FloatTensorType([None, 1])) for c in spec.features.numeric] + [
        (c, StringTensorType([None, 1])) for c in spec.features.categorical
    ]


def onnx_feed(spec: ModelSpec, numeric: np.ndarray, categorical: np.ndarray) -> dict[str, Any]:
    """Arrays in the model's input layout: numeric (n, k) float, categorical (n, m) str."""
    feed: dict[str, Any] = {}
    num = np.asarray(numeric, dtype=np.float32)
    for i, name in enumerate(spec.features.numeric):
        feed[name] = np.ascontiguousarray(num[:, i : i + 1])
    for j, name in enumerate(spec.features.categorical):
        feed[name] = np.ascontiguousarray(categorical[:, j : j + 1]).astype(str)
    return feed


def split_frame(spec: ModelSpec, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A feature DataFrame as (numeric float64 (n, k), categorical object (n, m))."""
    numeric = frame[list(spec.features.numeric)].to_numpy(dtype=np.float64)
    categorical = frame[list(spec.features.categorical)].to_numpy(dtype=object)
    return numeric, categorical


def parity_rows(spec: ModelSpec, reference: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Random rows in and around the training ranges, with seen and unseen categories and,
    in nullable features, missing values."""
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for col in spec.features.numeric:
        lo, hi = float(reference[col].min()), float(reference[col].max())
        if lo != lo:  # a column with no value at all
            lo, hi = 0.0, 1.0
        span = (hi - lo) or 1.0
        # Round to the data's precision half the time: real inputs sit on tree thresholds'
        # neighbours (e.g. 2.45 between 2.4 and 2.5), which is where float32 can differ.
        values = rng.uniform(lo - PARITY_MARGIN * span, hi + PARITY_MARGIN * span, n)
        values[: n // 2] = np.round(values[: n // 2], 1)
        out[col] = values
    for col in spec.features.categorical:
        seen = sorted({*map(str, reference[col].unique())} - {MISSING_CATEGORY})
        out[col] = rng.choice([*seen, UNKNOWN_CATEGORY], n).astype(object)
    # Nullable features are missing in a fifth of the rows: the imputer must agree too.
    for col in spec.features.nullable:
        gaps = rng.random(n) < 0.2
        out[col][gaps] = np.nan if col in spec.features.numeric else MISSING_CATEGORY
    return pd.DataFrame(out, columns=spec.feature_names)


def make_session(model_bytes: bytes) -> Any:
    """An ONNX Runtime session on one thread: the server scales by processes, not threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def check_parity(
    spec: ModelSpec, model: Any, model_bytes: bytes, frames: list[pd.DataFrame]
) -> ParityReport:
    """Compare ONNX and sklearn on the given feature frames."""
    session = make_session(model_bytes)
    task = spec.task_impl
    rows = pd.concat(frames, ignore_index=True)[spec.feature_names]
    expected = task.sklearn_outputs(model, rows)
    labels = np.asarray(task.labels_of(model, spec.target)).astype(str)
    got = task.onnx_output(session.run(None, onnx_feed(spec, *split_frame(spec, rows))))
    if got.shape != expected.shape:
        return ParityReport(False, len(rows), 0, float("nan"), reason=(
            f"ONNX outputs have shape {got.shape}, sklearn's {expected.shape}"))
    mismatches, diff, tolerance = task.parity(expected, got, labels)
    ok = mismatches == 0 and diff < tolerance
    reason = "" if ok else (
        f"{mismatches} label mismatches, max difference {diff:.2e} over {len(rows)} rows "
        f"(tolerance {tolerance:g})"
    )
    return ParityReport(ok, len(rows), mismatches, diff, tolerance, reason=reason)


def convert(
    spec: ModelSpec, model: Any, holdout: pd.DataFrame, reference: pd.DataFrame
) -> OnnxConversion:
    """Convert and check parity; never raises for a model skl2onnx cannot handle."""
    try:
        from skl2onnx import convert_sklearn

        estimator = model.steps[-1][1]
        options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "classes_") else {}
        onx = convert_sklearn(
            model,
            initial_types=input_types(spec),
            options=options,
            target_opset={"": 17, "ai.onnx.ml": 3},
        )
        model_bytes = onx.SerializeToString()
    except Exception as exc:  # skl2onnx raises bare RuntimeError/NotImplementedError types
        reason = f"skl2onnx cannot convert {type(model.steps[-1][1]).__name__}: {exc}"
        return OnnxConversion(None, ParityReport(False, 0, 0, float("nan"), reason=reason))
    randoms = parity_rows(spec, reference, PARITY_RANDOM_ROWS, spec.split.seed)
    try:
        parity = check_parity(spec, model, model_bytes, [holdout, randoms])
    except Exception as exc:  # a session that fails to run is a failed conversion
        parity = ParityReport(False, 0, 0, float("nan"), reason=f"ONNX Runtime failed: {exc}")
    return OnnxConversion(model_bytes if parity.ok else None, parity)
